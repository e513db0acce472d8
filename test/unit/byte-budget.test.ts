import { describe, expect, it } from 'vitest';
import { ByteBudget, bytesInFlight, inFlightBudget } from '../../agent/transfer/schedule';

const MiB = 1024 * 1024;

/** Which of the takes have gone through so far. */
async function settled(takes: Promise<void>[]): Promise<boolean[]> {
  const done = takes.map(() => false);
  takes.forEach((t, i) => void t.then(() => (done[i] = true)));
  await new Promise((r) => setImmediate(r));
  return done;
}

describe('ByteBudget', () => {
  it('lets work through while it fits and holds the rest until bytes come back', async () => {
    const b = new ByteBudget(10);
    const takes = [b.take(4), b.take(4), b.take(4)];
    expect(await settled(takes)).toEqual([true, true, false]);
    expect(b.inUse).toBe(8);
    b.give(4);
    expect(await settled(takes)).toEqual([true, true, true]);
    expect(b.inUse).toBe(8);
  });

  it('runs work larger than the whole budget alone instead of never', async () => {
    const b = new ByteBudget(10);
    const small = b.take(3);
    const huge = b.take(50);
    expect(await settled([small, huge])).toEqual([true, false]);
    b.give(3);
    expect(await settled([huge])).toEqual([true]);
    const after = b.take(1);
    expect(await settled([after])).toEqual([false]);
    b.give(50);
    expect(await settled([after])).toEqual([true]);
    expect(b.inUse).toBe(1);
  });

  it('serves in order: a large waiter is not overtaken by smaller ones asking after it', async () => {
    const b = new ByteBudget(10);
    await b.take(6);
    const large = b.take(8);
    const small = b.take(1);
    expect(await settled([large, small])).toEqual([false, false]);
    b.give(6);
    expect(await settled([large, small])).toEqual([true, true]);
    expect(b.inUse).toBe(9);
  });
});

describe('bytes in flight', () => {
  it('weighs a small file by its size, a large file or bundle by what it holds while streaming', () => {
    expect(bytesInFlight(8192, false)).toBe(8192);
    expect(bytesInFlight(1024 * MiB, false)).toBe(4 * MiB);
    expect(bytesInFlight(20 * MiB, true)).toBe(2 * MiB);
  });

  it('keeps process-max + 2 large files in flight, and many small ones', () => {
    for (const p of [1, 2, 4]) {
      expect(Math.floor(inFlightBudget(p) / bytesInFlight(1024 * MiB, false))).toBe(p + 2);
      expect(Math.floor(inFlightBudget(p) / bytesInFlight(8192, false))).toBeGreaterThan(100);
    }
  });
});
