/*
 * gRPC's length-prefixed messages (a 1-byte compressed flag, a 4-byte big-endian length, the
 * message) cut out of the HTTP/2 DATA chunks they arrive in, without a buffer per message:
 * grpc-js joins every message into a fresh Buffer, and in the restore workers those ~1 MiB
 * buffers, freed only at V8's next collection, were most of the agent's peak memory (glibc keeps
 * them in the thread's malloc arena). Here a message that lies within one chunk is a view of that
 * chunk, and one that spans chunks is put together in one buffer reused for the whole call.
 */

const PREFIX = 5;

/** What is wrong with the framing the server sent: the call fails with it (gRPC status INTERNAL or RESOURCE_EXHAUSTED). */
export class FramingError extends Error {
  constructor(message: string, readonly tooLarge = false) {
    super(message);
    this.name = 'FramingError';
  }
}

export class MessageReader {
  private readonly chunks: Buffer[] = [];
  /** where the unread bytes of chunks[0] begin */
  private head = 0;
  private queued = 0;
  private joined?: Buffer;

  constructor(private readonly maxLength: number) {}

  /** Bytes received and not yet returned as messages. */
  get buffered(): number {
    return this.queued;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.queued += chunk.length;
  }

  /**
   * The next whole message, or undefined until more bytes are pushed. The message may be a view of
   * memory the next call overwrites: the caller is done with it before it asks for the next.
   */
  next(): Buffer | undefined {
    if (this.queued < PREFIX) return undefined;
    const flag = this.byteAt(0);
    const length = ((this.byteAt(1) << 24) >>> 0) + (this.byteAt(2) << 16) + (this.byteAt(3) << 8) + this.byteAt(4);
    if (flag !== 0) {
      throw new FramingError(flag === 1 ? 'the server sent a compressed message, which this client did not ask for' : `the server sent a message with an unknown flag byte ${flag}`);
    }
    if (length > this.maxLength) throw new FramingError(`Received message larger than max (${length} vs. ${this.maxLength})`, true);
    if (this.queued < PREFIX + length) return undefined;
    this.skip(PREFIX);
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.head >= length) {
      const view = first.subarray(this.head, this.head + length);
      this.skip(length);
      return view;
    }
    return this.join(length);
  }

  private byteAt(i: number): number {
    let at = this.head + i;
    for (const c of this.chunks) {
      if (at < c.length) return c[at];
      at -= c.length;
    }
    throw new Error('MessageReader: read past what was pushed');
  }

  private skip(n: number): void {
    this.queued -= n;
    while (n > 0) {
      const left = this.chunks[0].length - this.head;
      if (n < left) {
        this.head += n;
        return;
      }
      n -= left;
      this.chunks.shift();
      this.head = 0;
    }
  }

  /** The next `length` bytes copied into the reused buffer (grown, never shrunk, when a message is larger than it). */
  private join(length: number): Buffer {
    if (!this.joined || this.joined.length < length) this.joined = Buffer.allocUnsafeSlow(Math.max(length, 64 * 1024));
    const out = this.joined;
    for (let done = 0; done < length;) {
      const c = this.chunks[0];
      const n = Math.min(c.length - this.head, length - done);
      c.copy(out, done, this.head, this.head + n);
      done += n;
      this.skip(n);
    }
    return out.subarray(0, length);
  }
}

/** A message in gRPC's framing: the prefix, then `message`. */
export function framed(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(PREFIX + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, PREFIX);
  return out;
}

/**
 * The status text of a grpc-message header: percent-encoded by the server (grpc-js encodes with
 * encodeURI and decodes with decodeURI; the same here, so a message reads the same either way).
 */
export function statusMessage(value: string | string[] | undefined): string {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return '';
  try {
    return decodeURI(text);
  } catch {
    return text;
  }
}
