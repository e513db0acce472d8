/**
 * The page checksum against pages PostgreSQL itself wrote: initdb -k a real cluster, read its
 * relation files, and every page's pd_checksum must be what pgPageChecksum computes; a flipped
 * byte must make the page invalid, and the stream stage must find it whatever the chunking.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initCluster, makeTempDir } from '../harness/pg';
import { runCleanups } from '../harness/cleanup';
import { PAGE_SIZE, PageChecksumFilter, addBlock, badBlocks, describeBlocks, lsnHalves, pageProblem, pgPageChecksum, type BlockRange } from '../../shared/stream/page-checksum';
import { runCodecTask } from '../../shared/stream/codec-task';

const NO_LIMIT = 0xffffffffffffffffn;

function pagesOf(file: Buffer): Buffer[] {
  const pages: Buffer[] = [];
  for (let o = 0; o + PAGE_SIZE <= file.length; o += PAGE_SIZE) pages.push(file.subarray(o, o + PAGE_SIZE));
  return pages;
}

async function filter(data: Buffer, chunk: number, firstBlock = 0, lsnLimit = NO_LIMIT) {
  const stage = new PageChecksumFilter(firstBlock, lsnLimit);
  const out: Buffer[] = [];
  const chunks = Array.from({ length: Math.ceil(data.length / chunk) }, (_, i) => data.subarray(i * chunk, (i + 1) * chunk));
  await pipeline(Readable.from(chunks), stage, new Writable({ write(c: Buffer, _e, done) { out.push(c); done(); } }));
  return { result: stage.result(), passed: Buffer.concat(out) };
}

describe('PostgreSQL page checksums on pages of a real initdb -k cluster', () => {
  let files: { name: string; data: Buffer }[] = [];

  beforeAll(async () => {
    const work = await makeTempDir('pgrepo-pagesum');
    const dir = path.join(work, 'pg');
    await initCluster({ dir, port: 5432, socketDir: work });
    // pg_class, pg_attribute, pg_proc of template1 and postgres, and the shared pg_database
    const db = (oid: string) => fs.readdirSync(path.join(dir, 'base', oid)).filter((n) => /^\d+$/.test(n)).map((n) => `base/${oid}/${n}`);
    const names = [...db('1'), ...db('5'), 'global/1262'];
    files = names.map((name) => ({ name, data: fs.readFileSync(path.join(dir, name)) })).filter((f) => f.data.length > 0);
  }, 120_000);

  afterAll(() => runCleanups(), 60_000);

  it('validates every initialized page of every relation file, and counts the block number in', () => {
    let checked = 0;
    for (const f of files) {
      pagesOf(f.data).forEach((page, block) => {
        if (page.readUInt16LE(14) === 0) return; // new page: no checksum
        expect(pgPageChecksum(page, block), `${f.name} block ${block}`).toBe(page.readUInt16LE(8));
        expect(pageProblem(page, block, NO_LIMIT), `${f.name} block ${block}`).toBeNull();
        checked++;
      });
    }
    // a fresh cluster's catalogs hold hundreds of pages; all of them carry checksums
    expect(checked).toBeGreaterThan(200);
    const page = pagesOf(files.find((f) => f.name === 'global/1262')!.data)[0];
    expect(pgPageChecksum(page, 1)).not.toBe(page.readUInt16LE(8));
  });

  it('a flipped byte in the middle of a page makes that page, and only that page, invalid', async () => {
    const big = files.reduce((a, b) => (b.data.length > a.data.length ? b : a));
    const data = Buffer.from(big.data);
    const blocks = data.length / PAGE_SIZE;
    expect(blocks).toBeGreaterThan(3);
    const victim = 2;
    data[victim * PAGE_SIZE + 4000] ^= 0xff;
    expect(pageProblem(data.subarray(victim * PAGE_SIZE, (victim + 1) * PAGE_SIZE), victim, NO_LIMIT)).toMatch(/checksum \d+ on the page, \d+ computed/);

    // odd chunk sizes: pages straddle chunks; the bytes pass through untouched
    for (const chunk of [1000, PAGE_SIZE, 3 * PAGE_SIZE + 17, data.length]) {
      const { result, passed } = await filter(data, chunk);
      expect(passed.equals(data), `chunk ${chunk}`).toBe(true);
      expect(result, `chunk ${chunk}`).toEqual({ valid: false, errors: [[victim, victim]] });
    }
    const clean = await filter(big.data, 1000);
    expect(clean.result).toEqual({ valid: true, errors: [] });
  });

  it('numbers blocks from the segment start, skips pages written after the backup start, and joins ranges', async () => {
    const big = files.reduce((a, b) => (b.data.length > a.data.length ? b : a));
    const data = Buffer.from(big.data.subarray(0, 4 * PAGE_SIZE));
    // the same pages as if they were segment 1: every checksum is now wrong for its block number
    const moved = await filter(data, 5000, 131072);
    expect(moved.result).toEqual({ valid: false, errors: [[131072, 131075]] });
    expect(describeBlocks(moved.result.errors)).toBe('131072-131075');
    // a page whose LSN is at or past the limit is not judged (it may be torn; WAL replay rewrites it)
    expect((await filter(data, 5000, 131072, 0n)).result.valid).toBe(true);
    // a new page must be all zeroes
    const zero = Buffer.alloc(PAGE_SIZE);
    expect(pageProblem(zero, 0, NO_LIMIT)).toBeNull();
    zero[100] = 1;
    expect(pageProblem(zero, 0, NO_LIMIT)).toMatch(/not all zeroes/);
    const twoBad = Buffer.concat([pagesOf(data)[0], zero, zero, pagesOf(data)[3], zero]);
    const { result } = await filter(twoBad, 7000);
    expect(result.errors).toEqual([[1, 2], [4, 4]]);
    expect(describeBlocks(result.errors)).toBe('1-2, 4');
  });

  it('page-aligned chunks checked one by one, as the codec workers do, find what the stream stage finds', async () => {
    const big = files.reduce((a, b) => (b.data.length > a.data.length ? b : a));
    const zero = Buffer.alloc(PAGE_SIZE);
    zero[100] = 1;
    // a flipped byte, a bad new page, and a short last page (a relation being extended)
    const data = Buffer.concat([big.data, zero, big.data.subarray(0, 3 * PAGE_SIZE), Buffer.alloc(100, 7)]);
    data[2 * PAGE_SIZE + 4000] ^= 0xff;
    const pagesTotal = Math.ceil(data.length / PAGE_SIZE);
    for (const firstBlock of [0, 131072]) {
      const whole = (await filter(data, 5000, firstBlock)).result;
      expect(whole.valid).toBe(false);
      for (const pagesPerChunk of [1, 3, pagesTotal]) {
        const errors: BlockRange[] = [];
        for (let p = 0; p < pagesTotal; p += pagesPerChunk) {
          const chunk = Buffer.from(data.subarray(p * PAGE_SIZE, (p + pagesPerChunk) * PAGE_SIZE));
          // through the task a codec worker runs: the chunk compressed, its pages checked on the way
          const done = runCodecTask({ id: 1, op: 'encode', type: 'lz4', level: 1, data: chunk,
            pages: { firstBlock: firstBlock + p, ...(({ hi, lo }) => ({ lsnHi: hi, lsnLo: lo }))(lsnHalves(NO_LIMIT)) } });
          for (const b of done.badBlocks!) addBlock(errors, b);
        }
        expect(errors, `${pagesPerChunk} page(s) per chunk from block ${firstBlock}`).toEqual(whole.errors);
      }
      // past the LSN limit pages are not judged (WAL replay rewrites them), but a new page must still be zeroes
      expect(badBlocks(data, firstBlock, lsnHalves(0n))).toEqual([firstBlock + big.data.length / PAGE_SIZE]);
    }
  });
});

