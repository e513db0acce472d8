import { describe, expect, it } from 'vitest';
import { backupGap, missingRanges, reportedGaps } from '../../repo-server/commands/wal-gaps';
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

  it('finds the holes between archived segments of a timeline, as ranges', () => {
    expect(missingRanges(archived, [], MiB16)).toEqual([
      { first: seg(1, 4), last: seg(1, 5), count: 2, dropped: false },
      { first: seg(1, 8), last: seg(1, 9), count: 2, dropped: false },
    ]);
  });

  it('adds dropped segments never archived (also past the newest), and flags ranges holding a drop', () => {
    const dropped = [seg(1, 8), seg(1, 11), seg(1, 12), seg(1, 3)];
    expect(missingRanges(archived, dropped, MiB16)).toEqual([
      { first: seg(1, 4), last: seg(1, 5), count: 2, dropped: false },
      { first: seg(1, 8), last: seg(1, 9), count: 2, dropped: true },
      { first: seg(1, 11), last: seg(1, 12), count: 2, dropped: true },
    ]);
  });

  it('keeps timelines apart, and a hole across a log id boundary is one range', () => {
    const names = [seg(1, 254), seg(1, 258), seg(2, 255), seg(2, 256)];
    expect(missingRanges(names, [], MiB16)).toEqual([
      { first: '0000000100000000000000FF', last: '000000010000000100000001', count: 3, dropped: false },
    ]);
  });

  it('marks the backups: the first gap at or after the start; inside start..stop it is not restorable', () => {
    const ranges = missingRanges(archived, [], MiB16);
    expect(backupGap({ label: 'a', archiveStart: seg(1, 1), archiveStop: seg(1, 2) }, ranges)).toEqual({ walGap: seg(1, 4), incomplete: false });
    expect(backupGap({ label: 'b', archiveStart: seg(1, 3), archiveStop: seg(1, 6) }, ranges)).toEqual({ walGap: seg(1, 4), incomplete: true });
    expect(backupGap({ label: 'c', archiveStart: seg(1, 10), archiveStop: seg(1, 10) }, ranges)).toEqual({ walGap: '', incomplete: false });
    expect(backupGap({ label: 'd', archiveStart: seg(2, 1), archiveStop: seg(2, 1) }, ranges)).toEqual({ walGap: '', incomplete: false });
  });

  it('reports every dropped range, and holes only after the newest backup started (older ones may be expired)', () => {
    const ranges = missingRanges(archived, [seg(1, 5)], MiB16);
    expect(reportedGaps(ranges, seg(1, 7)).map((r) => r.first)).toEqual([seg(1, 4), seg(1, 8)]);
    expect(reportedGaps(ranges, seg(1, 10)).map((r) => r.first)).toEqual([seg(1, 4)]);
    expect(reportedGaps(ranges, undefined)).toHaveLength(2);
  });
});
