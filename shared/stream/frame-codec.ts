import zlib from 'node:zlib';
import { UserError } from '../errors';

/**
 * Large files are cut into chunks and each chunk is compressed as an independent frame: a gzip
 * member, an lz4 frame or a zstd frame. Concatenated, the frames are one ordinary compressed
 * stream (gzip -d, lz4 -d, zstd -d and our streaming decompressors read them in sequence), yet
 * each can be compressed, and decompressed, on its own core.
 *
 * These are the synchronous per-frame codecs: called inside worker threads (codec-worker.ts),
 * where blocking is the point, or inline for small inputs.
 */

export const FRAMED_TYPES = ['gz', 'lz4', 'zst'] as const;
export type FramedType = (typeof FRAMED_TYPES)[number];

/** Bytes of original data per frame: large enough that per-frame overhead vanishes, small enough to spread one file over cores. */
export const FRAME_SIZE = 1024 * 1024;

// the native codecs load only where a frame of theirs is actually coded: archive-push/get stay light
type Zstd = typeof import('zstd-napi');
/** liblz4's block functions, from the `lz4` package's native binding (its JavaScript frame encoder is 10x slower). */
interface Lz4Native {
  compress(src: Buffer, dst: Buffer): number;
  compressHC(src: Buffer, dst: Buffer, level: number): number;
  compressBound(size: number): number;
  uncompress(src: Buffer, dst: Buffer): number;
}
interface Lz4Utils { bindings: Lz4Native; descriptorChecksum(d: Buffer): number }
let zstdModule: Zstd | undefined;
let lz4Module: Lz4Utils | undefined;
const zstd = (): Zstd => (zstdModule ??= require('zstd-napi') as Zstd);
const lz4 = (): Lz4Utils => (lz4Module ??= require('lz4/lib/utils') as Lz4Utils);

let zstdDecompressor: InstanceType<Zstd['Decompressor']> | undefined;
// zstd's own one-shot decompression into a buffer we give it (the Decompressor class always allocates)
type ZstdBinding = typeof import('zstd-napi/binding');
let zstdBindingModule: ZstdBinding | undefined;
const zstdBinding = (): ZstdBinding => (zstdBindingModule ??= require('zstd-napi/binding') as ZstdBinding);
let zstdContext: InstanceType<ZstdBinding['DCtx']> | undefined;
// a zstd compression context allocates megabytes: one per thread is reused for every frame
let zstdCompressor: InstanceType<ZstdBinding['CCtx']> | undefined;

/*
 * Codecs write a frame into this thread's scratch buffer (room for the worst case), and the frame
 * is copied out at its size. A new worst-case buffer per frame, as zstd-napi's Compressor and a
 * plain lz4 call make, is a MiB of garbage for every MiB coded: each codec thread held 30-40 MiB
 * of it between collections, and an lz4 frame kept its whole buffer wherever it went.
 */
let scratch: Buffer | undefined;

function intoScratch(bound: number, code: (dst: Buffer) => number): Buffer {
  if (!scratch || scratch.length < bound) scratch = Buffer.allocUnsafeSlow(Math.max(bound, FRAME_SIZE + 64 * 1024));
  const n = code(scratch);
  const out = Buffer.allocUnsafeSlow(n);
  scratch.copy(out, 0, 0, n);
  return out;
}

/**
 * The frame coded straight into `into` (a view of it is returned) when the worst case fits: a
 * backup's frames go into the codec pool's reused buffers and are sent from there (no copy);
 * otherwise through the scratch buffer.
 */
function codeInto(bound: number, into: Buffer | undefined, code: (dst: Buffer) => number): Buffer {
  return into && into.length >= bound ? into.subarray(0, code(into)) : intoScratch(bound, code);
}

/*
 * A gzip member normally does not say how long it is, so a reader could not find where the next
 * one starts without inflating. Ours carry their own length in an extra field (RFC 1952 FEXTRA,
 * subfield 'P','R', 4 bytes little-endian: the whole member's length) like BGZF's 'BC' field,
 * which every gzip reader skips. Members without it are still read, by a streaming inflater.
 */
const GZ_EXTRA_ID = [0x50, 0x52];
const GZ_HEADER = 10 + 2 + 4 + 4; // fixed header, XLEN, subfield id+len, length value
const GZ_TRAILER = 8; // CRC32, ISIZE

