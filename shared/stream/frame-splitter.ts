import { frameLength } from './frame-codec';

/**
 * Cuts a stream of stored bytes back into the frames it was written as, so each frame can be
 * decompressed on its own (in parallel). Once the bytes stop looking like frames it can delimit
 * (an old single-member gzip file, a frame without a length), it says so and hands back what it
 * holds, and the caller streams the rest through an ordinary decompressor.
 */
export class FrameSplitter {
  private buf = Buffer.alloc(0);
  private len = 0;
  private unsplittable = false;

  /** `alloc`: where each frame's own memory comes from (a BufferRing's take, say) */
  constructor(private readonly type: string, private readonly alloc: (n: number) => Buffer = (n) => Buffer.allocUnsafeSlow(n)) {}

  /**
   * The frames completed by `data`, in order. Check `failed` after each push: once it is true,
   * the frames returned so far are still good, and takeRest() gives the bytes that follow them.
   */
  push(data: Buffer): Buffer[] {
    this.append(data);
    if (this.unsplittable) return [];
    const frames: Buffer[] = [];
    let start = 0;
    for (;;) {
      const view = this.buf.subarray(start, this.len);
      const n = frameLength(this.type, view, view.length);
      if (n === 'more') break;
      if (n === 'unknown') {
        this.unsplittable = true;
        this.shift(start);
        return frames;
      }
      // a copy that owns its memory, so it can be transferred to a worker thread
      const frame = this.alloc(n);
      this.buf.copy(frame, 0, start, start + n);
      frames.push(frame);
      start += n;
    }
    this.shift(start);
    return frames;
  }

  get failed(): boolean {
    return this.unsplittable;
  }

  /** Bytes held that are not a complete frame (at the end of the stream: a truncated frame). */
  takeRest(): Buffer {
    const rest = Buffer.from(this.buf.subarray(0, this.len));
    this.len = 0;
    return rest;
  }

  private append(data: Buffer): void {
    if (this.len + data.length > this.buf.length) {
      const bigger = Buffer.allocUnsafeSlow(Math.max(this.len + data.length, this.buf.length * 2, 64 * 1024));
      this.buf.copy(bigger, 0, 0, this.len);
      this.buf = bigger;
    }
    data.copy(this.buf, this.len);
    this.len += data.length;
  }

  private shift(start: number): void {
    if (start === 0) return;
    this.buf.copy(this.buf, 0, start, this.len);
    this.len -= start;
  }
}
