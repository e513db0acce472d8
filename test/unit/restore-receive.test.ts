/**
 * The restore worker's receiver (agent/restore/receive.ts): stored frames cut anywhere by the
 * transport, frames whole inside one message or spread over several, raw (incompressible) lz4
 * blocks put back together from pieces, give the original bytes, their SHA-1 and the stored size;
 * a stream cut in the middle of a frame is damage; bytes that are not delimited frames are handed
 * to the other path. A part of a file (split.ts) is written at the offset the frame index gives it.
 * Each through the page cache and with direct I/O (file-writer.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeFrame, FRAME_SIZE } from '../../shared/stream/frame-codec';
import { FileReceiver, ReceiveScratch, UnframedError } from '../../agent/restore/receive';
import { alignedBuffer, FileWriter, openForWrite, readToEnd, STAGING_SIZE } from '../../agent/restore/file-writer';
import { partsFor, partsMisfit } from '../../agent/restore/split';
import type { PartWritten } from '../../agent/restore/fetch-pool';
import { frameIndex, partRange, plainIndex } from '../../shared/stream/frame-walk';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'receive-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Three frames' worth and a bit: random (stored raw by lz4, barely shrunk by zstd) and repetitive halves. */
const original = Buffer.concat([randomBytes(FRAME_SIZE + 1000), Buffer.alloc(FRAME_SIZE, 'pgrepo '), randomBytes(FRAME_SIZE / 2), Buffer.alloc(12345, 7)]);

function stored(type: string): Buffer {
  if (type === 'none') return original;
  const frames: Buffer[] = [];
  for (let i = 0; i < original.length; i += FRAME_SIZE) frames.push(encodeFrame(type, type === 'gz' ? 6 : type === 'lz4' ? 1 : 3, original.subarray(i, i + FRAME_SIZE)));
  return Buffer.concat(frames);
}

function pieces(b: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  // each piece in memory of its own, as received messages are
  for (let i = 0; i < b.length; i += size) out.push(Buffer.from(b.subarray(i, i + size)));
  return out;
}

/** A writer into `file` from `position`, with direct I/O when `direct` (where the file system takes it). */
function writerInto(file: string, flags: 'w' | 'r+', position: number, direct: boolean) {
  const opened = openForWrite(file, flags, 0o600, direct);
  const writer = new FileWriter(opened.fd, position, opened.direct ? { path: file, staging: alignedBuffer(STAGING_SIZE) } : undefined);
  return {
    writer,
    close: async () => {
      writer.close();
      fs.closeSync(opened.fd);
    },
  };
}

let n = 0;
async function receive(type: string, parts: Buffer[], scratch = new ReceiveScratch(), direct = false) {
  const file = path.join(dir, `f${n++}`);
  const { writer, close } = writerInto(file, 'w', 0, direct);
  try {
    const r = new FileReceiver(writer, type, scratch);
    try {
      for (const p of parts) r.push(p);
      return { sums: r.finish(), written: fs.readFileSync(file) };
    } finally {
      r.release();
    }
  } finally {
    await close();
  }
}

describe('FileReceiver', () => {
  const sha1 = createHash('sha1').update(original).digest('hex');

  it.each(['zst', 'lz4', 'gz', 'none'].flatMap((type) => [[type, false], [type, true]] as const))('%s, direct I/O %s: the original bytes, their SHA-1 and the stored size, however the stored bytes are cut', async (type, direct) => {
    const s = stored(type);
    const scratch = new ReceiveScratch();
    for (const size of [s.length, FRAME_SIZE, FRAME_SIZE + 4096, 300_000, 65_537, 4096]) {
      const { sums, written } = await receive(type, pieces(s, size), scratch, direct);
      expect(sums.original, `${type} cut every ${size} bytes`).toEqual({ size: original.length, checksum: sha1 });
      expect(sums.storedSize).toBe(s.length);
      expect(written.equals(original), `${type} cut every ${size} bytes: the file's bytes`).toBe(true);
    }
  });

  it('a stream that ends in the middle of a frame is damage', async () => {
    const s = stored('zst');
    await expect(receive('zst', pieces(s.subarray(0, s.length - 100), 100_000))).rejects.toThrow(/ends in the middle of a frame.*truncated/);
  });

  it('bytes that are not delimited frames (one ordinary gzip member) go to the other path', async () => {
    await expect(receive('gz', pieces(zlib.gzipSync(original), 100_000))).rejects.toThrow(UnframedError);
  });
});