function gzipMember(chunk: Buffer, level: number, into?: Buffer): Buffer {
  const body = zlib.deflateRawSync(chunk, { level, chunkSize: FRAME_SIZE });
  const total = GZ_HEADER + body.length + GZ_TRAILER;
  const out = into && into.length >= total ? into.subarray(0, total) : Buffer.allocUnsafeSlow(total);
  out[0] = 0x1f; out[1] = 0x8b; out[2] = 8; out[3] = 0x04; // deflate, FEXTRA
  out.writeUInt32LE(0, 4); // no mtime
  out[8] = level >= 9 ? 2 : level <= 1 ? 4 : 0; // XFL
  out[9] = 3; // OS: Unix
  out.writeUInt16LE(8, 10);
  out[12] = GZ_EXTRA_ID[0]; out[13] = GZ_EXTRA_ID[1];
  out.writeUInt16LE(4, 14);
  out.writeUInt32LE(total, 16);
  body.copy(out, GZ_HEADER);
  out.writeUInt32LE(zlib.crc32(chunk) >>> 0, GZ_HEADER + body.length);
  out.writeUInt32LE(chunk.length >>> 0, GZ_HEADER + body.length + 4);
  return out;
}

/*
 * An LZ4 frame (lz4 -d reads it) holding the chunk as one block of at most 4 MiB: magic, FLG
 * (version 1, independent blocks, content size), BD (4 MiB blocks), the size, the header
 * checksum, the block (stored raw when it does not shrink), the end mark. Levels 1-2 are
 * liblz4's fast mode, 3-12 its HC mode, as with the lz4 command.
 */
const LZ4_BLOCK_MAX = 4 * 1024 * 1024;
const LZ4_HEADER = 4 + 2 + 8 + 1;

function lz4Frame(chunk: Buffer, level: number, into?: Buffer): Buffer {
  if (chunk.length > LZ4_BLOCK_MAX) throw new Error(`an lz4 frame holds at most ${LZ4_BLOCK_MAX} bytes`);
  const native = lz4().bindings;
  return codeInto(LZ4_HEADER + 4 + Math.max(native.compressBound(chunk.length), chunk.length) + 4, into, (out) => lz4FrameInto(out, chunk, level, native));
}

function lz4FrameInto(out: Buffer, chunk: Buffer, level: number, native: Lz4Native): number {
  out.writeUInt32LE(LZ4_MAGIC, 0);
  out[4] = 0x68; // version 01, independent blocks, content size present
  out[5] = 0x70; // 4 MiB maximum block size
  out.writeBigUInt64LE(BigInt(chunk.length), 6);
  out[14] = lz4().descriptorChecksum(out.subarray(4, 14));
  let pos = LZ4_HEADER;
  if (chunk.length > 0) {
    const block = out.subarray(pos + 4);
    const packed = level >= 3 ? native.compressHC(chunk, block, level) : native.compress(chunk, block);
    if (packed > 0 && packed < chunk.length) {
      out.writeUInt32LE(packed, pos);
      pos += 4 + packed;
    } else {
      out.writeUInt32LE((0x80000000 | chunk.length) >>> 0, pos);
      chunk.copy(out, pos + 4);
      pos += 4 + chunk.length;
    }
  }
  out.writeUInt32LE(0, pos);
  return pos + 4;
}

/**
 * Any LZ4 frame (blocks up to 4 MiB, optional checksums skipped: SHA-1 of the whole file is
 * checked anyway). The first compressed block decodes into `out` when it fits.
 */
function lz4Unframe(frame: Buffer, out?: Buffer): Buffer {
  const flg = frame[4];
  const bd = frame[5];
  if (frame.readUInt32LE(0) !== LZ4_MAGIC || flg >> 6 !== 1) throw new UserError('not an lz4 frame: the repository copy is damaged', 'CORRUPT');
  const blockMax = 1 << (8 + 2 * ((bd >> 4) & 7));
  const hasSize = (flg >> 3) & 1;
  const blockChecksum = (flg >> 4) & 1;
  // the content size, when the frame records it (ours do), bounds a block more tightly than the
  // format's block maximum: a 1 MiB frame then costs 1 MiB of output buffer, not 4
  const contentSize = hasSize ? Number(frame.readBigUInt64LE(6)) : Infinity;
  let pos = 6 + (hasSize ? 8 : 0) + (flg & 1 ? 4 : 0) + 1;
  const parts: Buffer[] = [];
  let total = 0;
  const native = lz4().bindings;
  for (;;) {
    const word = frame.readUInt32LE(pos);
    pos += 4;
    if (word === 0) break;
    const size = word & 0x7fffffff;
    const data = frame.subarray(pos, pos + size);
    if (word & 0x80000000) {
      parts.push(data);
    } else {
      const room = Math.min(blockMax, Math.max(0, contentSize - total));
      const dst = out && parts.length === 0 && room <= out.length ? out : Buffer.allocUnsafeSlow(room);
      const n = native.uncompress(data, dst);
      if (n < 0) throw new UserError('an lz4 block does not decompress: the repository copy is damaged', 'CORRUPT');
      parts.push(dst.subarray(0, n));
    }
    total += parts[parts.length - 1].length;
    pos += size + (blockChecksum ? 4 : 0);
  }
  // one block stored raw is a view of the frame: handed back as it is (its memory moves with it), not copied
  return parts.length === 1 ? parts[0] : Buffer.concat(parts, total);
}

