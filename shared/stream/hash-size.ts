import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export interface HashSizeResult {
  size: number;
  checksum: string;
}

/**
 * Passes bytes through unchanged while counting them and taking their SHA-1: the "In" filter
 * of pgBackRest's IoFilterGroup. Placed before compression it proves the original; after, the stored bytes.
 */
export class HashSize extends Transform {
  private readonly hash: Hash = createHash('sha1');
  private bytes = 0;
  private digest: string | undefined;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    this.digest = this.hash.digest('hex');
    done();
  }

  get size(): number {
    return this.bytes;
  }

  /** Valid once the stream has ended. */
  result(): HashSizeResult {
    if (this.digest === undefined) throw new Error('HashSize.result() called before the stream ended');
    return { size: this.bytes, checksum: this.digest };
  }
}
