import fs from 'node:fs';
import fsp from 'node:fs/promises';

/**
 * Writing a backup file through the page cache costs the server a copy of every byte into
 * pages it has to allocate first, and nothing reads them back soon. With O_DIRECT the disk
 * takes the bytes straight from a staging buffer. O_DIRECT wants the buffer's address, the
 * file offset and the length aligned to the device's block; JavaScript cannot align a
 * Buffer, but a WebAssembly memory starts on a page boundary, so the staging buffers are
 * slices of one.
 */
const STAGE_SIZE = 1024 * 1024;
const STAGES = 32;
/** every offset and length written with O_DIRECT is a multiple of this */
const ALIGN = 4096;
/** stages of one file being written at once: the next one fills while these go to disk */
const WRITES_AHEAD = 2;

class StagePool {
  private free: Buffer[] | undefined;

  /** A free stage, or undefined when all are taken (the caller then writes through the page cache). */
  take(): Buffer | undefined {
    if (!this.free) {
      const memory = new WebAssembly.Memory({ initial: (STAGES * STAGE_SIZE) / 65536, maximum: (STAGES * STAGE_SIZE) / 65536 });
      this.free = [];
      for (let i = 0; i < STAGES; i++) this.free.push(Buffer.from(memory.buffer, i * STAGE_SIZE, STAGE_SIZE));
    }
    return this.free.pop();
  }

  give(stage: Buffer): void {
    this.free!.push(stage);
  }
}

const pool = new StagePool();

/** Opens a new file for direct writes; undefined where the filesystem refuses O_DIRECT (tmpfs, some FUSE). */
export async function openDirect(file: string, mode: number): Promise<fsp.FileHandle | undefined> {
  if (!fs.constants.O_DIRECT) return undefined;
  try {
    return await fsp.open(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_DIRECT, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EINVAL') return undefined;
    throw err;
  }
}

/**
 * Appends bytes to a file opened with O_DIRECT, in whole stages at aligned offsets; the last,
 * partial stage is written padded to the alignment and the file then cut to its length. Where
 * direct writes cannot go on (no free stage, or the device wants another alignment) the rest
 * of the file goes through the page cache by a second descriptor, at the same offsets.
 * Appends are copied in the order they are called and resolve once copied, or, when WRITES_AHEAD
 * stages are already being written, once one of them is done.
 */
export class DirectAppender {
  private stage: Buffer | undefined;
  private fill = 0;
  /** file offset of the stage being filled */
  private at = 0;
  private buffered: fsp.FileHandle | undefined;
  private bufferedOpening: Promise<fsp.FileHandle> | undefined;
  private readonly writing = new Set<Promise<void>>();
  private failure: Error | undefined;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly handle: fsp.FileHandle, private readonly file: string) {}

  append(data: Uint8Array): Promise<void> {
    const copied = this.queue.then(() => this.copy(data));
    this.queue = copied.catch(() => undefined);
    return copied;
  }

  /** Writes what is left, cuts the file to its length, waits for every write; throws the first write's failure. */
  async finish(): Promise<void> {
    await this.queue;
    if (this.buffered && !this.failure) await this.stageToPageCache();
    if (this.stage && this.fill > 0 && !this.failure) {
      const length = this.at + this.fill;
      const padded = Math.ceil(this.fill / ALIGN) * ALIGN;
      this.stage.fill(0, this.fill, padded);
      this.startWrite(this.stage, padded, this.at);
      this.stage = undefined;
      await this.settle();
      if (padded !== this.fill) await this.handle.truncate(length);
    }
    await this.settle();
    this.release();
    if (this.failure) throw this.failure;
  }

  /** Waits for the writes under way and gives the stages back; the file is being thrown away. */
  async abandon(): Promise<void> {
    await this.queue;
    await this.settle();
    this.release();
  }

  /** Closes the page-cache descriptor, if one was opened. */
  async close(): Promise<void> {
    const buffered = await this.bufferedOpening?.catch(() => undefined);
    await buffered?.close().catch(() => undefined);
  }

  private async copy(data: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    let off = 0;
    while (off < data.length) {
      if (!this.stage && !this.buffered) {
        while (this.writing.size >= WRITES_AHEAD) await Promise.race(this.writing);
        if (this.failure) throw this.failure;
        this.stage = pool.take();
        this.fill = 0;
        if (!this.stage) await this.openBuffered(); // every stage is taken
      }
      if (this.buffered) {
        await this.stageToPageCache();
        // past the last direct write, the bytes go where they belong through the page cache
        await writeFully(this.buffered, data.subarray(off), this.at);
        this.at += data.length - off;
        return;
      }
      const stage = this.stage!;
      const n = Math.min(data.length - off, STAGE_SIZE - this.fill);
      stage.set(data.subarray(off, off + n), this.fill);
      this.fill += n;
      off += n;
      if (this.fill === STAGE_SIZE) {
        this.startWrite(stage, STAGE_SIZE, this.at);
        this.stage = undefined;
        this.at += STAGE_SIZE;
        this.fill = 0;
      }
    }
  }

  private startWrite(stage: Buffer, length: number, at: number): void {
    const written: Promise<void> = this.writeStage(stage, length, at)
      .catch((err: Error) => { this.failure ??= err; })
      .finally(() => {
        this.writing.delete(written);
        pool.give(stage);
      });
    this.writing.add(written);
  }

  private async writeStage(stage: Buffer, length: number, at: number): Promise<void> {
    try {
      if (!this.buffered) {
        await writeFully(this.handle, stage.subarray(0, length), at);
        return;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    }
    // the device wants another alignment: this stage and the rest go through the page cache
    const buffered = await this.openBuffered();
    await writeFully(buffered, stage.subarray(0, length), at);
  }

  /** Once direct writes have stopped, the bytes of the stage being filled go through the page cache too. */
  private async stageToPageCache(): Promise<void> {
    if (!this.stage) return;
    await writeFully(this.buffered!, this.stage.subarray(0, this.fill), this.at);
    this.at += this.fill;
    this.fill = 0;
    this.release();
  }

  private openBuffered(): Promise<fsp.FileHandle> {
    this.bufferedOpening ??= fsp.open(this.file, 'r+').then((h) => (this.buffered = h));
    return this.bufferedOpening;
  }

  private async settle(): Promise<void> {
    while (this.writing.size > 0) await Promise.race(this.writing);
  }

  private release(): void {
    if (this.stage) pool.give(this.stage);
    this.stage = undefined;
  }
}

async function writeFully(handle: fsp.FileHandle, data: Uint8Array, at: number): Promise<void> {
  let off = 0;
  while (off < data.length) {
    const { bytesWritten } = await handle.write(data, off, data.length - off, at + off);
    off += bytesWritten;
  }
}
