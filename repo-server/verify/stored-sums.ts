/**
 * What verify learns from reading one stored file: size and SHA-1 of the bytes as stored and of
 * the original bytes they decompress to. Runs inside the verify worker threads (sums-worker.ts),
 * where blocking on reads and codecs is the point: the server's own thread stays free.
 */
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { truncated } from '../../shared/stream/compress';
import { RING_BUFFER_SIZE } from '../../shared/stream/buffer-ring';
import { decodeFrame, frameLength, FRAME_SIZE } from '../../shared/stream/frame-codec';
import { decompressStream } from '../../shared/stream/pipeline';

/** A stored file to read: a whole file, or a range of one (a file inside a bundle). */
export interface SumsRequest {
  path: string;
  range?: { start: number; length: number };
  compressType: string;
  /** keep this many first bytes of the original (a WAL segment's header) */
  headBytes: number;
  /**
   * Only half the work, so that two threads can share one large file: 'stored' hashes the bytes
   * as stored (the original's fields are then empty), 'original' decodes and hashes the original
   * (the stored checksum is then empty). Both by default.
   */
  part?: 'stored' | 'original';
}

export interface StoredSums {
  storedSize: number;
  storedChecksum: string;
  originalSize: number;
  originalChecksum: string;
  head?: Uint8Array;
  /** why the file could not be read or decoded (the sums are then meaningless) */
  error?: { code?: string; message: string };
}

/** Another thread helping with one large file: it decodes frames while this one reads and hashes. */
export interface Offload {
  /** true when it would take a frame now */
  ready(): boolean;
  /** the frame's memory moves to the helper */
  decode(type: string, frame: Buffer): Promise<Uint8Array>;
}

/** A "frame" longer than this is not one of ours (one long stream of an older writer, say): it is streamed instead. */
const MAX_FRAME = 64 * 1024 * 1024;
/** Decoded frames waiting, in order, to be hashed: bounds memory while helpers work. */
const WINDOW = 8;
/** Where frames decode to when they are hashed at once. */
const decoded = Buffer.allocUnsafeSlow(RING_BUFFER_SIZE);
const YIELD_EVERY = 8;

/** Counts what passes. */
class Count {
  size = 0;

  update(b: Uint8Array): void {
    this.size += b.length;
  }
}

/** SHA-1, size and the first bytes of what passes, in order. */
class Sums {
  private readonly hash: Hash = createHash('sha1');
  size = 0;
  private readonly parts: Buffer[] = [];

  constructor(private readonly keep = 0) {}

  update(b: Uint8Array): void {
    this.hash.update(b);
    if (this.size < this.keep) this.parts.push(Buffer.from(b.subarray(0, this.keep - this.size)));
    this.size += b.length;
  }

  checksum(): string {
    return this.hash.digest('hex');
  }

  head(): Uint8Array | undefined {
    return this.keep ? Buffer.concat(this.parts) : undefined;
  }
}

/** Reads a file (or its range) sequentially into one growing buffer; keeps what the caller has not consumed. */
class Reader {
  buf: Buffer;
  /** consumed bytes at the front / bytes held */
  pos = 0;
  len = 0;
  private offset: number;
  private left: number;
  eof = false;

  constructor(private readonly fd: number, range: SumsRequest['range'], scratch: Buffer) {
    this.buf = scratch;
    this.offset = range?.start ?? 0;
    this.left = range?.length ?? Infinity;
  }

  /** Reads more, keeping unconsumed bytes (moved to the front); grows the buffer when it is full of them. Returns bytes read. */
  fill(): number {
    if (this.pos > 0) {
      this.buf.copy(this.buf, 0, this.pos, this.len);
      this.len -= this.pos;
      this.pos = 0;
    }
    if (this.len === this.buf.length) {
      const bigger = Buffer.allocUnsafeSlow(this.buf.length * 2);
      this.buf.copy(bigger, 0, 0, this.len);
      this.buf = bigger;
    }
    const want = Math.min(this.buf.length - this.len, this.left);
    const n = want > 0 ? fs.readSync(this.fd, this.buf, this.len, want, this.offset) : 0;
    if (n === 0) this.eof = true;
    this.offset += n;
    this.left -= n;
    this.len += n;
    return n;
  }
}

