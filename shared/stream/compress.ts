import zlib from 'node:zlib';
import { PassThrough, type Transform } from 'node:stream';
import { UserError } from '../errors';

export const COMPRESS_TYPES = ['gz', 'none'] as const;
export type CompressType = (typeof COMPRESS_TYPES)[number];

// zlib's 16 KiB default output chunk makes many small messages and halves streaming speed
const ZLIB_CHUNK = 256 * 1024;

export function parseCompressType(value: string): CompressType {
  if ((COMPRESS_TYPES as readonly string[]).includes(value)) return value as CompressType;
  throw new UserError(`unknown compress-type '${value}': use one of ${COMPRESS_TYPES.join(', ')}`);
}

export function compressExtension(type: string): string {
  return type === 'none' ? '' : `.${type}`;
}

export function defaultCompressLevel(type: CompressType): number {
  return type === 'gz' ? 6 : 0;
}

export function createCompressor(type: string, level: number): Transform {
  switch (type) {
    case 'gz':
      if (level < 0 || level > 9) throw new UserError(`compress-level ${level} is out of range for gz: use 0-9`);
      return zlib.createGzip({ level, chunkSize: ZLIB_CHUNK });
    case 'none':
      return new PassThrough();
    default:
      throw new UserError(`unknown compress-type '${type}'`);
  }
}

export function createDecompressor(type: string): Transform {
  switch (type) {
    case 'gz':
      return zlib.createGunzip({ chunkSize: ZLIB_CHUNK });
    case 'none':
      return new PassThrough();
    default:
      throw new UserError(`the repository holds a file compressed with '${type}', which this version cannot read`);
  }
}
