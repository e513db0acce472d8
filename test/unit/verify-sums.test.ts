/**
 * What verify's threads compute for a stored file, against SHA-1s taken directly: frames of every
 * codec, a gzip stream without our frame lengths (read by the streaming path), ranges of a bundle,
 * truncated and missing files; and the pool (real worker threads, a large file helped by an idle
 * thread) giving the same answers as one thread.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, FRAME_SIZE } from '../../shared/stream/frame-codec';
import { storedSums, type StoredSums, type SumsRequest } from '../../repo-server/verify/stored-sums';
import { batches, sumAll } from '../../repo-server/verify/sums-pool';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'verify-sums-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');
const scratch = Buffer.alloc(64 * 1024); // small, so frames straddle reads and the buffer grows

/** Original bytes: random (incompressible) and repeated text, a few frames and a short last one. */
function original(mib: number): Buffer {
  return Buffer.concat([randomBytes(mib * FRAME_SIZE), Buffer.from('pgrepo '.repeat(100_000)), randomBytes(123)]);
}

function framed(type: string, data: Buffer): Buffer {
  const frames: Buffer[] = [];
  for (let at = 0; at < data.length; at += FRAME_SIZE) frames.push(encodeFrame(type, type === 'gz' ? 6 : 1, Buffer.from(data.subarray(at, at + FRAME_SIZE))));
  return Buffer.concat(frames);
}

function write(name: string, data: Buffer): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, data);
  return file;
}

function expectSums(got: StoredSums, stored: Buffer, orig: Buffer): void {
  expect(got.error).toBeUndefined();
  expect([got.storedSize, got.storedChecksum, got.originalSize, got.originalChecksum]).toEqual([stored.length, sha1(stored), orig.length, sha1(orig)]);
}

