import { createHash, type Hash } from 'node:crypto';
import { decodeFrame, frameLength } from '../../shared/stream/frame-codec';
import { RING_BUFFER_SIZE } from '../../shared/stream/buffer-ring';
import { truncated } from '../../shared/stream/compress';
import { CodecError } from '../../shared/stream/codec-pool';
import type { Downloaded } from '../transfer/download';
import { alignedBuffer, STAGING_SIZE, type FileWriter } from './file-writer';

/** The stored bytes stop being frames this reader can delimit (a file written without frame lengths): another path must read the file. */
export class UnframedError extends Error {
  readonly code = 'UNFRAMED';
}

/**
 * Memory one thread reuses for every file it receives, so a restore allocates nothing per frame:
 * one buffer to decode into (used and written at once), the buffers in which frames that arrived
 * in pieces are put back together, and the aligned buffers of direct writes (one each per file
 * being received).
 */
export class ReceiveScratch {
  readonly out = Buffer.allocUnsafeSlow(RING_BUFFER_SIZE);
  private readonly spare: Buffer[] = [];
  private readonly spareStaging: Buffer[] = [];
  private noAligned = false;

  take(): Buffer {
    return this.spare.pop() ?? Buffer.allocUnsafeSlow(RING_BUFFER_SIZE);
  }

  give(b: Buffer): void {
    if (this.spare.length < 8) this.spare.push(b);
  }

  /** An aligned buffer for direct I/O, or undefined when none can be had (its memory is reserved like WebAssembly's: an address-space limit may refuse it). */
  takeStaging(): Buffer | undefined {
    const spare = this.spareStaging.pop();
    if (spare || this.noAligned) return spare;
    try {
      return alignedBuffer(STAGING_SIZE);
    } catch {
      this.noAligned = true;
      return undefined;
    }
  }

  giveStaging(b: Buffer): void {
    if (this.spareStaging.length < 4) this.spareStaging.push(b);
  }
}

/** A step when the length of a frame that arrived in pieces is not known yet: its header and block headers come in this much at a time. */
const PROBE = 128 * 1024 + 16;

/**
 * Writes one file from its stored bytes as they arrive, all on the calling thread (a restore
 * worker's): frames are cut out of the received buffers (a frame that spans two of them is put
 * together in the scratch buffer), decoded into the scratch buffer, hashed (SHA-1 of the
 * original bytes, the manifest's checksum) and written with plain write(2)s. The stored bytes
 * are only counted: damage to them either fails the decode or changes the original bytes' SHA-1.
 */
export class FileReceiver {
  private readonly hash?: Hash;
  private readonly part: boolean;
  private size = 0;
  private stored = 0;
  private carried = 0;
  private carry?: Buffer;

  /**
   * The bytes go to `writer`. With `part`, the receiver takes one part of a file (split.ts), and
   * adds what it writes to `part.hash` when given (the file's SHA-1, begun by part 0 and carried on
   * by its caller: finish() does not end it); a later part's SHA-1 would say nothing of the
   * file's, which is over its bytes in order.
   */
  constructor(private readonly writer: FileWriter, private readonly type: string, private readonly scratch: ReceiveScratch,
    part?: { hash?: Hash }) {
    this.part = part !== undefined;
    this.hash = part ? part.hash : createHash('sha1');
  }

  /** Gives the memory back; call once done with the receiver, however it ended (the writer is its caller's). */
  release(): void {
    if (this.carry) this.scratch.give(this.carry);
    this.carry = undefined;
  }

  /** Takes the next received bytes, decoded and written before it returns. */
  push(data: Buffer): void {
    this.stored += data.length;
    if (this.type === 'none') {
      this.emit(data);
      return;
    }
    let pos = this.carried > 0 ? this.completeCarried(data) : 0;
    while (pos < data.length) {
      const n = frameLength(this.type, data.subarray(pos), data.length - pos);
      if (n === 'unknown') throw new UnframedError(`the stored ${this.type} bytes are not frames this reader can delimit`);
      if (n === 'more') break;
      this.decode(data.subarray(pos, pos + n));
      pos += n;
    }
    if (pos < data.length) this.keep(data, pos, data.length - pos);
  }

  /** Writes what the writer holds; the sizes, and of a whole file its SHA-1 (of a part: '', its caller's hash goes on). */
  finish(): Downloaded {
    if (this.carried > 0) throw truncated(this.type, this.carried);
    this.writer.end();
    const checksum = this.part ? '' : this.hash!.digest('hex');
    return { original: { size: this.size, checksum }, storedSize: this.stored };
  }

  /**
   * Adds the first bytes of `data` to the frame begun in earlier buffers, a step at a time until
   * its length is known and it is whole; decodes it. Returns where in `data` the next frame
   * starts (all of `data`, when the frame goes on).
   */
  private completeCarried(data: Buffer): number {
    let pos = 0;
    for (;;) {
      const n = frameLength(this.type, this.carry!, this.carried);
      if (n === 'unknown') throw new UnframedError(`the stored ${this.type} bytes are not frames this reader can delimit`);
      if (typeof n === 'number') {
        this.decode(this.carry!.subarray(0, n));
        // what was copied past the frame's end is read again from `data`, where it still is
        const next = pos - (this.carried - n);
        this.carried = 0;
        return next;
      }
      if (pos === data.length) return pos;
      const take = Math.min(data.length - pos, PROBE);
      this.keep(data, pos, take);
      pos += take;
    }
  }

  private keep(data: Buffer, start: number, n: number): void {
    this.carry ??= this.scratch.take();
    if (this.carried + n > this.carry.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(this.carried + n, this.carry.length * 2));
      this.carry.copy(bigger, 0, 0, this.carried);
      this.carry = bigger;
    }
    data.copy(this.carry!, this.carried, start, start + n);
    this.carried += n;
  }

  private decode(frame: Buffer): void {
    let original: Buffer;
    try {
      original = decodeFrame(this.type, frame, this.scratch.out);
    } catch (err) {
      throw new CodecError((err as Error).message);
    }
    this.emit(original);
  }

  private emit(b: Buffer): void {
    this.hash?.update(b);
    this.size += b.length;
    this.writer.write(b);
  }
}
