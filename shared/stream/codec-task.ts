import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { decodeFrame, encodeFrame } from './frame-codec';
import { badBlocks } from './page-checksum';

/** Pages of a relation file to validate while its chunk is compressed (page-checksum.ts badBlocks). */
export interface PageTask {
  /** the chunk's first block number */
  firstBlock: number;
  /** the backup's start LSN, as the two halves pages store */
  lsnHi: number;
  lsnLo: number;
}

export interface CodecTask {
  id: number;
  op: 'encode' | 'decode';
  type: string;
  level: number;
  data: Uint8Array;
  /** where to code to, when it fits */
  out?: Uint8Array;
  /** encode only: validate the chunk's pages */
  pages?: PageTask;
  /** encode only: take the SHA-1 of the chunk (when it is a whole file) */
  hash?: boolean;
  /** encode only: hand the chunk back with the result (its SHA-1 is taken elsewhere, in file order) */
  keepInput?: boolean;
  /**
   * encode only: first read the chunk into `data` from this open file, at `position` (to its end
   * when shorter); a read that finds nothing past the first chunk is not coded (CodecResult.read 0)
   */
  read?: { fd: number; position: number };
}

export interface CodecResult {
  data: Buffer;
  /** blocks whose page failed the check (with `pages`), ascending */
  badBlocks?: number[];
  /** hex SHA-1 of the chunk (with `hash`) */
  sha1?: string;
  /** the chunk itself (with `keepInput`) */
  input?: Buffer;
  /** with `read`: how many bytes were read (less than asked: the file ends in this chunk) */
  read?: number;
}

const view = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** Fills `buf` from the file at `position`, or up to its end: the bytes read. */
function readAt(fd: number, buf: Buffer, position: number): number {
  let filled = 0;
  while (filled < buf.length) {
    const n = fs.readSync(fd, buf, filled, buf.length - filled, position + filled);
    if (n === 0) break;
    filled += n;
  }
  return filled;
}

/**
 * One task, on whatever thread runs it: the per-byte work of a chunk of a backup (page checks,
 * SHA-1 of a whole small file, compression) or the decompression of a frame, done together so
 * the chunk's bytes are read while they are in this core's cache and the main thread only moves
 * buffers.
 */
export function runCodecTask(task: CodecTask): CodecResult {
  let input = view(task.data);
  const out = task.out && view(task.out);
  if (task.op === 'decode') return { data: decodeFrame(task.type, input, out) };
  let read: number | undefined;
  if (task.read) {
    read = readAt(task.read.fd, input, task.read.position);
    if (read === 0 && task.read.position > 0) return { data: input.subarray(0, 0), input: task.keepInput ? input.subarray(0, 0) : undefined, read };
    input = input.subarray(0, read);
  }
  const result: CodecResult = { data: input, read };
  if (task.pages) result.badBlocks = badBlocks(input, task.pages.firstBlock, { hi: task.pages.lsnHi, lo: task.pages.lsnLo });
  if (task.hash) result.sha1 = createHash('sha1').update(input).digest('hex');
  result.data = encodeFrame(task.type, task.level, input, out);
  if (task.keepInput) result.input = input;
  return result;
}
