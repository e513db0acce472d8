import { FRAME_SIZE } from './frame-codec';

/** Room for a frame of FRAME_SIZE original bytes that did not shrink, with its codec's framing. */
export const RING_BUFFER_SIZE = FRAME_SIZE + 64 * 1024;

/**
 * Frame-sized buffers used again instead of allocated for every chunk. A fresh 1 MiB buffer that
 * lives a few milliseconds too long (queued for a worker, waiting for a write) is promoted to
 * V8's old generation, and its memory counts against the old generation's limit until the next
 * full collection: at hundreds of MiB/s that forced a mark-compact every few dozen
 * milliseconds, which cost more CPU than the codecs. Buffers here move between the main thread
 * and the codec workers and come back; a buffer that does not come back (sent on, kept) is
 * simply not reused. Only buffers of exactly RING_BUFFER_SIZE are kept, and at most `keep`.
 */
export class BufferRing {
  private readonly free: ArrayBuffer[] = [];

  constructor(private readonly keep: number) {}

  /** A buffer of `n` bytes: a view of a kept one when `n` fits, else a new one. */
  take(n: number): Buffer {
    if (n > RING_BUFFER_SIZE) return Buffer.allocUnsafeSlow(n);
    const ab = this.free.pop() ?? Buffer.allocUnsafeSlow(RING_BUFFER_SIZE).buffer;
    return Buffer.from(ab, 0, n);
  }

  /** A whole buffer to take from (e.g. to decode into). */
  takeWhole(): Buffer {
    return this.take(RING_BUFFER_SIZE);
  }

  /** Gives back the memory under `b` (any view of it); the caller must not use `b` afterwards. */
  give(b: Uint8Array | undefined): void {
    const ab = b?.buffer;
    if (ab instanceof ArrayBuffer && ab.byteLength === RING_BUFFER_SIZE && this.free.length < this.keep && !this.free.includes(ab)) this.free.push(ab);
  }
}
