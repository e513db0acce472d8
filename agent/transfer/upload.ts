import { once } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import type { StoredChecksums } from '../../shared/stream/pipeline';
import { ByteCount, Digest, encodeFrames, hashed } from '../../shared/stream/parallel';
import type { CodecPool } from '../../shared/stream/codec-pool';

const CANCELLED = 1;

/** Messages (1 MiB frames) one upload may have written but not yet handed to HTTP/2. */
const WRITES_QUEUED = 2;

type OpenCall<M, R> = (callback: (err: grpc.ServiceError | null, res?: R) => void) => grpc.ClientWritableStream<M>;

interface UploadMessages<M> {
  header: M;
  toData: (chunk: Buffer) => M;
  toTrailer: (c: StoredChecksums) => M;
}

/** How the pool compresses a file: compress-type, level, and the worker threads. */
export interface Codec {
  type: string;
  level: number;
  pool: CodecPool;
  /**
   * false: the stored bytes are counted but not hashed here (their trailer's repo_checksum is
   * empty) because the server takes their SHA-1 as they arrive and records its own.
   */
  hashStored?: boolean;
}

/** Something that looks at every original byte in order (page checksums), before the chunk moves to a worker. */
export interface ChunkObserver {
  update(chunk: Buffer): void;
  /** after the last chunk */
  finish?(): void;
}

/**
 * One client-streaming upload: `header`, then what `body` writes (each write honours
 * back-pressure). Resolves with the server's answer once it has made the upload durable; if the
 * server gives up early, the body stops instead of waiting for a drain that never comes.
 */
export async function upload<M, R, T>(open: OpenCall<M, R>, header: M, body: (write: (msg: M) => Promise<void>) => Promise<T>,
  abort: () => void): Promise<{ result: R; value: T }> {
  let call!: grpc.ClientWritableStream<M>;
  const result = new Promise<R>((resolve, reject) => {
    call = open((err, res) => (err ? reject(err) : resolve(res as R)));
  });
  const failed = result.then(() => new Promise<never>(() => undefined));
  failed.catch(() => undefined);
  // grpc-js queues up to 16 messages per call before write() says to wait: 16 MiB for every
  // file in flight. A write is waited for once WRITES_QUEUED newer ones are behind it instead.
  const queued: Promise<void>[] = [];
  const write = async (msg: M): Promise<void> => {
    let written!: () => void;
    queued.push(new Promise<void>((resolve) => { written = resolve; }));
    const drained = call.write(msg, () => written()) ? undefined : once(call, 'drain');
    drained?.catch(() => undefined); // awaited below; the call's own error surfaces through `failed`
    if (queued.length > WRITES_QUEUED) await Promise.race([queued.shift()!, failed]);
    if (drained) await Promise.race([drained, failed]);
  };
  call.write(header);
  try {
    const value = await Promise.race([body(write), failed]);
    call.end();
    return { result: await result, value };
  } catch (err) {
    call.cancel();
    abort();
    // the server's reason, when it has one, is more useful than the local "cancelled"
    const serverErr = await result.then(() => undefined, (e: grpc.ServiceError) => e);
    throw serverErr && serverErr.code !== CANCELLED ? serverErr : err;
  }
}

/**
 * Writes one file's frames: chunks of original bytes (shared/stream/parallel.ts fileChunks),
 * each compressed into its own frame by the pool's workers, while SHA-1 of the original and of
 * the stored bytes are taken here, in order. `observers` see the original chunks too.
 */
async function writeFrames<M>(write: (msg: M) => Promise<void>, toData: (chunk: Buffer) => M, chunks: AsyncIterable<Buffer>,
  codec: Codec, observers: ChunkObserver[]): Promise<StoredChecksums> {
  const original = new Digest();
  const stored = codec.hashStored === false ? new ByteCount() : new Digest();
  for await (const frame of hashed(encodeFrames(hashed(chunks, original, observers), codec.type, codec.level, codec.pool), stored)) await write(toData(frame));
  return { original: original.result(), stored: stored.result() };
}

/** Sends one file as its own repository object (PutBackupFile): header, frames, trailer with the checksums. */
export async function uploadChunks<M, R>(open: OpenCall<M, R>, msgs: UploadMessages<M>, chunks: AsyncIterable<Buffer>,
  codec: Codec, observers: ChunkObserver[] = []): Promise<{ result: R; checksums: StoredChecksums }> {
  const iterator = chunks[Symbol.asyncIterator]();
  const { result, value } = await upload(open, msgs.header, async (write) => {
    const checksums = await writeFrames(write, msgs.toData, { [Symbol.asyncIterator]: () => iterator }, codec, observers);
    await write(msgs.toTrailer(checksums));
    return checksums;
  }, () => void iterator.return?.(undefined).catch(() => undefined));
  return { result, checksums: value };
}
