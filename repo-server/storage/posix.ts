import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { safeJoin } from '../../shared/validate';
import { syncDirectory } from '../../shared/fs-sync';

/**
 * The repository on a local (or mounted) filesystem. Keys are relative paths; nothing is
 * visible under its final name until it is complete and durable: temp file → fsync → rename → fsync dir.
 */
export class PosixStorage {
  constructor(readonly root: string) {}

  path(key: string): string {
    return safeJoin(this.root, key);
  }

  async exists(key: string): Promise<boolean> {
    try {
      await fsp.lstat(this.path(key));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  /** The file's bytes, or null when it does not exist. */
  async read(key: string): Promise<Buffer | null> {
    try {
      return await fsp.readFile(this.path(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /**
   * Reads the file's bytes, or `length` of them from `start` (a file inside a bundle), into buffers
   * the caller gives (`into`: where the next piece goes, and at most how many bytes): for a
   * reader that reuses its memory. Yields how many bytes each read filled.
   */
  /**
   * With `opened`, the file is read through the handle it gives (kept open by the caller, say a
   * bundle read file after file). With `cut`, a piece ends where `cut(buf, n)` says (0: no cut) and
   * the bytes after begin the next piece: a restore sends whole frames in each message.
   */
  async *readPieces(key: string, into: () => Buffer, range?: { start: number; length: number },
    opened?: (key: string) => Promise<fsp.FileHandle>, cut?: (buf: Buffer, n: number) => number): AsyncGenerator<{ buf: Buffer; n: number }> {
    if (range && range.length === 0) return;
    const handle = opened ? await opened(key) : await fsp.open(this.path(key), 'r');
    try {
      let position = range?.start ?? 0;
      let left = range?.length ?? Infinity;
      let buf = into();
      // bytes at the start of `buf` already read: what the last piece left for this one
      let have = 0;
      for (;;) {
        let bytesRead = 0;
        if (left > 0) {
          ({ bytesRead } = await handle.read(buf, have, Math.min(buf.length - have, left), position));
          position += bytesRead;
          left = bytesRead === 0 ? 0 : left - bytesRead;
        }
        const n = have + bytesRead;
        if (n === 0) return;
        // a piece none of which `cut` would send (a frame larger than the buffer, bytes that are not frames) goes whole
        const send = cut && left > 0 ? cut(buf, n) || n : n;
        const next = left > 0 || send < n ? into() : undefined;
        have = n - send;
        // copied out before the piece goes: its memory may be used again as soon as it is sent
        if (next && have > 0) buf.copy(next, 0, send, n);
        yield { buf, n: send };
        if (!next) return;
        buf = next;
      }
    } finally {
      if (!opened) await handle.close();
    }
  }

  /** The file's bytes, or `length` of them from `start` (a file inside a bundle). */
  openRead(key: string, highWaterMark = 256 * 1024, range?: { start: number; length: number }): Readable {
    if (range && range.length === 0) return Readable.from([]);
    const limits = range ? { start: range.start, end: range.start + range.length - 1 } : {};
    return fs.createReadStream(this.path(key), { highWaterMark, ...limits });
  }

  async size(key: string): Promise<number> {
    return (await fsp.stat(this.path(key))).size;
  }

  /** Names in a directory; empty when it does not exist. */
  async list(key: string): Promise<string[]> {
    try {
      return (await fsp.readdir(this.path(key))).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  /** Every file below a directory, as keys relative to it ('pg_data/base/1/1259.gz'); empty when it does not exist. */
  async listTree(key: string): Promise<string[]> {
    const root = this.path(key);
    const found: string[] = [];
    const stack = [''];
    for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
      let entries: fs.Dirent[];
      try {
        entries = await fsp.readdir(path.join(root, dir), { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      for (const e of entries) {
        const rel = dir ? `${dir}/${e.name}` : e.name;
        if (e.isDirectory()) stack.push(rel);
        else found.push(rel);
      }
    }
    return found.sort();
  }

  async mkdirp(key: string): Promise<void> {
    await fsp.mkdir(this.path(key), { recursive: true, mode: 0o750 });
  }

  async writeAtomic(key: string, data: Buffer | string): Promise<void> {
    const tmp = await this.openTemp(key);
    try {
      await tmp.handle.writeFile(data);
      await tmp.commit();
    } finally {
      await tmp.discard();
    }
  }

  /** Writes a stream under a temp name; call commit() to make it durable and visible, discard() otherwise. */
  async openTemp(key: string): Promise<TempFile> {
    const final = this.path(key);
    await fsp.mkdir(path.dirname(final), { recursive: true, mode: 0o750 });
    const tmpPath = `${final}.pgrepo.tmp.${randomBytes(4).toString('hex')}`;
    const handle = await fsp.open(tmpPath, 'wx', 0o640);
    return new TempFile(handle, tmpPath, final);
  }

  async remove(key: string, recursive = false): Promise<void> {
    await fsp.rm(this.path(key), { recursive, force: true });
  }

  /** Replaces a symlink atomically (create under a temp name, rename over). */
  async symlink(key: string, target: string): Promise<void> {
    const link = this.path(key);
    const tmp = `${link}.pgrepo.tmp.${randomBytes(4).toString('hex')}`;
    await fsp.symlink(target, tmp);
    await fsp.rename(tmp, link);
    await syncDirectory(path.dirname(link));
  }
}

/**
 * A file being appended to starts writing its bytes to disk every this many bytes, in the
 * background: otherwise the kernel holds them all (its dirty limits are GiBs on a large
 * machine) and the fsync of commit() waits for a whole large file at the end of its upload,
 * behind whatever else the disk is flushing by then.
 */
const SYNC_EVERY = 64 * 1024 * 1024;

/**
 * Appends smaller than this are gathered into one buffer of COALESCE_SIZE and written together:
 * a bundle is thousands of files of a few hundred bytes each, and one write each (a trip
 * through libuv's thread pool, waited for at every file's trailer) cost the server more CPU
 * than everything else it does for them.
 */
const COALESCE_MAX = 64 * 1024;
const COALESCE_SIZE = 1024 * 1024;

export class TempFile {
  private done = false;
  /** where the next append lands */
  private end = 0;
  private unsynced = 0;
  private syncing: Promise<void> | undefined;
  /** small appends not yet written: their bytes, and where they go */
  private pending: { buf: Buffer; at: number; len: number } | undefined;

  constructor(readonly handle: fsp.FileHandle, readonly tmpPath: string, readonly finalPath: string) {}

  /**
   * Writes `data` after what the previous appends wrote, at its own offset: appends may be in
   * flight together, and each lands in its place whatever order they finish in (every offset is
   * taken before the first await). A small append is copied and resolves at once; its bytes are
   * written with the ones around it, at the latest by commit.
   */
  append(data: Uint8Array): Promise<void> {
    if (data.length <= COALESCE_MAX) {
      const full = this.pending && this.pending.len + data.length > this.pending.buf.length;
      const flushed = full ? this.writePending() : undefined;
      this.pending ??= { buf: Buffer.allocUnsafe(COALESCE_SIZE), at: this.end, len: 0 };
      this.pending.buf.set(data, this.pending.len);
      this.pending.len += data.length;
      this.end += data.length;
      return flushed ?? Promise.resolve();
    }
    const flushed = this.writePending();
    const at = this.end;
    this.end += data.length;
    return Promise.all([flushed, this.writeAt(data, at)]).then(() => undefined);
  }

  /** Starts writing the gathered small appends (nothing when there are none). */
  private writePending(): Promise<void> {
    const p = this.pending;
    if (!p) return Promise.resolve();
    this.pending = undefined;
    return this.writeAt(p.buf.subarray(0, p.len), p.at);
  }

  private async writeAt(data: Uint8Array, at: number): Promise<void> {
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await this.handle.write(data, off, data.length - off, at);
      off += bytesWritten;
      at += bytesWritten;
    }
    this.unsynced += data.length;
    if (this.unsynced >= SYNC_EVERY && !this.syncing) {
      this.unsynced = 0;
      const syncing = this.handle.datasync().finally(() => {
        if (this.syncing === syncing) this.syncing = undefined;
      });
      syncing.catch(() => undefined); // a failure is met again by commit()'s own sync, or by its wait for this one
      this.syncing = syncing;
    }
  }

  async commit(): Promise<void> {
    await this.commitAs(this.finalPath);
  }

  /** Commits under another name in the same directory (when the name depends on the content, as for WAL). */
  async commitAs(finalPath: string): Promise<void> {
    await this.writePending();
    await this.syncing;
    await this.handle.sync();
    await this.handle.close();
    await fsp.rename(this.tmpPath, finalPath);
    this.done = true;
    await syncDirectory(path.dirname(finalPath));
  }

  async discard(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.syncing?.catch(() => undefined);
    await this.handle.close().catch(() => undefined);
    await fsp.rm(this.tmpPath, { force: true });
  }
}
