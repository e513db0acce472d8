import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import fs from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import type { CodecPool } from './codec-pool';
import { createDecompressor, truncated } from './compress';
import { FRAME_SIZE } from './frame-codec';
import { FrameSplitter } from './frame-splitter';
import { PAGE_SIZE, type LsnHalves } from './page-checksum';
import type { CodecResult } from './codec-task';
import type { HashSizeResult } from './hash-size';

/**
 * The parallel data path. A file is read in FRAME_SIZE chunks; each chunk is compressed by a
 * worker of the CodecPool into an independent frame while the main thread goes on reading,
 * hashing and sending; results come back in order. Restore is the mirror image. Everything here
 * is an async iterable of Buffers, so the stages compose and back-pressure is simply the pull.
 */

/** SHA-1 and byte count of what passes through, in order. */
export class Digest {
  private readonly hash: Hash = createHash('sha1');
  size = 0;

  update(b: Buffer): void {
    this.hash.update(b);
    this.size += b.length;
  }

  result(): HashSizeResult {
    return { size: this.size, checksum: this.hash.digest('hex') };
  }
}

/** A Digest that only counts: where another party takes the SHA-1 (result().checksum is empty). */
export class ByteCount extends Digest {
  override update(b: Buffer): void {
    this.size += b.length;
  }

  override result(): HashSizeResult {
    return { size: this.size, checksum: '' };
  }
}

/** Passes chunks through, showing each to `digest` (and any other observers) first; tells observers when the source ends. */
export async function* hashed(source: AsyncIterable<Buffer>, digest: Digest, observers: Array<{ update(b: Buffer): void; finish?(): void }> = []): AsyncGenerator<Buffer> {
  for await (const b of source) {
    digest.update(b);
    for (const o of observers) o.update(b);
    yield b;
  }
  for (const o of observers) o.finish?.();
}

/**
 * Chunks read ahead of the one being handed on. Each read is a round trip to libuv's thread pool,
 * and on a busy machine every such hop waits for a thread to be scheduled: one read at a time
 * held a backup's largest file to about 190 MB/s while its server waited for data.
 */
const READ_AHEAD = 3;

/**
 * A file's bytes in chunks of FRAME_SIZE, each in memory of its own (so it can move to a worker).
 * An empty file gives one empty chunk, so it still becomes one (empty) frame. Reads to the end
 * of the file as it is now: PostgreSQL may extend a relation while it is copied, and WAL replay
 * covers whatever changed. `alloc` gives each chunk its memory (a BufferRing's take, when the
 * chunks go to the codec workers, which hand it back). The next chunks are read while the last
 * is on its way (READ_AHEAD).
 */
