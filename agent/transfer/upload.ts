import type { Readable, Transform } from 'node:stream';
import type * as grpc from '@grpc/grpc-js';
import { chunkSink, compressStream, type StoredChecksums } from '../../shared/stream/pipeline';

const CANCELLED = 1;

type OpenCall<M, R> = (callback: (err: grpc.ServiceError | null, res?: R) => void) => grpc.ClientWritableStream<M>;

/**
 * Sends one file as a client stream: header, compressed data chunks, trailer with the
 * checksums taken in stream. Resolves with the server's answer once it has made the file durable.
 */
export async function uploadFile<M, R>(open: OpenCall<M, R>, header: M, source: Readable, compressType: string, level: number,
  toData: (chunk: Buffer) => M, toTrailer: (c: StoredChecksums) => M, inspect: Transform[] = []): Promise<{ result: R; checksums: StoredChecksums }> {
  let call!: grpc.ClientWritableStream<M>;
  const result = new Promise<R>((resolve, reject) => {
    call = open((err, res) => (err ? reject(err) : resolve(res as R)));
  });
  // if the server gives up early, stop reading instead of waiting for a drain that never comes
  const failed = result.then(() => new Promise<never>(() => undefined));
  failed.catch(() => undefined);
  call.write(header);
  try {
    const checksums = await Promise.race([
      compressStream(source, compressType, level, chunkSink((chunk) => call.write(toData(chunk)), call), inspect),
      failed,
    ]);
    call.write(toTrailer(checksums));
    call.end();
    return { result: await result, checksums };
  } catch (err) {
    call.cancel();
    source.destroy();
    // the server's reason, when it has one, is more useful than the local "cancelled"
    const serverErr = await result.then(() => undefined, (e: grpc.ServiceError) => e);
    throw serverErr && serverErr.code !== CANCELLED ? serverErr : err;
  }
}