export function checkCompressLevel(type: string, level: number): void {
  const range = type === 'gz' ? [0, 9] : type === 'zst' ? [1, 22] : type === 'lz4' ? [0, 12] : [0, 0];
  if (!Number.isInteger(level) || level < range[0] || level > range[1]) {
    throw new UserError(`compress-level ${level} is out of range for ${type}: use ${range[0]}-${range[1]}`);
  }
}

/**
 * One chunk of original bytes → one self-contained frame. With `into`, the frame is written at
 * its start (a view of it is returned) when it fits: a backup's codec worker compresses into
 * memory that is used again (shared/stream/buffer-ring.ts) and sent from there.
 */
export function encodeFrame(type: string, level: number, chunk: Buffer, into?: Buffer): Buffer {
  switch (type) {
    case 'gz':
      return gzipMember(chunk, level, into);
    case 'zst': {
      const binding = zstdBinding();
      const cctx = (zstdCompressor ??= new binding.CCtx());
      return codeInto(binding.compressBound(chunk.length), into, (dst) => cctx.compress(dst, chunk, level));
    }
    case 'lz4':
      return lz4Frame(chunk, level, into);
    case 'none':
      return chunk;
    default:
      throw new UserError(`unknown compress-type '${type}'`);
  }
}

/** What zlib's synchronous functions drive underneath a zlib.Gunzip: its native handle and where it reports what is left. */
interface InflateHandle {
  reset(): void;
  writeSync(flush: number, input: Buffer, inOff: number, inLen: number, output: Buffer, outOff: number, outLen: number): void;
  onerror: (message: string, errno: number) => void;
}
let gunzipper: { handle: InflateHandle; left: Uint32Array; error?: string } | null | undefined;

/**
 * One gzip member inflated into `out` through this thread's one inflate context, reset for each
 * member: zlib.gunzipSync builds a stream, a zlib context and a 1 MiB output buffer per frame,
 * fresh memory the kernel zeroes for every MiB restored. Errors are zlib's own (a damaged member
 * fails its CRC or ends early). Undefined when the original bytes do not fit in `out`, or this
 * Node's zlib lacks the handle: the caller then takes the ordinary way.
 */
function gunzipInto(frame: Buffer, out: Buffer): Buffer | undefined {
  if (gunzipper === undefined) {
    const g = new zlib.Gunzip() as unknown as { _handle?: InflateHandle; _writeState?: unknown };
    const handle = g._handle;
    const left = g._writeState;
    gunzipper = handle && typeof handle.writeSync === 'function' && typeof handle.reset === 'function' && left instanceof Uint32Array ? { handle, left } : null;
    if (gunzipper) {
      const state = gunzipper;
      state.handle.onerror = (message) => {
        state.error = message;
      };
    }
  }
  if (!gunzipper) return undefined;
  const { handle, left } = gunzipper;
  handle.reset();
  gunzipper.error = undefined;
  handle.writeSync(zlib.constants.Z_FINISH, frame, 0, frame.length, out, 0, out.length);
  if (gunzipper.error !== undefined) throw new Error(gunzipper.error);
  // [output room left, input left]: no room left may mean more to come, input left is not one member
  if (left[0] === 0 || left[1] !== 0) return undefined;
  return out.subarray(0, out.length - left[0]);
}

/**
 * One complete frame → its original bytes (checks the frame's own CRC where the format has one).
 * With `out`, the result is decoded into `out` (a view of it is returned) where the codec can and
 * the frame says it fits; otherwise into new memory.
 */
export function decodeFrame(type: string, frame: Buffer, out?: Buffer): Buffer {
  switch (type) {
    case 'gz':
      return (out && gunzipInto(frame, out)) || zlib.gunzipSync(frame, { chunkSize: FRAME_SIZE });
    case 'zst': {
      const size = out ? zstdBinding().getFrameContentSize(frame) : null;
      if (out && size !== null && size <= out.length) {
        zstdContext ??= new (zstdBinding().DCtx)();
        return out.subarray(0, zstdContext.decompress(out, frame));
      }
      zstdDecompressor ??= new (zstd().Decompressor)();
      return zstdDecompressor.decompress(frame);
    }
    case 'lz4':
      return lz4Unframe(frame, out);
    case 'none':
      return frame;
    default:
      throw new UserError(`the repository holds a file compressed with '${type}', which this version cannot read`);
  }
}

