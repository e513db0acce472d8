import fs from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { decompressStream } from '../../shared/stream/pipeline';

/** What a stored file must be; undefined fields are not known and not checked. */
export interface Expected {
  /** SHA-1 of the original bytes */
  checksum: string;
  size?: number;
  /** SHA-1 and size of the bytes as stored */
  repoChecksum?: string;
  repoSize?: number;
}

export interface FileProblem {
  kind: 'missing' | 'checksum' | 'size' | 'unreadable';
  detail: string;
}

export interface FileCheck {
  problem?: FileProblem;
  storedBytes: number;
  originalBytes: number;
  /** the first bytes of the original, when asked for (a WAL segment's header) */
  head?: Buffer;
}

/** Drops what it is given, keeping only the first `keep` bytes. */
class HeadSink extends Writable {
  private readonly parts: Buffer[] = [];
  private kept = 0;

  constructor(private readonly keep: number) {
    super();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    if (this.kept < this.keep) {
      const part = chunk.subarray(0, this.keep - this.kept);
      this.parts.push(part);
      this.kept += part.length;
    }
    done();
  }

  head(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/**
 * Reads a stored file once: SHA-1 and size of the stored bytes, decompress, SHA-1 and size of the
 * original, compared with what the manifest (or the WAL file's name) says.
 */
export async function checkStoredFile(path: string, compressType: string, expected: Expected, headBytes = 0,
  range?: { start: number; length: number }): Promise<FileCheck> {
  const sink = new HeadSink(headBytes);
  let sums;
  try {
    // a file inside a bundle is its range of the bundle (an empty range: nothing to read)
    const source = range?.length === 0 ? Readable.from([]) : fs.createReadStream(path, { highWaterMark: 1024 * 1024, ...(range ? { start: range.start, end: range.start + range.length - 1 } : {}) });
    sums = await decompressStream(source, compressType, sink);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') return { problem: { kind: 'missing', detail: 'the file is missing' }, storedBytes: 0, originalBytes: 0 };
    return { problem: { kind: 'unreadable', detail: `cannot be read or decompressed (${compressType}): ${e.message}` }, storedBytes: 0, originalBytes: 0 };
  }
  const result: FileCheck = { storedBytes: sums.stored.size, originalBytes: sums.original.size, head: headBytes ? sink.head() : undefined };
  const problems: FileProblem[] = [];
  if (expected.repoSize !== undefined && sums.stored.size !== expected.repoSize) {
    problems.push({ kind: 'size', detail: `stored size is ${sums.stored.size} bytes, the manifest says ${expected.repoSize}` });
  }
  if (expected.repoChecksum !== undefined && sums.stored.checksum !== expected.repoChecksum) {
    problems.push({ kind: 'checksum', detail: `stored bytes have SHA-1 ${sums.stored.checksum}, expected ${expected.repoChecksum}` });
  }
  if (expected.size !== undefined && sums.original.size !== expected.size) {
    problems.push({ kind: 'size', detail: `original size is ${sums.original.size} bytes, expected ${expected.size}` });
  }
  if (sums.original.checksum !== expected.checksum) {
    problems.push({ kind: 'checksum', detail: `content has SHA-1 ${sums.original.checksum}, expected ${expected.checksum}` });
  }
  if (problems.length) result.problem = { kind: problems.some((p) => p.kind === 'checksum') ? 'checksum' : 'size', detail: problems.map((p) => p.detail).join('; ') };
  return result;
}
