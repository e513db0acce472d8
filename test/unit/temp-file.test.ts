/**
 * The repository's TempFile (repo-server/storage/posix.ts): appends in flight together, small
 * ones gathered into one write and large ones written at their own offsets, land in the order
 * they were made; nothing is visible under the final name before commit, and discard leaves
 * nothing behind.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { PosixStorage } from '../../repo-server/storage/posix';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pgrepo-tempfile-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('TempFile appends', () => {
  it('small and large appends in flight together land in the order they were made', async () => {
    const storage = new PosixStorage(root);
    const temp = await storage.openTemp('bundle/1');
    // sizes around the gathering limit (64 KiB) and past one gathering buffer (1 MiB)
    const sizes = [300, 0, 70_000, 17, 65_536, 65_537, 2_000_000, ...Array.from({ length: 400 }, (_, i) => 1 + ((i * 7919) % 9000)), 1_500_000, 5];
    const parts = sizes.map((n) => randomBytes(n));
    const expected = Buffer.concat(parts);
    const writing: Promise<void>[] = [];
    for (const part of parts) {
      writing.push(temp.append(part));
      if (part.length <= 64 * 1024) part.fill(0); // a small part is copied: its buffer is free at once
      if (writing.length > 2) await writing.shift();
    }
    await Promise.all(writing);
    expect(fs.existsSync(storage.path('bundle/1')), 'not visible before commit').toBe(false);
    await temp.commit();
    expect(fs.readFileSync(storage.path('bundle/1')).equals(expected)).toBe(true);
    expect(fs.readdirSync(path.dirname(storage.path('bundle/1')))).toEqual(['1']);
  });

  it('discard leaves nothing, whatever was gathered', async () => {
    const storage = new PosixStorage(root);
    const temp = await storage.openTemp('other/2');
    await temp.append(randomBytes(100));
    await temp.append(randomBytes(200_000));
    await temp.discard();
    expect(fs.readdirSync(path.dirname(storage.path('other/2')))).toEqual([]);
  });
});

/** Whether the descriptor was opened with O_DIRECT (the kernel's own record of its flags). */
function isDirect(fd: number): boolean {
  const flags = /flags:\s*([0-7]+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? '0';
  return (parseInt(flags, 8) & fs.constants.O_DIRECT) !== 0;
}

/** Appends of every kind of size, at most 3 in flight, then commit; returns what was appended. */
async function appendAll(temp: Awaited<ReturnType<PosixStorage['openTemp']>>, sizes: number[]): Promise<Buffer> {
  const parts = sizes.map((n) => randomBytes(n));
  const writing: Promise<void>[] = [];
  for (const part of parts) {
    writing.push(temp.append(part));
    if (writing.length > 2) await writing.shift();
  }
  await Promise.all(writing);
  return Buffer.concat(parts);
}

describe('TempFile with direct writes (backup files and bundles)', () => {
  it('bypasses the page cache, and the file holds exactly what was appended, whatever its length', async () => {
    const storage = new PosixStorage(root);
    // lengths around the 4 KiB alignment and the 1 MiB staging buffers, and none at all
    for (const sizes of [[], [1], [4095], [4096], [1 << 20], [(1 << 20) + 1], [300, 1_500_000, 17, 65_536, 2_000_000, 4096, 5], Array.from({ length: 300 }, (_, i) => 1 + ((i * 7919) % 9000))]) {
      const key = `direct/${sizes.length}-${sizes[0] ?? 0}`;
      const temp = await storage.openTemp(key, { direct: true });
      if (fs.constants.O_DIRECT) expect(isDirect(temp.handle.fd), 'opened with O_DIRECT').toBe(true);
      const expected = await appendAll(temp, sizes);
      expect(fs.existsSync(storage.path(key)), 'not visible before commit').toBe(false);
      await temp.commit();
      await temp.discard();
      const stored = fs.readFileSync(storage.path(key));
      expect(stored.length).toBe(expected.length);
      expect(stored.equals(expected), `${key}: the stored bytes are the appended ones`).toBe(true);
    }
    expect(fs.readdirSync(storage.path('direct')).filter((f) => f.includes('.pgrepo.tmp.'))).toEqual([]);
  });

  it('more files at once than staging buffers: the files past them go through the page cache, every byte in place', async () => {
    const storage = new PosixStorage(root);
    // each file holds a staging buffer while it fills: 40 files take more than the 32 there are
    const temps = await Promise.all(Array.from({ length: 40 }, (_, i) => storage.openTemp(`many/${i}`, { direct: true })));
    const firsts = temps.map(() => randomBytes(100_000));
    for (let i = 0; i < temps.length; i++) await temps[i].append(firsts[i]);
    const rests = await Promise.all(temps.map((t, i) => appendAll(t, [3_000_000, 1234, i * 1000])));
    await Promise.all(temps.map((t) => t.commit()));
    for (let i = 0; i < temps.length; i++) {
      expect(fs.readFileSync(storage.path(`many/${i}`)).equals(Buffer.concat([firsts[i], rests[i]])), `file ${i}`).toBe(true);
    }
    // the buffers came back: a new file gets one again
    const again = await storage.openTemp('many/again', { direct: true });
    const expected = await appendAll(again, [2_500_000]);
    await again.commit();
    expect(fs.readFileSync(storage.path('many/again')).equals(expected)).toBe(true);
  });

  it('discard waits for the writes under way and leaves nothing', async () => {
    const storage = new PosixStorage(root);
    const temp = await storage.openTemp('gone/1', { direct: true });
    void temp.append(randomBytes(3_500_000));
    void temp.append(randomBytes(10));
    await temp.discard();
    expect(fs.readdirSync(storage.path('gone'))).toEqual([]);
  });
});