describe('verify: sums of stored files', () => {
  const data = original(3);

  for (const type of ['zst', 'lz4', 'gz', 'none']) {
    it(`${type}: frames read in pieces, with the head kept`, async () => {
      const stored = type === 'none' ? data : framed(type, data);
      const got = await storedSums({ path: write(`f.${type}`, stored), compressType: type, headBytes: 40 }, scratch);
      expectSums(got, stored, data);
      expect(Buffer.from(got.head!)).toEqual(data.subarray(0, 40));
    });
  }

  it('gzip without frame lengths (another writer) goes through the streaming path', async () => {
    const stored = zlib.gzipSync(data);
    expectSums(await storedSums({ path: write('plain.gz', stored), compressType: 'gz', headBytes: 0 }, scratch), stored, data);
  });

  it('a range of a bundle, and an empty range', async () => {
    const a = framed('zst', Buffer.from('small file'));
    const b = framed('zst', data);
    const bundle = write('bundle', Buffer.concat([Buffer.from('x'), a, b, Buffer.from('tail')]));
    expectSums(await storedSums({ path: bundle, range: { start: 1, length: a.length }, compressType: 'zst', headBytes: 0 }, scratch), a, Buffer.from('small file'));
    expectSums(await storedSums({ path: bundle, range: { start: 1 + a.length, length: b.length }, compressType: 'zst', headBytes: 0 }, scratch), b, data);
    expectSums(await storedSums({ path: bundle, range: { start: 0, length: 0 }, compressType: 'zst', headBytes: 0 }, scratch), Buffer.alloc(0), Buffer.alloc(0));
  });

  it('truncated, damaged and missing files are errors, not exceptions', async () => {
    const stored = framed('zst', data);
    const cut = await storedSums({ path: write('cut.zst', stored.subarray(0, stored.length - 10)), compressType: 'zst', headBytes: 0 }, scratch);
    expect(cut.error?.message).toMatch(/ends in the middle of a frame .* truncated/);
    const bad = Buffer.from(framed('lz4', Buffer.from('pgrepo '.repeat(100_000))));
    bad[30] ^= 0xff;
    expect((await storedSums({ path: write('bad.lz4', bad), compressType: 'lz4', headBytes: 0 }, scratch)).error?.message).toBeTruthy();
    expect((await storedSums({ path: path.join(dir, 'nothing'), compressType: 'zst', headBytes: 0 }, scratch)).error?.code).toBe('ENOENT');
  });

  it('frames handed to a helper come back in order among those decoded here', async () => {
    // compressible, so frames are worth handing over; the helper takes every other one and answers late
    const text = Buffer.from(randomBytes(3 * FRAME_SIZE).toString('hex').replace(/(.{64})/g, '$1 '.padEnd(40, ' ')));
    const stored = framed('zst', text);
    let handed = 0;
    let busy = false;
    const offload = {
      ready: () => !busy,
      decode: async (type: string, frame: Buffer) => {
        handed++;
        busy = true;
        await new Promise((r) => setTimeout(r, 5));
        busy = false;
        return decodeFrame(type, frame);
      },
    };
    expectSums(await storedSums({ path: write('helped.zst', stored), compressType: 'zst', headBytes: 0 }, scratch, offload), stored, text);
    expect(handed).toBeGreaterThan(1);
  });

  it('batches small files of a bundle together, largest work first', () => {
    const job = (p: string, start: number, bytes: number) => ({ req: { path: p, range: { start, length: bytes }, compressType: 'zst', headBytes: 0 }, bytes });
    const jobs = [job('b', 10, 10), job('big', 0, 5 << 20), job('a', 0, 10), job('b', 0, 10), ...Array.from({ length: 1500 }, (_, i) => job('c', i * 10, 10))];
    const out = batches(jobs, 1);
    expect(out[0].items.map((i) => [i.job.req.path, i.part])).toEqual([['big', undefined]]);
    expect(out.slice(1).map((b) => b.items.length)).toEqual([1000, 503]);
    // the files of one bundle together, in the order of their offsets
    expect(out[1].items.slice(0, 3).map((i) => [i.job.req.path, i.job.req.range.start])).toEqual([['b', 0], ['b', 10], ['a', 0]]);
    // on two threads a file of more than a quarter of the work is split in halves, the original's first; a 5 MiB file is not worth it
    const huge = job('huge', 0, 64 << 20);
    expect(batches([huge, ...jobs], 2).slice(0, 3).map((b) => [b.items[0].job.req.path, b.items[0].part, b.helpable])).toEqual([['huge', 'original', true], ['huge', 'stored', false], ['big', undefined, false]]);
  });

  it('the pool of threads (large files split in halves, idle threads decoding for others) agrees with one thread', async () => {
    // 96 MiB of hex and spaces: zstd stores it in ~17 MiB, large enough to split and to lend idle threads to, in frames worth decoding elsewhere
    const big = Buffer.from(randomBytes(24 * FRAME_SIZE).toString('hex').replace(/(.{64})/g, '$1 '.padEnd(65, ' ')));
    const reqs: Array<{ req: SumsRequest; bytes: number; stored: Buffer; orig: Buffer }> = [];
    const add = (name: string, type: string, orig: Buffer) => {
      const stored = type === 'none' ? orig : framed(type, orig);
      reqs.push({ req: { path: write(name, stored), compressType: type, headBytes: 8 }, bytes: stored.length, stored, orig });
    };
    add('big.zst', 'zst', big);
    add('big.lz4', 'lz4', big);
    add('random.zst', 'zst', original(20));
    for (let i = 0; i < 20; i++) add(`small${i}.zst`, 'zst', Buffer.from(`small file ${i} `.repeat(i * 100)));
    const corrupt = Buffer.from(reqs[1].stored);
    corrupt[Math.floor(corrupt.length / 2)] ^= 0xff;
    fs.writeFileSync(reqs[1].req.path, corrupt);
    const got = new Map<string, StoredSums>();
    await sumAll(reqs, 2, (jobs, sums) => jobs.forEach((j, i) => got.set(j.req.path, sums[i])), () => false);
    expect(got.size).toBe(reqs.length);
    for (const r of reqs.filter((x) => x !== reqs[1])) expectSums(got.get(r.req.path)!, r.stored, r.orig);
    const damaged = got.get(reqs[1].req.path)!;
    expect(damaged.error !== undefined || damaged.originalChecksum !== sha1(big)).toBe(true);
  }, 60_000);
});