function readPlain(r: Reader, stored: Sums | Count): void {
  while (r.fill() > 0) {
    stored.update(r.buf.subarray(0, r.len));
    r.pos = r.len;
  }
}

/**
 * Frames are cut from the read buffer without copying, decoded (here or, with `offload`, on a
 * helping thread) and hashed in order. Returns false at the first bytes that are not a frame this
 * reader can delimit: the caller then streams the whole file instead.
 */
async function readFramed(r: Reader, type: string, stored: Sums | Count, original: Sums, offload?: Offload): Promise<boolean> {
  const pending: Array<Uint8Array | Promise<Uint8Array>> = [];
  let frames = 0;
  const drain = async (upTo: number) => {
    while (pending.length > upTo) original.update(await pending.shift()!);
  };
  for (;;) {
    const n = r.fill();
    stored.update(r.buf.subarray(r.len - n, r.len));
    for (;;) {
      const view = r.buf.subarray(r.pos, r.len);
      const length = frameLength(type, view, view.length);
      if (length === 'unknown') return false;
      if (length === 'more') {
        if (view.length > MAX_FRAME) return false;
        break;
      }
      const frame = view.subarray(0, length);
      // a frame that hardly shrank decodes as fast as it could be handed over: only others are worth a helper
      if (length < FRAME_SIZE / 2 && offload?.ready()) {
        const elsewhere = offload.decode(type, Buffer.from(frame));
        elsewhere.catch(() => undefined); // awaited in order by drain
        pending.push(elsewhere);
      } else if (pending.length === 0) {
        // hashed at once: decoded into the same memory every time (a fresh 1 MiB per frame keeps the collector busy)
        original.update(decodeFrame(type, frame, decoded));
      } else {
        // waits behind a helper's frames: it must not be a view of the read buffer, which moves on
        const out = decodeFrame(type, frame);
        pending.push(out.buffer === frame.buffer ? Buffer.from(out) : out);
      }
      r.pos += length;
      await drain(WINDOW);
      // a large file gives the thread's event loop a turn now and then, so a helper can join it
      if (offload && ++frames % YIELD_EVERY === 0) await new Promise(setImmediate);
    }
    if (r.eof) break;
  }
  await drain(0);
  if (r.len > r.pos) throw truncated(type, r.len - r.pos);
  return true;
}

/** Any stored file, through the streaming decompressors (gzip written by other tools, one long zstd stream). */
async function readStreamed(req: SumsRequest): Promise<StoredSums> {
  const head = new Sums(req.headBytes);
  const range = req.range;
  const source = range?.length === 0 ? Readable.from([]) : fs.createReadStream(req.path, { highWaterMark: FRAME_SIZE, ...(range ? { start: range.start, end: range.start + range.length - 1 } : {}) });
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      if (head.size < req.headBytes) head.update(chunk);
      done();
    },
  });
  const { stored, original } = await decompressStream(source, req.compressType, sink);
  return { storedSize: stored.size, storedChecksum: stored.checksum, originalSize: original.size, originalChecksum: original.checksum, head: head.head() };
}

/** Reads a stored file once and sums it; `scratch` is a read buffer to reuse. Never throws: a failure is in `error`. */
export async function storedSums(req: SumsRequest, scratch: Buffer, offload?: Offload): Promise<StoredSums> {
  let fd: number | undefined;
  try {
    fd = fs.openSync(req.path, 'r');
    const reader = new Reader(fd, req.range, scratch);
    if (req.compressType === 'none' || req.part === 'stored') {
      const stored = new Sums(req.compressType === 'none' ? req.headBytes : 0);
      readPlain(reader, stored);
      const checksum = stored.checksum();
      const original = req.compressType === 'none' ? { originalSize: stored.size, originalChecksum: checksum, head: stored.head() } : { originalSize: 0, originalChecksum: '' };
      return { storedSize: stored.size, storedChecksum: checksum, ...original };
    }
    const stored = req.part === 'original' ? new Count() : new Sums();
    const original = new Sums(req.headBytes);
    if (!(await readFramed(reader, req.compressType, stored, original, offload))) return await readStreamed(req);
    return { storedSize: stored.size, storedChecksum: stored instanceof Sums ? stored.checksum() : '', originalSize: original.size, originalChecksum: original.checksum(), head: original.head() };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { storedSize: 0, storedChecksum: '', originalSize: 0, originalChecksum: '', error: { code: e.code, message: e.message } };
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
