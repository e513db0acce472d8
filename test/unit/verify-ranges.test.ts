import { describe, expect, it } from 'vitest';
import { contiguousRanges, findGaps, missingSegments } from '../../repo-server/verify/wal-ranges';

const MB16 = 16 * 1024 * 1024;

describe('WAL ranges for verify', () => {
  it('joins consecutive segments across a log id, and splits on holes and timelines', () => {
    const names = ['0000000100000000000000FE', '0000000100000000000000FF', '000000010000000100000000', '000000010000000100000002', '000000020000000100000002', '000000020000000100000003'];
    expect(contiguousRanges([...names].reverse(), MB16)).toEqual([
      { start: '0000000100000000000000FE', stop: '000000010000000100000000' },
      { start: '000000010000000100000002', stop: '000000010000000100000002' },
      { start: '000000020000000100000002', stop: '000000020000000100000003' },
    ]);
    // with 1 GiB segments a log id holds four
    expect(contiguousRanges(['000000010000000000000003', '000000010000000100000000'], 1 << 30)).toEqual([{ start: '000000010000000000000003', stop: '000000010000000100000000' }]);
  });

  it('names holes on one timeline; a hole exactly between a backup\'s stop and another\'s start is what expire leaves', () => {
    const ranges = contiguousRanges(['000000010000000000000001', '000000010000000000000002', '000000010000000000000005', '000000010000000000000009', '00000002000000000000000A'], MB16);
    const gaps = findGaps(ranges, MB16, [
      { archiveStart: '000000010000000000000001', archiveStop: '000000010000000000000002' },
      { archiveStart: '000000010000000000000005', archiveStop: '000000010000000000000005' },
    ]);
    expect(gaps).toEqual([
      { start: '000000010000000000000003', stop: '000000010000000000000004', expired: true },
      { start: '000000010000000000000006', stop: '000000010000000000000008', expired: false },
    ]);
  });

  it('lists what a backup needs and the archive lacks', () => {
    const present = new Set(['000000010000000000000003', '000000010000000000000005']);
    expect(missingSegments({ archiveStart: '000000010000000000000002', archiveStop: '000000010000000000000006' }, present, MB16)).toEqual([
      { start: '000000010000000000000002', stop: '000000010000000000000002' },
      { start: '000000010000000000000004', stop: '000000010000000000000004' },
      { start: '000000010000000000000006', stop: '000000010000000000000006' },
    ]);
  });
});