export async function* fileChunks(handle: FileHandle, sizeHint = FRAME_SIZE, alloc?: (n: number) => Buffer): AsyncGenerator<Buffer> {
  let position = 0;
  const read = async (size: number): Promise<{ chunk: Buffer; filled: number }> => {
    const chunk = alloc ? alloc(size) : Buffer.allocUnsafeSlow(size);
    const at = position;
    position += size;
    let filled = 0;
    while (filled < chunk.length) {
      const { bytesRead } = await handle.read(chunk, filled, chunk.length - filled, at + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return { chunk, filled };
  };
  // most relation files are small: a buffer of their size (+1 to see the end in one read), not a
  // whole frame's; in whole pages, so every chunk of a relation file starts at a page (codec
  // workers check the pages of their chunk: page-checksum.ts badBlocks)
  const ahead: Promise<{ chunk: Buffer; filled: number }>[] = [read(Math.min(FRAME_SIZE, Math.ceil((sizeHint + 1) / PAGE_SIZE) * PAGE_SIZE))];
  let any = false;
  try {
    for (;;) {
      const { chunk, filled } = await ahead.shift()!;
      if (filled === 0 && any) return;
      any = true;
      const last = filled < chunk.length;
      // reads ahead only while the file has more than the reads in flight
      while (!last && ahead.length < READ_AHEAD && position < sizeHint + FRAME_SIZE) {
        const next = read(FRAME_SIZE);
        next.catch(() => undefined); // awaited on a later pull
        ahead.push(next);
      }
      // a short last chunk: its own small copy, or with `alloc` a view (the memory is the alloc's to reuse)
      yield !last ? chunk : alloc ? chunk.subarray(0, filled) : Buffer.from(chunk.subarray(0, filled));
      if (last) return;
      if (ahead.length === 0) ahead.push(read(FRAME_SIZE));
    }
  } finally {
    // the caller closes the handle once this ends: no read may still be using it
    await Promise.allSettled(ahead);
  }
}

/**
 * Files expected below this are read on the calling thread: open, read and close take microseconds
 * each, less than their three round trips to libuv's thread pool, and a cluster of 100,000 small
 * relations is mostly such files.
 */
const SMALL_READ = 64 * 1024;

/** The whole file when it is (still) smaller than `buf`; undefined when it has grown to fill it. */
function readSmall(file: string, buf: Buffer): Buffer | undefined {
  const fd = fs.openSync(file, 'r');
  try {
    let filled = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, filled, buf.length - filled, null);
      if (n === 0) return buf.subarray(0, filled);
      filled += n;
      if (filled === buf.length) return undefined;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** fileChunks of the file at `file`, which is opened on the first pull and closed when iteration ends. */
export async function* readFileChunks(file: string, sizeHint?: number, alloc?: (n: number) => Buffer): AsyncGenerator<Buffer> {
  if (sizeHint !== undefined && sizeHint < SMALL_READ) {
    const buf = alloc ? alloc(sizeHint + 1) : Buffer.allocUnsafeSlow(sizeHint + 1);
    const whole = readSmall(file, buf);
    if (whole) {
      yield whole;
      return;
    }
  }
  const handle = await fsp.open(file, 'r');
  try {
    yield* fileChunks(handle, sizeHint, alloc);
  } finally {
    await handle.close();
  }
}

/** In-flight frames per file: enough that every worker has work while the main thread sends. */
function windowFor(pool: CodecPool): number {
  return pool.size * 2 + 1;
}

/**
 * Submits work in order, keeps up to `window` in flight, yields the results in the same order.
 * Each item holds one of the pool's chunk slots from before it is read until the consumer has
 * taken its result, so memory stays bounded however many files run at once. A file that finds
 * no free slot first hands over what it has finished: a file holds slots only while it can
 * still give them back without waiting for one, so files cannot starve each other. Priority:
 * a waiting file of higher `priority` gets the next free slot first, and a file that outranks
 * every waiting one keeps the slot it hands back for its own next chunk.
 */
async function* ordered<T, R>(source: AsyncIterable<T>, window: number, pool: CodecPool, start: (item: T) => Promise<R>, priority = 0): AsyncGenerator<R> {
  const input = source[Symbol.asyncIterator]();
  const inflight: Promise<R>[] = [];
  const limiter = pool.chunks;
  // a slot acquired (or kept) for the next item, not yet attached to one in flight
  let holding = false;
  try {
    for (;;) {
      while (!holding) {
        if (limiter.tryAcquire()) {
          holding = true;
        } else if (inflight.length === 0) {
          await limiter.acquire(priority);
          holding = true;
        } else {
          const result = await inflight.shift()!;
          if (limiter.outranksWaiting(priority)) holding = true;
          else limiter.release();
          yield result;
        }
      }
      const { value, done } = await input.next();
      if (done) break;
      const p = start(value);
      holding = false;
      p.catch(() => undefined); // awaited below, in order; a failure must not surface early as "unhandled"
      inflight.push(p);
      if (inflight.length >= window) {
        const result = await inflight.shift()!;
        limiter.release();
        yield result;
      }
    }
    if (holding) limiter.release();
    holding = false;
    while (inflight.length) {
      const result = await inflight.shift()!;
      limiter.release();
      yield result;
    }
  } finally {
    for (let i = 0; i < inflight.length + (holding ? 1 : 0); i++) limiter.release();
    inflight.length = 0;
  }
}

/** Chunks of original bytes → compressed frames, in order. */
export function encodeFrames(chunks: AsyncIterable<Buffer>, type: string, level: number, pool: CodecPool): AsyncIterable<Buffer> {
  if (type === 'none') return chunks;
  return ordered(chunks, windowFor(pool), pool, (chunk) => pool.encode(type, level, chunk));
}

/** A backup file's chunks: how they are compressed, and what else is done with them on the way. */
export interface ChunkPlan {
  type: string;
  level: number;
  /** a relation file's pages are validated: its first block, the backup's start LSN */
  pages?: { firstBlock: number; lsnLimit: LsnHalves };
  /** take the SHA-1 of the file in the worker (a file of one chunk: the caller knows it has no second) */
  hashInWorker?: boolean;
  /** hand each chunk back with its frame (CodecResult.input), for a SHA-1 taken in order elsewhere */
  keepInput?: boolean;
  /** leave this many bytes free before each frame (CodecPool.encodeChunk) */
  headroom?: number;
  /**
   * the file's claim on the pool's chunk slots when files wait for one (its size: the largest
   * file of a backup is its critical path, and it should not wait behind the small ones)
   */
  priority?: number;
}

/**
 * Chunks of a backup file (starting at multiples of PAGE_SIZE, as fileChunks cuts them) → frames,
 * in order, each with its page checks (and SHA-1, with hashInWorker) done by the worker that
 * compresses it. Uncompressed chunks go to a worker only for their page checks.
 */
export function encodeChunks(chunks: AsyncIterable<Buffer>, plan: ChunkPlan, pool: CodecPool): AsyncGenerator<CodecResult> {
  let offset = 0;
  return ordered(chunks, windowFor(pool), pool, (chunk) => {
    const pages = plan.pages && {
      firstBlock: plan.pages.firstBlock + offset / PAGE_SIZE, lsnHi: plan.pages.lsnLimit.hi, lsnLo: plan.pages.lsnLimit.lo,
    };
    if (pages && offset % PAGE_SIZE !== 0) throw new Error(`encodeChunks: a chunk starts at ${offset}, not at a page`);
    offset += chunk.length;
    if (plan.type === 'none' && !pages && !plan.hashInWorker) return Promise.resolve({ data: chunk });
    return pool.encodeChunk(plan.type, plan.level, chunk, { pages, hash: plan.hashInWorker, headroom: plan.headroom, keepInput: plan.keepInput });
  }, plan.priority);
}

/**
 * A large file's frames, in order, from chunks its codec workers read themselves (CodecTask.read):
 * each worker reads its chunk at its offset, checks its pages and compresses it, so the main
 * thread never touches the bytes and no read waits for a round trip through libuv's thread pool
 * (for a backup's largest file, its critical path, those hops set the pace). Reads go on until
 * one comes back short, as fileChunks does; the few already started past that point are dropped.
 * Every chunk is FRAME_SIZE (so each starts at a page); `alloc` gives each its memory (the pool's
 * ring: it comes back with the frame). The file is opened on the first pull, and closed once
 * iteration ends and every read started has.
 */
export async function* readAndEncode(file: string, plan: ChunkPlan, pool: CodecPool, alloc: (n: number) => Buffer): AsyncGenerator<CodecResult> {
  const handle = await fsp.open(file, 'r');
  const fd = handle.fd;
  let ended = false;
  const started = new Set<Promise<CodecResult>>();
  const positions = (async function* () {
    for (let at = 0; !ended; at += FRAME_SIZE) yield at;
  })();
  const results = ordered(positions, windowFor(pool), pool, (at) => {
    const pages = plan.pages && { firstBlock: plan.pages.firstBlock + at / PAGE_SIZE, lsnHi: plan.pages.lsnLimit.hi, lsnLo: plan.pages.lsnLimit.lo };
    const p = pool.encodeChunk(plan.type, plan.level, alloc(FRAME_SIZE),
      { pages, keepInput: plan.keepInput, headroom: plan.headroom, read: { fd, position: at } });
    started.add(p);
    p.then(() => started.delete(p), () => started.delete(p));
    return p;
  }, plan.priority);
  let first = true;
  try {
    for await (const r of results) {
      // an empty file is one empty frame; past the end, a read is dropped
      if (ended || (r.read === 0 && !first)) {
        pool.ring.give(r.data);
        pool.ring.give(r.input);
        ended = true;
        continue;
      }
      first = false;
      if (r.read! < FRAME_SIZE) ended = true;
      yield r;
    }
  } finally {
    ended = true;
    // no worker may still be reading when the descriptor is closed (its number would be reused)
    await Promise.allSettled([...started]);
    await handle.close();
  }
}

/** Yields what `source` yields; once the consumer asks for the next, the previous goes back to the ring. */
async function* givenBack(source: AsyncIterable<Buffer>, pool: CodecPool): AsyncGenerator<Buffer> {
  for await (const b of source) {
    yield b;
    pool.ring.give(b);
  }
}

/**
 * Stored bytes (any cut) → original bytes, in order. Frames are decoded in parallel; from the
 * first byte that is not a frame we can delimit (a file written by an older version, say) the
 * rest streams through the ordinary single-threaded decompressor. Frames are cut into buffers
 * of the pool's ring (they come back from the workers). With `reuse`, the frames are also
 * decoded into the ring's buffers, and each buffer yielded is valid only until the next is
 * asked for: for a consumer that writes or hashes each before pulling the next, as writeAll does.
 */
export async function* decodeFrames(stored: AsyncIterable<Buffer>, type: string, pool: CodecPool, reuse = false): AsyncGenerator<Buffer> {
  if (type === 'none') {
    yield* stored;
    return;
  }
  const decoded = decodeSplit(stored, type, pool, reuse);
  yield* reuse ? givenBack(decoded, pool) : decoded;
}

async function* decodeSplit(stored: AsyncIterable<Buffer>, type: string, pool: CodecPool, reuse: boolean): AsyncGenerator<Buffer> {
  const splitter = new FrameSplitter(type, (n) => pool.ring.take(n));
  const input = stored[Symbol.asyncIterator]();
  async function* frames(): AsyncGenerator<Buffer> {
    for (;;) {
      const { value, done } = await input.next();
      if (done) return;
      yield* splitter.push(value);
      if (splitter.failed) return;
    }
  }
  yield* ordered(frames(), windowFor(pool), pool, (frame) => pool.decode(type, frame, reuse));
  if (splitter.failed) {
    const rest = splitter.takeRest();
    const remaining = (async function* () {
      yield rest;
      for (;;) {
        const { value, done } = await input.next();
        if (done) return;
        yield value;
      }
    })();
    yield* Readable.from(remaining, { objectMode: false }).pipe(createDecompressor(type));
    return;
  }
  const left = splitter.takeRest();
  if (left.length) throw truncated(type, left.length);
}

/** Writes in order into a file handle the caller syncs and closes. */
export async function writeAll(handle: FileHandle, data: AsyncIterable<Buffer>): Promise<void> {
  for await (const b of data) await handle.write(b);
}