describe('FileReceiver writing a part at its offset', () => {
  it.each(['zst', 'lz4', 'gz', 'none'].flatMap((type) => [[type, false], [type, true]] as const))('%s, direct I/O %s: two parts, received in either order at the offsets the frame index gives, make the file; part 0 begins its SHA-1', async (type, direct) => {
    const s = stored(type);
    const index = type === 'none' ? plainIndex(s.length) : frameIndex(type, (p, len) => s.subarray(p, p + len), s.length)!;
    const file = path.join(dir, `parts-${type}-${direct}`);
    fs.closeSync(fs.openSync(file, 'w'));
    const hash = createHash('sha1');
    const written: PartWritten[] = [];
    const scratch = new ReceiveScratch();
    for (const part of [1, 0]) {
      const { start, length, firstFrame } = partRange(index.stored, s.length, part, 2);
      const { writer, close } = writerInto(file, 'r+', index.original[firstFrame], direct);
      const r = new FileReceiver(writer, type, scratch, { hash: part === 0 ? hash : undefined });
      try {
        for (const p of pieces(s.subarray(start, start + length), 300_000)) r.push(p);
        const sums = r.finish();
        expect(sums.storedSize).toBe(length);
        expect(sums.original.checksum, 'a part does not end the hash').toBe('');
        written[part] = { offset: index.original[firstFrame], size: sums.original.size };
      } finally {
        r.release();
        await close();
      }
    }
    const bytes = fs.readFileSync(file);
    expect(bytes.equals(original)).toBe(true);
    expect(partsMisfit(written, original.length)).toBeUndefined();
    // carried on over part 1, read back from the file: the whole file's SHA-1
    const fd = fs.openSync(file, 'r');
    try {
      expect(readToEnd(file, fd, written[0].size, scratch.takeStaging(), Buffer.alloc(100_000), (b) => hash.update(b))).toBe(original.length);
    } finally {
      fs.closeSync(fd);
    }
    expect(hash.digest('hex')).toBe(createHash('sha1').update(original).digest('hex'));
  });
});

describe('partsMisfit', () => {
  it('parts end to end from byte 0 make the file; a gap, an overlap, a wrong start or a wrong total is damage', () => {
    expect(partsMisfit([{ offset: 0, size: 10 }, { offset: 10, size: 5 }], 15)).toBeUndefined();
    // an empty part (fewer frames than parts) writes nothing, wherever it says it starts
    expect(partsMisfit([{ offset: 0, size: 0 }, { offset: 0, size: 15 }, { offset: 0, size: 0 }], 15)).toBeUndefined();
    expect(partsMisfit([{ offset: 0, size: 10 }, { offset: 12, size: 3 }], 15)).toMatch(/part 2 of 2 was written at byte 12, where byte 10 was due/);
    expect(partsMisfit([{ offset: 0, size: 10 }, { offset: 8, size: 7 }], 15)).toMatch(/part 2 of 2 was written at byte 8/);
    expect(partsMisfit([{ offset: 4, size: 11 }], 15)).toMatch(/part 1 of 1 was written at byte 4, where byte 0 was due/);
    expect(partsMisfit([{ offset: 0, size: 10 }, { offset: 10, size: 4 }], 15)).toMatch(/its parts hold 14 bytes, where the manifest records 15/);
  });
});

describe('partsFor', () => {
  it('splits only framed files of at least two parts\' worth, in at most one part per worker', () => {
    const mib = 1024 * 1024;
    expect(partsFor({ size: 974 * mib, compress_type: 'zst' }, 2)).toBe(2);
    expect(partsFor({ size: 974 * mib, compress_type: 'zst' }, 1)).toBe(1);
    expect(partsFor({ size: 974 * mib, compress_type: 'none' }, 4)).toBe(4);
    expect(partsFor({ size: 974 * mib, compress_type: 'bz2' }, 4)).toBe(1);
    expect(partsFor({ size: 100 * mib, compress_type: 'lz4' }, 4)).toBe(1);
    expect(partsFor({ size: 200 * mib, compress_type: 'gz' }, 4)).toBe(3);
    expect(partsFor({ size: 20 * mib, compress_type: 'zst' }, 2, 4 * mib)).toBe(2);
  });
});