/**
 * The length of the frame at the start of `buf` (of which `len` bytes are valid): a number once
 * the whole frame is there, 'more' when more bytes are needed to tell, 'unknown' when the bytes
 * are not a frame this reader can delimit (a gzip member without our length field, say), and the
 * rest must go through a streaming decompressor.
 */
export function frameLength(type: string, buf: Buffer, len: number): number | 'more' | 'unknown' {
  switch (type) {
    case 'gz': return gzipFrameLength(buf, len);
    case 'zst': return zstdFrameLength(buf, len);
    case 'lz4': return lz4FrameLength(buf, len);
    default: return 'unknown';
  }
}

/**
 * How many of the first `n` bytes of `buf` are whole frames, one after another from its start: 0
 * when the first frame is not whole there, or is not a frame this reader can delimit. A repository
 * server cuts its messages there, so a restore receives each frame in one piece.
 */
export function wholeFramesLength(type: string, buf: Buffer, n: number): number {
  let pos = 0;
  while (pos < n) {
    const length = frameLength(type, pos === 0 ? buf : buf.subarray(pos), n - pos);
    if (typeof length !== 'number') break;
    pos += length;
  }
  return pos;
}

function complete(total: number, len: number): number | 'more' {
  return total <= len ? total : 'more';
}

function gzipFrameLength(buf: Buffer, len: number): number | 'more' | 'unknown' {
  if (len < GZ_HEADER) return 'more';
  if (buf[0] !== 0x1f || buf[1] !== 0x8b || buf[2] !== 8 || (buf[3] & 0x04) === 0) return 'unknown';
  if (buf.readUInt16LE(10) !== 8 || buf[12] !== GZ_EXTRA_ID[0] || buf[13] !== GZ_EXTRA_ID[1] || buf.readUInt16LE(14) !== 4) return 'unknown';
  const total = buf.readUInt32LE(16);
  if (total < GZ_HEADER + GZ_TRAILER) return 'unknown';
  return complete(total, len);
}

const ZSTD_MAGIC = 0xfd2fb528;

function zstdFrameLength(buf: Buffer, len: number): number | 'more' | 'unknown' {
  if (len < 4) return 'more';
  const magic = buf.readUInt32LE(0);
  if ((magic & 0xfffffff0) === 0x184d2a50) return len < 8 ? 'more' : complete(8 + buf.readUInt32LE(4), len); // skippable frame
  if (magic !== ZSTD_MAGIC) return 'unknown';
  if (len < 5) return 'more';
  const fhd = buf[4];
  const singleSegment = (fhd >> 5) & 1;
  const fcsFlag = fhd >> 6;
  const dictFlag = fhd & 3;
  const checksum = (fhd >> 2) & 1;
  const fcsSize = fcsFlag === 0 ? singleSegment : 1 << fcsFlag;
  let pos = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][dictFlag] + fcsSize;
  for (;;) {
    if (pos + 3 > len) return 'more';
    const header = buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16);
    const last = header & 1;
    const blockType = (header >> 1) & 3;
    const size = header >>> 3;
    if (blockType === 3) return 'unknown';
    pos += 3 + (blockType === 1 ? 1 : size);
    if (last) return complete(pos + (checksum ? 4 : 0), len);
  }
}

const LZ4_MAGIC = 0x184d2204;

function lz4FrameLength(buf: Buffer, len: number): number | 'more' | 'unknown' {
  if (len < 4) return 'more';
  const magic = buf.readUInt32LE(0);
  if ((magic & 0xfffffff0) === 0x184d2a50) return len < 8 ? 'more' : complete(8 + buf.readUInt32LE(4), len);
  if (magic !== LZ4_MAGIC) return 'unknown';
  if (len < 6) return 'more';
  const flg = buf[4];
  if (flg >> 6 !== 1) return 'unknown';
  const blockChecksum = (flg >> 4) & 1;
  const contentSize = (flg >> 3) & 1;
  const contentChecksum = (flg >> 2) & 1;
  const dictId = flg & 1;
  let pos = 6 + (contentSize ? 8 : 0) + (dictId ? 4 : 0) + 1; // FLG, BD, [size], [dict], HC
  for (;;) {
    if (pos + 4 > len) return 'more';
    const word = buf.readUInt32LE(pos);
    pos += 4;
    if (word === 0) return complete(pos + (contentChecksum ? 4 : 0), len);
    pos += (word & 0x7fffffff) + (blockChecksum ? 4 : 0);
  }
}
