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
