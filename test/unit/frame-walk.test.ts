import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { decodeFrame, encodeFrame, FRAME_SIZE } from '../../shared/stream/frame-codec';
import { frameIndex, partRange, plainIndex } from '../../shared/stream/frame-walk';

function storedFile(type: string, original: Buffer) {
  const frames: Buffer[] = [];
  for (let at = 0; at < original.length; at += FRAME_SIZE) frames.push(encodeFrame(type, type === 'gz' ? 6 : 1, original.subarray(at, at + FRAME_SIZE)));
  const stored = Buffer.concat(frames);
  const starts: number[] = [];
  let pos = 0;
  for (const f of frames) {
    starts.push(pos);
    pos += f.length;
  }
  let reads = 0;
  const readAt = (p: number, n: number) => {
    reads++;
    return stored.subarray(p, p + n);
  };
  return { stored, starts, readAt, reads: () => reads };
}

// half random (blocks stored raw), half text-like (compressed blocks): both kinds of block headers
const original = Buffer.concat([randomBytes(3 * FRAME_SIZE), Buffer.from('row of text, '.repeat(220_000)).subarray(0, 2 * FRAME_SIZE + 12345)]);

describe('frameIndex', () => {
  for (const type of ['zst', 'lz4', 'gz']) {
    it(`finds every ${type} frame by its headers alone`, () => {
      const f = storedFile(type, original);
      expect(frameIndex(type, f.readAt, f.stored.length)).toEqual({ stored: f.starts, original: f.starts.map((_, i) => i * FRAME_SIZE) });
      // headers only: a handful of reads per frame, not the frame
      expect(f.reads()).toBeLessThan(f.starts.length * 40);
    });

    it(`gives up on ${type} bytes cut short or damaged in a header`, () => {
      const f = storedFile(type, original);
      expect(frameIndex(type, f.readAt, f.stored.length - 7)).toBeUndefined();
      const damaged = Buffer.from(f.stored);
      damaged.writeUInt32LE(0x12345678, f.starts[2]);
      expect(frameIndex(type, (p, n) => damaged.subarray(p, p + n), damaged.length)).toBeUndefined();
    });
  }

  it('gives up on a gzip member without our length field', () => {
    const zlib = require('node:zlib') as typeof import('node:zlib');
    const plain = zlib.gzipSync(original.subarray(0, 1000));
    expect(frameIndex('gz', (p, n) => plain.subarray(p, p + n), plain.length)).toBeUndefined();
  });
});

describe('partRange', () => {
  it('cuts the frames into parts of whole frames that cover the file once, in order', () => {
    const f = storedFile('zst', original);
    const parts = [0, 1].map((k) => partRange(f.starts, f.stored.length, k, 2));
    expect(parts[0]).toEqual({ start: 0, length: f.starts[3], firstFrame: 0 });
    expect(parts[1]).toEqual({ start: f.starts[3], length: f.stored.length - f.starts[3], firstFrame: 3 });
    // each part decodes on its own, to the original bytes at firstFrame * FRAME_SIZE
    const second = f.stored.subarray(parts[1].start, parts[1].start + parts[1].length);
    const firstFrameOfSecond = decodeFrame('zst', second.subarray(0, f.starts[4] - f.starts[3]));
    expect(firstFrameOfSecond.equals(original.subarray(3 * FRAME_SIZE, 4 * FRAME_SIZE))).toBe(true);
  });

  it('cuts an uncompressed file at MiB boundaries, its original bytes where its stored bytes are', () => {
    const size = 3 * FRAME_SIZE + 5;
    const index = plainIndex(size);
    expect(index.stored).toEqual([0, FRAME_SIZE, 2 * FRAME_SIZE, 3 * FRAME_SIZE]);
    expect(index.original).toEqual(index.stored);
    expect([0, 1].map((k) => partRange(index.stored, size, k, 2))).toEqual([
      { start: 0, length: 2 * FRAME_SIZE, firstFrame: 0 },
      { start: 2 * FRAME_SIZE, length: FRAME_SIZE + 5, firstFrame: 2 },
    ]);
    expect(plainIndex(0).stored).toEqual([]);
  });

  it('leaves parts empty when there are fewer frames than parts', () => {
    expect(partRange([0], 100, 0, 3)).toEqual({ start: 0, length: 0, firstFrame: 0 });
    expect(partRange([0], 100, 2, 3)).toEqual({ start: 0, length: 100, firstFrame: 0 });
  });
});
