/**
 * The restore's file writer (agent/restore/file-writer.ts): bytes handed over in pieces of any
 * size, from any offset, land byte for byte where they belong, with direct I/O (aligned runs from
 * an aligned buffer, an unaligned head or tail through the page cache) as through the page cache;
 * parts written by several writers into one file at unaligned boundaries make the file; reading
 * back from any offset gives the bytes; a direct write the file system refuses is done through
 * the page cache instead.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { alignedBuffer, DIRECT_ALIGN, FileWriter, openForWrite, readToEnd, STAGING_SIZE } from '../../agent/restore/file-writer';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'file-writer-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Pieces of `b` of sizes from `sizes`, in turn. */
function pieces(b: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0, k = 0; i < b.length; k++) {
    const n = sizes[k % sizes.length];
    out.push(b.subarray(i, i + n));
    i += n;
  }
  return out;
}

const staged = (): Buffer => alignedBuffer(STAGING_SIZE);

/** Writes `bytes` into `file` from `position` in pieces, with direct I/O when `direct`; says whether it was direct. */
async function writeAt(file: string, position: number, bytes: Buffer, sizes: number[], direct: boolean, staging = staged()): Promise<boolean> {
  const opened = openForWrite(file, 'r+', 0o600, direct);
  try {
    const writer = new FileWriter(opened.fd, position, opened.direct ? { path: file, staging } : undefined);
    try {
      for (const p of pieces(bytes, sizes)) writer.write(p);
      writer.end();
    } finally {
      writer.close();
    }
  } finally {
    fs.closeSync(opened.fd);
  }
  return opened.direct;
}

let n = 0;
const fresh = () => {
  const file = path.join(dir, `f${n++}`);
  fs.closeSync(fs.openSync(file, 'w'));
  return file;
};

const SIZES = [[STAGING_SIZE], [1024 * 1024], [4096], [1, 4095, 70_000, 3 * 1024 * 1024 + 17, 6 * 1024 * 1024], [333_333]];

describe('FileWriter', () => {
  it.each([false, true])('direct I/O %s: a whole file of an unaligned length, in pieces of any size, byte for byte', async (direct) => {
    const bytes = randomBytes(11 * 1024 * 1024 + 4321);
    for (const sizes of SIZES) {
      const file = fresh();
      await writeAt(file, 0, bytes, sizes, direct);
      expect(fs.readFileSync(file).equals(bytes), `pieces of ${sizes.join(', ')}`).toBe(true);
    }
  });

  it('where the file system takes direct I/O, files are written with it', async () => {
    const file = fresh();
    const direct = await writeAt(file, 0, randomBytes(DIRECT_ALIGN * 3), [DIRECT_ALIGN], true);
    // tmpfs before Linux 6.6 refuses O_DIRECT: then the file goes through the page cache, as checked above
    if (fs.statfsSync(dir).type !== 0x01021994) expect(direct).toBe(true);
  });

  it.each([false, true])('direct I/O %s: parts cut at unaligned offsets, written in any order by writers of their own, make the file', async (direct) => {
    const bytes = randomBytes(7 * 1024 * 1024 + 999);
    const cuts = [0, 1000, 2 * 1024 * 1024, 2 * 1024 * 1024 + DIRECT_ALIGN + 1, 5 * 1024 * 1024 - 3, bytes.length];
    const file = fresh();
    for (const i of [3, 0, 4, 2, 1]) await writeAt(file, cuts[i], bytes.subarray(cuts[i], cuts[i + 1]), [300_001, DIRECT_ALIGN], direct);
    expect(fs.readFileSync(file).equals(bytes)).toBe(true);
  });

  it('reads back from any offset: aligned ones with direct I/O, the rest through the page cache', async () => {
    const bytes = randomBytes(3 * STAGING_SIZE + 5000);
    const file = fresh();
    await writeAt(file, 0, bytes, [STAGING_SIZE], true);
    const fd = fs.openSync(file, 'r');
    try {
      for (const from of [0, DIRECT_ALIGN, STAGING_SIZE, 77, bytes.length - 10, bytes.length]) {
        const got: Buffer[] = [];
        expect(readToEnd(file, fd, from, alignedBuffer(STAGING_SIZE), Buffer.alloc(65_536), (b) => got.push(Buffer.from(b)))).toBe(bytes.length);
        expect(Buffer.concat(got).equals(bytes.subarray(from)), `from ${from}`).toBe(true);
      }
    } finally {
      fs.closeSync(fd);
    }
  });

  // last: a refused direct write makes this thread write later files through the page cache
  it('a direct write the file system refuses (memory not aligned) goes through the page cache instead', async () => {
    const bytes = randomBytes(7 * 1024 * 1024 + 5);
    const file = fresh();
    const misaligned = (): Buffer => alignedBuffer(STAGING_SIZE + DIRECT_ALIGN).subarray(1, STAGING_SIZE + 1);
    await writeAt(file, 0, bytes, [1024 * 1024], true, misaligned());
    expect(fs.readFileSync(file).equals(bytes)).toBe(true);
  });
});
