import zlib from 'node:zlib';
import { PassThrough, Transform, type TransformCallback } from 'node:stream';
import { UserError } from '../errors';
import { decodeFrame } from './frame-codec';
import { FrameSplitter } from './frame-splitter';

export const COMPRESS_TYPES = ['gz', 'lz4', 'zst', 'none'] as const;
export type CompressType = (typeof COMPRESS_TYPES)[number];

/** The default compress-type of backups and WAL: see README "Choosing a compress-type" for the measurements. */
export const DEFAULT_COMPRESS_TYPE: CompressType = 'zst';

// zlib's 16 KiB default output chunk makes many small messages and halves streaming speed
const ZLIB_CHUNK = 256 * 1024;

export function parseCompressType(value: string): CompressType {
  if ((COMPRESS_TYPES as readonly string[]).includes(value)) return value as CompressType;
  throw new UserError(`unknown compress-type '${value}': use one of ${COMPRESS_TYPES.join(', ')}`);
}

export function compressExtension(type: string): string {
  return type === 'none' ? '' : `.${type}`;
}

/** pgBackRest's defaults: gz 6, lz4 1, zst 3. */
export function defaultCompressLevel(type: CompressType): number {
  return type === 'gz' ? 6 : type === 'zst' ? 3 : type === 'lz4' ? 1 : 0;
}

/**
 * Decompresses in one thread: frames it can delimit are decoded one by one; anything else (gzip
 * written by other tools or older versions, one long zstd stream) goes through the codec's
 * streaming decompressor, so every file ever stored stays readable.
 */
class FrameDecoder extends Transform {
  private readonly splitter: FrameSplitter;
  private stream: Transform | undefined;

  constructor(private readonly type: string) {
    super();
    this.splitter = new FrameSplitter(type);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.stream) {
      this.feed(chunk, done);
      return;
    }
    try {
      for (const frame of this.splitter.push(chunk)) this.push(decodeFrame(this.type, frame));
    } catch (err) {
      done(err as Error);
      return;
    }
    if (!this.splitter.failed) {
      done();
      return;
    }
    this.stream = streamingDecompressor(this.type);
    this.stream.on('data', (out: Buffer) => this.push(out));
    this.stream.on('error', (err) => this.destroy(err));
    this.feed(this.splitter.takeRest(), done);
  }

  override _flush(done: TransformCallback): void {
    if (this.stream) {
      this.stream.once('end', () => done());
      this.stream.end();
      return;
    }
    const rest = this.splitter.takeRest();
    done(rest.length ? truncated(this.type, rest.length) : undefined);
  }

  private feed(chunk: Buffer, done: TransformCallback): void {
    if (this.stream!.write(chunk)) done();
    else this.stream!.once('drain', () => done());
  }
}

export function truncated(type: string, bytes: number): UserError {
  return new UserError(`the ${type} stream ends in the middle of a frame (${bytes} bytes left over): the stored file is truncated`, 'CORRUPT');
}

function streamingDecompressor(type: string): Transform {
  switch (type) {
    case 'gz':
      return zlib.createGunzip({ chunkSize: ZLIB_CHUNK });
    case 'zst': {
      const { DecompressStream } = require('zstd-napi') as typeof import('zstd-napi');
      return new DecompressStream();
    }
    default:
      throw new UserError(`the ${type} stream holds something that is not an ${type} frame: the stored file is damaged`, 'CORRUPT');
  }
}

export function createDecompressor(type: string): Transform {
  switch (type) {
    case 'gz':
    case 'lz4':
    case 'zst':
      return new FrameDecoder(type);
    case 'none':
      return new PassThrough();
    default:
      throw new UserError(`the repository holds a file compressed with '${type}', which this version cannot read`);
  }
}
