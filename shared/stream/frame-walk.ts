import { FRAME_SIZE, frameLength } from './frame-codec';

/** `n` bytes of the stored file from `pos` (fewer at its end). */
export type ReadAt = (pos: number, n: number) => Buffer;

/**
 * Where the frame starting at `pos` ends, reading only its headers and its blocks' headers (a few
 * bytes each) rather than the frame; undefined when the bytes at `pos` are not a frame this reader
 * can delimit, or the frame runs past `size`. Mirrors frameLength, for a file not in memory.
 */
export function frameEnd(type: string, readAt: ReadAt, pos: number, size: number): number | undefined {
  const end = type === 'gz' || size - pos < 32 ? wholeFrameEnd(type, readAt, pos, size) : blockWalk(type, readAt, pos, size);
  return end !== undefined && end <= size ? end : undefined;
}

/** gzip members of ours say their length in their header; a tiny frame is simply read whole. */
function wholeFrameEnd(type: string, readAt: ReadAt, pos: number, size: number): number | undefined {
  const buf = readAt(pos, Math.min(type === 'gz' ? 20 : 32, size - pos));
  const n = frameLength(type, buf, buf.length);
  if (n === 'unknown') return undefined;
  if (typeof n === 'number') return pos + n;
  return type === 'gz' && buf.length === 20 ? pos + buf.readUInt32LE(16) : undefined;
}

const ZSTD_MAGIC = 0xfd2fb528;
const LZ4_MAGIC = 0x184d2204;

function blockWalk(type: string, readAt: ReadAt, pos: number, size: number): number | undefined {
  const head = readAt(pos, Math.min(19, size - pos));
  const magic = head.readUInt32LE(0);
  if ((magic & 0xfffffff0) === 0x184d2a50) return pos + 8 + head.readUInt32LE(4); // skippable frame
  if (type === 'zst') {
    if (magic !== ZSTD_MAGIC) return undefined;
    const fhd = head[4];
    const singleSegment = (fhd >> 5) & 1;
    const fcsFlag = fhd >> 6;
    const checksum = (fhd >> 2) & 1;
    const fcsSize = fcsFlag === 0 ? singleSegment : 1 << fcsFlag;
    let at = pos + 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][fhd & 3] + fcsSize;
    for (;;) {
      if (at + 3 > size) return undefined;
      const b = readAt(at, 3);
      const header = b[0] | (b[1] << 8) | (b[2] << 16);
      const blockType = (header >> 1) & 3;
      if (blockType === 3) return undefined;
      at += 3 + (blockType === 1 ? 1 : header >>> 3);
      if (header & 1) return at + (checksum ? 4 : 0);
    }
  }
  if (type === 'lz4') {
    if (magic !== LZ4_MAGIC) return undefined;
    const flg = head[4];
    if (flg >> 6 !== 1) return undefined;
    const blockChecksum = (flg >> 4) & 1;
    let at = pos + 6 + ((flg >> 3) & 1 ? 8 : 0) + (flg & 1 ? 4 : 0) + 1;
    for (;;) {
      if (at + 4 > size) return undefined;
      const word = readAt(at, 4).readUInt32LE(0);
      at += 4;
      if (word === 0) return at + ((flg >> 2) & 1 ? 4 : 0);
      at += (word & 0x7fffffff) + (blockChecksum ? 4 : 0);
    }
  }
  return undefined;
}

/**
 * How many original bytes the frame at `pos` (ending at `end`) holds, as its header (zstd, lz4)
 * or trailer (gzip's ISIZE) records it; undefined when the frame does not say.
 */
export function frameContentSize(type: string, readAt: ReadAt, pos: number, end: number): number | undefined {
  if (type === 'gz') return readAt(end - 4, 4).readUInt32LE(0);
  const head = readAt(pos, Math.min(18, end - pos));
  if (head.length < 6) return undefined;
  const magic = head.readUInt32LE(0);
  if ((magic & 0xfffffff0) === 0x184d2a50) return 0; // skippable frame: no content
  if (type === 'lz4') return (head[4] >> 3) & 1 && head.length >= 14 ? Number(head.readBigUInt64LE(6)) : undefined;
  if (type !== 'zst') return undefined;
  const fhd = head[4];
  const singleSegment = (fhd >> 5) & 1;
  const fcsFlag = fhd >> 6;
  const at = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][fhd & 3];
  const fcsSize = fcsFlag === 0 ? singleSegment : 1 << fcsFlag;
  if (fcsSize === 0 || at + fcsSize > head.length) return undefined;
  if (fcsSize === 1) return head[at];
  if (fcsSize === 2) return head.readUInt16LE(at) + 256;
  if (fcsSize === 4) return head.readUInt32LE(at);
  return Number(head.readBigUInt64LE(at));
}

/** Where each frame of a stored file starts: in the stored bytes, and in the original bytes it decodes to. */
export interface FrameIndex {
  stored: number[];
  original: number[];
}

/**
 * The frames of a stored file of `size` bytes, found by walking their headers; undefined when the
 * stored bytes are not all delimited frames that record their content size (then the file can
 * only be read as a whole, in order).
 */
export function frameIndex(type: string, readAt: ReadAt, size: number): FrameIndex | undefined {
  const index: FrameIndex = { stored: [], original: [] };
  let original = 0;
  for (let pos = 0; pos < size;) {
    const end = frameEnd(type, readAt, pos, size);
    if (end === undefined) return undefined;
    const content = frameContentSize(type, readAt, pos, end);
    if (content === undefined) return undefined;
    index.stored.push(pos);
    index.original.push(original);
    original += content;
    pos = end;
  }
  return index;
}

/**
 * An uncompressed stored file of `size` bytes seen as frames of FRAME_SIZE bytes, each its own
 * original bytes: it is cut into parts as a framed file is, at any byte.
 */
export function plainIndex(size: number): FrameIndex {
  const starts = Array.from({ length: Math.ceil(size / FRAME_SIZE) }, (_, i) => i * FRAME_SIZE);
  return { stored: starts, original: starts };
}

/**
 * Part `part` of `parts` of a file whose frames start at `starts` (of `size` stored bytes): the
 * stored byte range and the index of its first frame. Parts hold whole frames, as equal in number
 * as they can be; a part may be empty when there are fewer frames than parts.
 */
export function partRange(starts: readonly number[], size: number, part: number, parts: number): { start: number; length: number; firstFrame: number } {
  const first = Math.floor((part * starts.length) / parts);
  const last = Math.floor(((part + 1) * starts.length) / parts);
  const start = first < starts.length ? starts[first] : size;
  const end = last < starts.length ? starts[last] : size;
  return { start, length: end - start, firstFrame: first };
}
