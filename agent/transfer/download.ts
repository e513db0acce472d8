import type { FileHandle } from 'node:fs/promises';
import type { CodecPool } from '../../shared/stream/codec-pool';
import { decodeFrames, Digest, hashed, writeAll } from '../../shared/stream/parallel';
import type { HashSizeResult } from '../../shared/stream/hash-size';

export async function* dataChunks<M extends { data?: Buffer }>(messages: AsyncIterable<M>, first?: M): AsyncGenerator<Buffer> {
  if (first?.data?.length) yield first.data;
  for await (const m of messages) if (m.data?.length) yield m.data;
}

/** What a restore proves about one file: the original bytes' size and SHA-1, and how many stored bytes arrived. */
export interface Downloaded {
  original: HashSizeResult;
  storedSize: number;
}

/**
 * Receives one stored file into `handle`: frames decompressed by the pool's workers in
 * parallel, SHA-1 of the original bytes in order, written. The stored bytes are only counted,
 * not hashed: the SHA-1 of the original bytes (the manifest's checksum) already fails for any
 * damage that changes what is restored, and damage the codec notices fails the decode; a
 * second SHA-1 over every byte cost a third of the main thread (verify still checks the stored SHA-1).
 */
export async function downloadChunks<M extends { data?: Buffer }>(messages: AsyncIterable<M>, compressType: string, pool: CodecPool,
  handle: FileHandle): Promise<Downloaded> {
  let storedSize = 0;
  const counted = (async function* () {
    for await (const b of dataChunks(messages)) {
      storedSize += b.length;
      yield b;
    }
  })();
  const original = new Digest();
  await writeAll(handle, hashed(decodeFrames(counted, compressType, pool, true), original));
  return { original: original.result(), storedSize };
}
