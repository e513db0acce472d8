import fs from 'node:fs';
import { RING_BUFFER_SIZE } from '../../shared/stream/buffer-ring';
import type { WriteLock } from './write-lock';

/*
 * Large restored files are written with direct I/O (O_DIRECT): from our buffer to the disk,
 * not copied into the page cache first. On this VM a buffered write of 1.7 GB cost 2.4 CPU-s of
 * kernel copying into freshly handed-out pages (a direct write: 0.15 CPU-s, at the same disk
 * speed), and was the largest single cost of a restore; it also fills the page cache with a whole
 * cluster nobody reads yet and leaves it to write back before pg_control. Direct I/O wants the
 * memory, the file offset and the length aligned: the bytes are gathered in aligned buffers and
 * written in aligned runs, at once on the worker's own thread. (On libuv's thread pool instead,
 * the worker's event loop took in more of its connection while a write waited, the received
 * buffers outlived the wait, and at process-max 4 the workers' malloc arenas held 316-416 MiB:
 * a restore peaked at 563 MiB, against 288 with the writes done at once, at the same speed.)
 * A head or tail that is not aligned (a file's last partial block) goes through the page cache
 * on a second descriptor. Where the file system refuses direct I/O (open or
 * write fails with EINVAL: tmpfs on older kernels, a block size larger than ours), the file is
 * written through the page cache as before.
 */

/** Alignment of memory, offsets and lengths: 4 KiB covers the logical block size of common disks. */
export const DIRECT_ALIGN = 4096;

/** Files at least this large are written with direct I/O; smaller ones cost their open and close more than their bytes. */
export const DIRECT_MIN = 1024 * 1024;

/** Each of a direct writer's two buffers: the room kept free for a frame, and at least as much again to write at once. */
export const STAGING_SIZE = 5 * 512 * 1024;

/** Set once a file system refused direct I/O on this thread: later files go through the page cache at once. */
let directRefused = false;

/** Page-aligned memory: a WebAssembly memory starts on a page boundary, where a Buffer's memory (malloc) need not. */
export function alignedBuffer(size: number): Buffer {
  const pages = Math.ceil(size / 65536);
  return Buffer.from(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer, 0, size);
}

/**
 * Opens `dest` for writing, with direct I/O when `direct` and the file system takes it. `flags`:
 * 'wx' create (fails when it exists), 'w' create or truncate, 'r+' an existing file.
 */
export function openForWrite(dest: string, flags: 'wx' | 'w' | 'r+', mode: number, direct: boolean): { fd: number; direct: boolean } {
  if (direct && !directRefused && fs.constants.O_DIRECT) {
    try {
      return { fd: fs.openSync(dest, openFlags(flags) | fs.constants.O_DIRECT, mode), direct: true };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      directRefused = true;
    }
  }
  return { fd: fs.openSync(dest, flags, mode), direct: false };
}

/**
 * Hands `each` the bytes of the file at `path` from `from` to its end, and returns where it ends.
 * Bytes written with direct I/O are not in the page cache, and a buffered read would copy them into
 * pages afresh: they are read with direct I/O into `aligned` where the file system takes it, the
 * rest (an unaligned start or end) through `fd` into `plain`.
 */
export function readToEnd(path: string, fd: number, from: number, aligned: Buffer | undefined, plain: Buffer, each: (b: Buffer) => void): number {
  let at = from;
  const direct = aligned && from % DIRECT_ALIGN === 0 ? openForRead(path) : undefined;
  if (direct !== undefined) {
    try {
      for (let n = aligned!.length; n === aligned!.length;) {
        n = fs.readSync(direct, aligned!, 0, aligned!.length, at);
        each(aligned!.subarray(0, n));
        at += n;
      }
    } catch (err) {
      // the file system wants another alignment: the rest through the page cache
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    } finally {
      fs.closeSync(direct);
    }
  }
  for (let n; (n = fs.readSync(fd, plain, 0, plain.length, at)) > 0; at += n) each(plain.subarray(0, n));
  return at;
}

function openForRead(path: string): number | undefined {
  if (directRefused || !fs.constants.O_DIRECT) return undefined;
  try {
    return fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_DIRECT);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    return undefined;
  }
}

function openFlags(flags: 'wx' | 'w' | 'r+'): number {
  const { O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC } = fs.constants;
  if (flags === 'wx') return O_WRONLY | O_CREAT | O_EXCL;
  if (flags === 'w') return O_WRONLY | O_CREAT | O_TRUNC;
  return O_RDWR;
}

/** All of `b`, at `position`. */
function writeAllSync(fd: number, b: Buffer, position: number): void {
  for (let done = 0; done < b.length;) done += fs.writeSync(fd, b, done, b.length - done, position + done);
}

/** What a direct FileWriter needs: the file's path (for the buffered descriptor of an unaligned head or tail) and two aligned buffers. */
export interface Direct {
  path: string;
  staging: [Buffer, Buffer];
}

/**
 * Room kept free in the buffer being filled: a piece up to this size (a decoded frame, which lives
 * in memory the thread's other receivers decode into too) is copied at once, before any wait.
 */
