import { pipeline } from 'node:stream/promises';
import { Writable, type Readable } from 'node:stream';
import type { FileHandle } from 'node:fs/promises';
import { HashSize, type HashSizeResult } from './hash-size';
import { createDecompressor } from './compress';

export interface StoredChecksums {
  original: HashSizeResult;
  stored: HashSizeResult;
}

/**
 * Writes into an open file handle the caller will fsync and close. (An fs write stream with
 * autoClose off never emits 'close', so a pipeline ending in one never settles.)
 */
export function fileHandleSink(handle: FileHandle): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      handle.write(chunk).then(() => done(), done);
    },
  });
}

/** The restore data path: stored bytes → size + SHA-1 → decompress → size + SHA-1 of the original → sink. */
export async function decompressStream(source: Readable, compressType: string, sink: Writable): Promise<StoredChecksums> {
  const original = new HashSize();
  const stored = new HashSize();
  await pipeline(source, stored, createDecompressor(compressType), original, sink);
  return { original: original.result(), stored: stored.result() };
}
