/**
 * A restore's messages cut at whole frames (repo-server/storage/posix.ts readPieces with `cut`,
 * shared/stream/frame-codec.ts wholeFramesLength): every piece but the last ends at a frame's end,
 * the pieces put together are the stored bytes exactly (from a file or a range of one, as in a
 * bundle), a frame larger than the buffer or bytes that are not frames go uncut, and the agent's
 * receiver then never carries a frame from one message to the next.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeFrame, FRAME_SIZE, FRAMED_TYPES, wholeFramesLength } from '../../shared/stream/frame-codec';
import { frameIndex } from '../../shared/stream/frame-walk';
import { PosixStorage } from '../../repo-server/storage/posix';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'whole-frames-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const storage = new PosixStorage(dir);

const LEVEL: Record<string, number> = { gz: 6, lz4: 1, zst: 3 };
// incompressible frames (nearly a buffer each, as on the benchmark's random cluster), compressible ones, a short last one
const original = Buffer.concat([randomBytes(3 * FRAME_SIZE), Buffer.alloc(2 * FRAME_SIZE, 'pgrepo '), randomBytes(5000)]);

function framesOf(type: string): Buffer[] {
  const frames: Buffer[] = [];
  for (let i = 0; i < original.length; i += FRAME_SIZE) frames.push(encodeFrame(type, LEVEL[type], original.subarray(i, i + FRAME_SIZE)));
  return frames;
}

/** Reads `key` with `cut` into buffers of `size` bytes; returns the pieces (copied) as the server would send them. */
async function piecesOf(key: string, size: number, cut?: (buf: Buffer, n: number) => number, range?: { start: number; length: number }): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const { buf, n } of storage.readPieces(key, () => Buffer.alloc(size), range, undefined, cut)) out.push(Buffer.from(buf.subarray(0, n)));
  return out;
}

describe.each(FRAMED_TYPES)('%s', (type) => {
  const frames = framesOf(type);
  const stored = Buffer.concat(frames);
  const ends = new Set(frames.map((_, i) => frames.slice(0, i + 1).reduce((n, f) => n + f.length, 0)));
  const key = `file.${type}`;
  fs.writeFileSync(storage.path(key), stored);
  const cut = (buf: Buffer, n: number) => wholeFramesLength(type, buf, n);

  it('wholeFramesLength: the whole frames at the start, 0 when the first is not whole', () => {
    expect(wholeFramesLength(type, stored, stored.length)).toBe(stored.length);
    expect(wholeFramesLength(type, stored, frames[0].length - 1)).toBe(0);
    expect(wholeFramesLength(type, stored, frames[0].length + frames[1].length + 10)).toBe(frames[0].length + frames[1].length);
    expect(wholeFramesLength(type, Buffer.from('not a frame at all'), 18)).toBe(0);
  });

  it('pieces end at frames and put together are the stored bytes', async () => {
    const pieces = await piecesOf(key, FRAME_SIZE + 64 * 1024, cut);
    expect(Buffer.concat(pieces).equals(stored)).toBe(true);
    let at = 0;
    for (const p of pieces) {
      at += p.length;
      expect(ends.has(at), `a piece ends at byte ${at}, a frame's end`).toBe(true);
    }
  });

  it('a range of the file (a file in a bundle): the same, from its first byte', async () => {
    const prefix = randomBytes(777);
    const bundleKey = `bundle.${type}`;
    fs.writeFileSync(storage.path(bundleKey), Buffer.concat([prefix, stored, randomBytes(99)]));
    const pieces = await piecesOf(bundleKey, FRAME_SIZE + 64 * 1024, cut, { start: prefix.length, length: stored.length });
    expect(Buffer.concat(pieces).equals(stored)).toBe(true);
    for (const p of pieces) expect(frameIndex(type, (pos, n) => p.subarray(pos, pos + n), p.length), 'each piece is whole frames').toBeDefined();
  });

  it('buffers smaller than a frame: pieces go uncut and still make the stored bytes', async () => {
    const pieces = await piecesOf(key, 100_000, cut);
    expect(Buffer.concat(pieces).equals(stored)).toBe(true);
  });
});

it('bytes that are not frames go as they were read', async () => {
  const bytes = randomBytes(3 * 100_000 + 5);
  fs.writeFileSync(storage.path('plain'), bytes);
  const pieces = await piecesOf('plain', 100_000, (buf, n) => wholeFramesLength('zst', buf, n));
  expect(pieces.map((p) => p.length)).toEqual([100_000, 100_000, 100_000, 5]);
  expect(Buffer.concat(pieces).equals(bytes)).toBe(true);
});