const ROOM = RING_BUFFER_SIZE;

/**
 * Writes bytes one after another into `fd` from `position`. Through the page cache: each piece at
 * once, holding `lock` (when given: the parts of one file are written by several workers). With
 * `direct` (fd opened with O_DIRECT): the bytes are gathered in an aligned buffer and written in
 * aligned runs, the unaligned rest carried to the other buffer; write() may return a promise (a
 * refused direct write is redone through the page cache when it settles), and the piece must stay
 * as it is until it settles.
 */
export class FileWriter {
  /** where the next byte goes (direct: the first byte gathered in `cur`) */
  private position: number;
  /** direct: the buffer being filled, until a direct write is refused; and how much of it is */
  private cur?: Buffer;
  private fill = 0;
  /** direct: the other buffer, free once `flying` has landed */
  private spare?: Buffer;
  /** direct: the last aligned run written, its outcome met by landed() */
  private flying?: { buf: Buffer; length: number; at: number; done: Promise<void> };
  /** for the unaligned head or tail, and the rest of the file after a refused direct write */
  private plain?: number;
  /** direct: bytes still to go through the page cache before the first aligned boundary */
  private head: number;

  constructor(private readonly fd: number, position: number, private readonly direct?: Direct, private readonly lock?: WriteLock) {
    this.position = position;
    [this.cur, this.spare] = direct?.staging ?? [];
    // an unaligned start: the bytes up to the next boundary are written through the page cache
    this.head = direct ? (DIRECT_ALIGN - (position % DIRECT_ALIGN)) % DIRECT_ALIGN : 0;
  }

  write(b: Buffer): Promise<void> | undefined {
    if (this.head > 0) {
      const n = Math.min(this.head, b.length);
      this.writePlain(b.subarray(0, n));
      this.head -= n;
      b = b.subarray(n);
    }
    if (!this.cur) {
      if (b.length > 0) this.writePlain(b);
      return undefined;
    }
    const n = b.copy(this.cur, this.fill);
    this.fill += n;
    if (n < b.length) return this.writeRest(b.subarray(n));
    return this.cur.length - this.fill < ROOM ? this.rotate() : undefined;
  }

  /** Writes what is gathered (the tail that is not a whole aligned block through the page cache). Call once, at the end. */
  async end(): Promise<void> {
    await this.rotate();
    await this.landed();
    if (this.fill > 0) this.writePlain(this.cur!.subarray(0, this.fill));
    this.fill = 0;
    await this.close();
  }

  /** Waits for the write in flight, whatever its end, and closes the descriptor of the head or tail: call before `fd` is closed. */
  async close(): Promise<void> {
    await this.flying?.done.catch(() => undefined);
    if (this.plain !== undefined) fs.closeSync(this.plain);
    this.plain = undefined;
  }

  /** A piece larger than the room kept: the rest of it as the buffers free up. */
  private async writeRest(b: Buffer): Promise<void> {
    while (b.length > 0) {
      await this.rotate();
      if (!this.cur) {
        this.writePlain(b);
        return;
      }
      const n = b.copy(this.cur, this.fill);
      this.fill += n;
      b = b.subarray(n);
    }
    if (this.cur && this.cur.length - this.fill < ROOM) await this.rotate();
  }

  /** Once the last write has landed, starts writing the aligned run gathered and goes on filling the other buffer. */
  private async rotate(): Promise<void> {
    await this.landed();
    const cur = this.cur;
    const aligned = this.fill - (this.fill % DIRECT_ALIGN);
    if (!cur || aligned === 0) return;
    let done: Promise<void>;
    try {
      writeAllSync(this.fd, cur.subarray(0, aligned), this.position);
      done = Promise.resolve();
    } catch (err) {
      done = Promise.reject(err);
    }
    done.catch(() => undefined); // met by landed()
    this.flying = { buf: cur, length: aligned, at: this.position, done };
    const next = this.spare!;
    cur.copy(next, 0, aligned, this.fill);
    this.fill -= aligned;
    this.position += aligned;
    this.spare = cur;
    this.cur = next;
  }

  /**
   * Waits for the write in flight. One the file system refused (EINVAL: another alignment, or no
   * direct I/O) is done through the page cache, and so is everything after it.
   */
  private async landed(): Promise<void> {
    const w = this.flying;
    if (!w) return;
    this.flying = undefined;
    try {
      await w.done;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      directRefused = true;
      this.writePlainAt(w.buf.subarray(0, w.length), w.at);
      const gathered = this.cur!.subarray(0, this.fill);
      this.cur = undefined;
      this.fill = 0;
      this.writePlain(gathered);
    }
  }

  private writePlain(b: Buffer): void {
    this.writePlainAt(b, this.position);
    this.position += b.length;
  }

  private writePlainAt(b: Buffer, at: number): void {
    // the descriptor opened with O_DIRECT takes aligned writes only
    if (this.direct && this.plain === undefined) this.plain = fs.openSync(this.direct.path, 'r+');
    const fd = this.plain ?? this.fd;
    if (this.lock) this.lock.hold(() => writeAllSync(fd, b, at));
    else writeAllSync(fd, b, at);
  }
}
