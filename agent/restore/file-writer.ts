import fs from 'node:fs';
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

/** A direct writer's buffer: a run of this much is written at once (a multiple of DIRECT_ALIGN). */
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

/** What a direct FileWriter needs: the file's path (for the buffered descriptor of an unaligned head or tail) and an aligned buffer. */
export interface Direct {
  path: string;
  staging: Buffer;
}

/**
 * Writes bytes one after another into `fd` from `position`. Through the page cache: each piece at
 * once, holding `lock` (when given: the parts of one file are written by several workers). With
 * `direct` (fd opened with O_DIRECT): the bytes are gathered in an aligned buffer, written each
 * time it is full, and what is left at the end (less than a whole block: the file's tail) through
 * the page cache; a direct write the file system refuses (EINVAL) is redone through the page cache,
 * and so is everything after it.
 */
export class FileWriter {
  /** where the next byte goes (direct: the first byte gathered in `cur`) */
  private position: number;
  /** direct: the buffer being filled, until a direct write is refused; and how much of it is */
  private cur?: Buffer;
  private fill = 0;
  /** for the unaligned head or tail, and the rest of the file after a refused direct write */
  private plain?: number;
  /** direct: bytes still to go through the page cache before the first aligned boundary */
  private head: number;

  constructor(private readonly fd: number, position: number, private readonly direct?: Direct, private readonly lock?: WriteLock) {
    this.position = position;
    this.cur = direct?.staging;
    // an unaligned start: the bytes up to the next boundary are written through the page cache
    this.head = direct ? (DIRECT_ALIGN - (position % DIRECT_ALIGN)) % DIRECT_ALIGN : 0;
  }

  write(b: Buffer): void {
    if (this.head > 0) {
      const n = Math.min(this.head, b.length);
      this.writePlain(b.subarray(0, n));
      this.head -= n;
      b = b.subarray(n);
    }
    while (b.length > 0) {
      if (!this.cur) {
        this.writePlain(b);
        return;
      }
      const n = b.copy(this.cur, this.fill);
      this.fill += n;
      b = b.subarray(n);
      if (this.fill === this.cur.length) this.writeGathered(this.fill);
    }
  }

  /** Writes what is gathered (the tail that is not a whole aligned block through the page cache) and closes the tail's descriptor. Call once, at the end. */
  end(): void {
    if (this.cur) {
      const aligned = this.fill - (this.fill % DIRECT_ALIGN);
      const tail = this.cur.subarray(aligned, this.fill);
      if (this.writeGathered(aligned)) this.writePlain(tail);
    }
    this.close();
  }

  /** Closes the descriptor of the head or tail, however the writing ended: call before `fd` is closed. */
  close(): void {
    if (this.plain !== undefined) fs.closeSync(this.plain);
    this.plain = undefined;
  }

  /**
   * Writes the first `length` bytes gathered (whole blocks) to the disk and empties the buffer.
   * Returns false when the file system refused: then all that was gathered went through the page
   * cache, as everything after it will.
   */
  private writeGathered(length: number): boolean {
    const gathered = this.cur!.subarray(0, this.fill);
    this.fill = 0;
    if (length === 0) return true;
    try {
      writeAllSync(this.fd, gathered.subarray(0, length), this.position);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      directRefused = true;
      this.cur = undefined;
      this.writePlain(gathered);
      return false;
    }
    this.position += length;
    return true;
  }

  private writePlain(b: Buffer): void {
    // the descriptor opened with O_DIRECT takes aligned writes only
    if (this.direct && this.plain === undefined) this.plain = fs.openSync(this.direct.path, 'r+');
    const fd = this.plain ?? this.fd;
    const at = this.position;
    if (this.lock) this.lock.hold(() => writeAllSync(fd, b, at));
    else writeAllSync(fd, b, at);
    this.position += b.length;
  }
}
