import { describe, expect, it } from 'vitest';
import { backupGap, missingRanges } from '../../repo-server/commands/wal-gaps';
import { historyFileName, nextSegmentName, segmentAt, segmentOrdinal } from '../../shared/wal';

const MiB16 = 16 * 1024 * 1024;
const seg = (tl: number, n: number) => segmentAt(tl, n, MiB16);

describe('segment arithmetic for gaps and prefetch', () => {
  it('steps over the end of a log id', () => {
    expect(nextSegmentName('0000000100000000000000FE', MiB16)).toBe('0000000100000000000000FF');
    expect(nextSegmentName('0000000100000000000000FF', MiB16)).toBe('000000010000000100000000');
    expect(nextSegmentName('000000020000000100000003', 1024 ** 3)).toBe('000000020000000200000000');
    expect(segmentOrdinal('000000010000000100000000', MiB16)).toBe(256);
    expect(seg(1, 256)).toBe('000000010000000100000000');
    expect(historyFileName(2)).toBe('00000002.history');
  });
});

describe('missing WAL', () => {
  const archived = [1, 2, 3, 6, 7, 10].map((n) => seg(1, n));
  const hole = (a: number, b: number, more: Partial<{ dropped: boolean; expired: boolean }> = {}) =>
    ({ first: seg(1, a), last: seg(1, b), count: b - a + 1, dropped: false, expired: false, ...more });

  it('finds the holes between archived segments of a timeline, as ranges', () => {
    expect(missingRanges(archived, [], MiB16, [])).toEqual([hole(4, 5), hole(8, 9)]);
  });

  it('adds dropped segments never archived (also past the newest), and flags ranges holding a drop', () => {
    const dropped = [seg(1, 8), seg(1, 11), seg(1, 12), seg(1, 3)];
    expect(missingRanges(archived, dropped, MiB16, [])).toEqual([hole(4, 5), hole(8, 9, { dropped: true }), hole(11, 12, { dropped: true })]);
  });

  it('knows the holes expire leaves between kept backups; a drop there is still a gap', () => {
    const backups = [{ archiveStart: seg(1, 1), archiveStop: seg(1, 3) }, { archiveStart: seg(1, 6), archiveStop: seg(1, 7) }];
    expect(missingRanges(archived, [], MiB16, backups)).toEqual([hole(4, 5, { expired: true }), hole(8, 9)]);
    expect(missingRanges(archived, [seg(1, 5)], MiB16, backups)[0]).toEqual(hole(4, 5, { dropped: true }));
  });

  it('keeps timelines apart, and a hole across a log id boundary is one range', () => {
    const names = [seg(1, 254), seg(1, 258), seg(2, 255), seg(2, 256)];
    expect(missingRanges(names, [], MiB16, [])).toEqual([
      { first: '0000000100000000000000FF', last: '000000010000000100000001', count: 3, dropped: false, expired: false },
    ]);
  });

  it('marks the backups: the first gap at or after the start; inside start..stop it is not restorable', () => {
    const ranges = missingRanges(archived, [], MiB16, []);
    expect(backupGap({ archiveStart: seg(1, 1), archiveStop: seg(1, 2) }, ranges)).toEqual({ walGap: seg(1, 4), incomplete: false });
    expect(backupGap({ archiveStart: seg(1, 3), archiveStop: seg(1, 6) }, ranges)).toEqual({ walGap: seg(1, 4), incomplete: true });
    expect(backupGap({ archiveStart: seg(1, 10), archiveStop: seg(1, 10) }, ranges)).toEqual({ walGap: '', incomplete: false });
    expect(backupGap({ archiveStart: seg(2, 1), archiveStop: seg(2, 1) }, ranges)).toEqual({ walGap: '', incomplete: false });
    // a hole expire left is not a gap for the older backup either
    const expired = missingRanges(archived, [], MiB16, [{ archiveStart: seg(1, 1), archiveStop: seg(1, 3) }, { archiveStart: seg(1, 6), archiveStop: seg(1, 7) }]);
    expect(backupGap({ archiveStart: seg(1, 1), archiveStop: seg(1, 3) }, expired)).toEqual({ walGap: seg(1, 8), incomplete: false });
  });
});
