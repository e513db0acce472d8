/**
 * How a restore groups files (agent/restore/batch.ts restoreItems): large files alone, small ones
 * many to a call, in batches small enough to spread over the workers, order kept.
 */
import { describe, expect, it } from 'vitest';
import { BATCH_FILES, restoreItems, SMALL_FILE } from '../../agent/restore/batch';

describe('restoreItems', () => {
  it('large files alone, small files in batches of at most BATCH_FILES, in the order given', () => {
    const big = [{ size: 10 * SMALL_FILE }, { size: SMALL_FILE }];
    const small = Array.from({ length: 2 * BATCH_FILES + 3 }, (_, i) => ({ size: 8192 + i }));
    const items = restoreItems([...big, ...small]);
    expect(items.slice(0, 2)).toEqual(big.map((file) => ({ kind: 'file', file })));
    const batches = items.slice(2);
    expect(batches.map((b) => (b.kind === 'batch' ? b.files.length : 0))).toEqual([BATCH_FILES, BATCH_FILES, 3]);
    expect(batches.flatMap((b) => (b.kind === 'batch' ? b.files : []))).toEqual(small);
  });

  it('a batch also closes at about 8 MiB of data', () => {
    const items = restoreItems(Array.from({ length: 70 }, () => ({ size: SMALL_FILE - 1 })));
    expect(items.every((b) => b.kind === 'batch')).toBe(true);
    expect(items.length).toBeGreaterThan(1);
    for (const b of items) if (b.kind === 'batch') expect(b.files.length * (SMALL_FILE - 1)).toBeLessThan(8 * 1024 * 1024 + SMALL_FILE);
  });
});
