import type { FileHandle } from 'node:fs/promises';
import type { CodecPool } from '../../shared/stream/codec-pool';
import { decodeFrames, Digest, hashed, writeAll } from '../../shared/stream/parallel';
import type { StoredChecksums } from '../../shared/stream/pipeline';

export async function* dataChunks<M extends { data?: Buffer }>(messages: AsyncIterable<M>, first?: M): AsyncGenerator<Buffer> {
  if (first?.data?.length) yield first.data;
  for await (const m of messages) if (m.data?.length) yield m.data;
}

/**
 * Receives one stored file into `handle`: SHA-1 of the stored bytes as they arrive, frames
 * decompressed by the pool's workers in parallel, SHA-1 of the original bytes in order, written.
 */
export async function downloadChunks<M extends { data?: Buffer }>(messages: AsyncIterable<M>, compressType: string, pool: CodecPool,
  handle: FileHandle): Promise<StoredChecksums> {
  const stored = new Digest();
  const original = new Digest();
  await writeAll(handle, hashed(decodeFrames(hashed(dataChunks(messages), stored), compressType, pool), original));
  return { original: original.result(), stored: stored.result() };
}
