/**
 * The WAL threads that pack a WAL file for archive-push (read, SHA-1 of the original bytes,
 * compression into independent frames, on a thread): for every compress-type the frames
 * decompress to the file, the checksum is the file's and the stored size the frames', one
 * frame per 1 MiB (an empty file is one frame), several files at once on two threads come out
 * whole, a file that cannot be read fails its pack with the reason, and compress-type none with
 * wire compression sends lz4 frames whose content is the file.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { createDecompressor } from '../../shared/stream/compress';
import { decodeFrame, FRAME_SIZE } from '../../shared/stream/frame-codec';
import { WalThreads } from '../../agent/archive/wal-threads';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgrepo-wal-threads-'));
const threads = new WalThreads(2);
afterAll(async () => {
  await threads.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

/** WAL-like content: a random part and a repetitive part. */
function walLike(size: number): Buffer {
  const text = Buffer.from('INSERT 0 1 pgbench_accounts aid abalance filler '.repeat(Math.ceil(size / 96)));
  return Buffer.concat([randomBytes(Math.floor(size / 2)), text]).subarray(0, size);
}

function fileWith(name: string, data: Buffer): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, data);
  return file;
}

async function decompress(type: string, stored: Buffer): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from([stored]), createDecompressor(type), new Writable({ write(c: Buffer, _e, done) { out.push(c); done(); } }));
  return Buffer.concat(out);
}

async function pack(file: string, type: string, level: number): Promise<{ frames: Buffer[]; checksums: NonNullable<ReturnType<WalThreads['pack']>['checksums']> }> {
  const packed = threads.pack(file, type, level);
  const frames: Buffer[] = [];
  for await (const f of packed) frames.push(f);
  return { frames, checksums: packed.checksums! };
}

describe('WAL threads', () => {
  const segment = walLike(4 * FRAME_SIZE + 12345);
  for (const [type, level] of [['zst', 3], ['lz4', 1], ['gz', 6], ['none', 0]] as const) {
    it(`pack ${type}: frames decompress to the file; checksums of the file and of the stored bytes`, async () => {
      const { frames, checksums } = await pack(fileWith(`seg-${type}`, segment), type, level);
      const stored = Buffer.concat(frames);
      expect(frames).toHaveLength(5);
      expect(checksums.original).toEqual({ size: segment.length, checksum: sha1(segment) });
      // compressed bytes are hashed by the server as they arrive, not here
      expect(checksums.stored).toEqual({ size: stored.length, checksum: type === 'none' ? sha1(stored) : '' });
      expect((await decompress(type, stored)).equals(segment)).toBe(true);
      if (type === 'none') expect(stored.equals(segment)).toBe(true);
      else expect(stored.length).toBeLessThan(segment.length);
    });
  }

  it('pack none with wire compression: lz4 frames on the wire, checksums of the file as stored (uncompressed)', async () => {
    const packed = threads.pack(fileWith('seg-wire', segment), 'none', 0, { type: 'lz4', level: 1 });
    const frames: Buffer[] = [];
    for await (const f of packed) frames.push(f);
    expect(frames).toHaveLength(5);
    expect(frames.map((f) => decodeFrame('lz4', f).length)).toEqual([...Array(4).fill(FRAME_SIZE), 12345]);
    expect(Buffer.concat(frames.map((f) => decodeFrame('lz4', f))).equals(segment)).toBe(true);
    expect(Buffer.concat(frames).length).toBeLessThan(segment.length);
    expect(packed.checksums!.original).toEqual({ size: segment.length, checksum: sha1(segment) });
    expect(packed.checksums!.stored).toEqual(packed.checksums!.original);
  });

  it('an empty file is one frame; a file of exactly 1 MiB is one frame', async () => {
    const empty = await pack(fileWith('empty', Buffer.alloc(0)), 'zst', 3);
    expect(empty.frames).toHaveLength(1);
    expect(empty.checksums.original).toEqual({ size: 0, checksum: sha1(Buffer.alloc(0)) });
    expect((await decompress('zst', Buffer.concat(empty.frames))).length).toBe(0);
    const one = walLike(FRAME_SIZE);
    const exact = await pack(fileWith('exact', one), 'gz', 6);
    expect(exact.frames).toHaveLength(1);
    expect((await decompress('gz', Buffer.concat(exact.frames))).equals(one)).toBe(true);
  });

  it('several files at once on two threads each come out whole', async () => {
    const files = Array.from({ length: 5 }, (_, i) => walLike(3 * FRAME_SIZE + i * 1000));
    const results = await Promise.all(files.map((data, i) => pack(fileWith(`many-${i}`, data), 'zst', 3)));
    for (const [i, r] of results.entries()) {
      expect(r.checksums.original.checksum).toBe(sha1(files[i]));
      expect((await decompress('zst', Buffer.concat(r.frames))).equals(files[i])).toBe(true);
    }
  });

  it('warm starts the threads with their codec loaded; an unknown codec fails with the reason; packing goes on', async () => {
    await threads.warm('zst', 3);
    await expect(threads.warm('brotli', 1)).rejects.toThrow(/brotli/);
    const data = walLike(FRAME_SIZE + 7);
    expect((await pack(fileWith('warmed', data), 'zst', 3)).checksums.original.checksum).toBe(sha1(data));
  });

  it('a file that cannot be read fails its pack with the reason', async () => {
    await expect(pack(path.join(dir, 'no-such-file'), 'zst', 3)).rejects.toThrow(/no-such-file/);
    // the thread goes on working
    const data = walLike(FRAME_SIZE + 1);
    expect((await pack(fileWith('after', data), 'zst', 3)).checksums.original.checksum).toBe(sha1(data));
  });
});
