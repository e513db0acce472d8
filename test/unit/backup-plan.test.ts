import { describe, expect, it } from 'vitest';
import { afterHash, planBackup, type Baseline, type PlanOptions, type PlannedFile } from '../../agent/backup/plan';
import { firstBlockOf } from '../../agent/backup/page-check';

const opts = (o: Partial<PlanOptions> = {}): PlanOptions => ({ delta: false, priorLabel: '20260101-000000F', priorTimeline: 1, timeline: 1, listedAt: 1000, ...o });
const entry = (size: number, timestamp: number, checksum = `sum-${size}-${timestamp}`) => ({ size, timestamp, checksum });
const base = (prior: Record<string, ReturnType<typeof entry>>, resumable: Record<string, ReturnType<typeof entry>> = {}): Baseline =>
  ({ prior: new Map(Object.entries(prior)), resumable: new Map(Object.entries(resumable)) });
const file = (name: string, size: number, mtime: number): PlannedFile => ({ name, size, mtime });

describe('what a backup sends', () => {
  it('sends only files whose size or mtime changed since the prior backup, and every file of a full', () => {
    const files = [file('pg_data/a', 10, 500), file('pg_data/b', 10, 600), file('pg_data/c', 11, 500), file('pg_data/new', 1, 500)];
    const plan = planBackup(files, base({ 'pg_data/a': entry(10, 500), 'pg_data/b': entry(10, 550), 'pg_data/c': entry(10, 400) }), opts());
    expect(plan.delta).toBe(false);
    expect(plan.warnings).toEqual([]);
    expect(plan.actions).toEqual([{ kind: 'keep', resumed: false, checksum: 'sum-10-500' }, { kind: 'copy' }, { kind: 'copy' }, { kind: 'copy' }]);
    const full = planBackup(files, base({}), opts({ priorLabel: null, priorTimeline: 0 }));
    expect(full.actions.every((a) => a.kind === 'copy')).toBe(true);
  });

  it('references an empty file that was empty before, and never resumes an empty one', () => {
    const plan = planBackup([file('pg_data/e', 0, 700), file('pg_data/f', 0, 700)],
      base({ 'pg_data/e': entry(0, 1) }, { 'pg_data/f': entry(0, 700) }), opts());
    expect(plan.actions).toEqual([{ kind: 'keep', resumed: false, checksum: 'sum-0-1' }, { kind: 'copy' }]);
  });

  it('switches to checksums for a timestamp in the future, an mtime earlier than the prior, a size change with the same mtime, or a new timeline', () => {
    const prior = { 'pg_data/a': entry(10, 500) };
    const cases: [PlannedFile[], Partial<PlanOptions>, RegExp][] = [
      [[file('pg_data/a', 10, 1001)], {}, /'pg_data\/a' has timestamp 1001 in the future \(relative to copy start 1000\)/],
      [[file('pg_data/a', 10, 499)], {}, /earlier than in the prior backup 20260101-000000F \(prior 500, current 499\)/],
      [[file('pg_data/a', 12, 500)], {}, /same timestamp \(500\) .* different size \(prior 10, current 12\)/],
      [[file('pg_data/a', 10, 500)], { timeline: 2 }, /timeline switch .* 20260101-000000F .*timeline 1, now 2/],
    ];
    for (const [files, o, reason] of cases) {
      const plan = planBackup(files, base(prior), opts(o));
      expect(plan.delta).toBe(true);
      expect(plan.warnings.join('\n')).toMatch(reason);
      expect(plan.warnings[0]).toMatch(/enabling delta checksum/);
    }
    // a future timestamp matters for a full, too (a resumed full compares checksums then)
    expect(planBackup([file('pg_data/a', 10, 2000)], base({}), opts({ priorLabel: null })).delta).toBe(true);
  });

  it('with delta, checksums decide: equal to the resumable copy, else to the prior, else send', () => {
    const plan = planBackup([file('pg_data/a', 10, 900), file('pg_data/b', 5, 900), file('pg_data/c', 7, 900)],
      base({ 'pg_data/a': entry(10, 1, 'P'), 'pg_data/c': entry(6, 900) }, { 'pg_data/a': entry(10, 2, 'R') }), opts({ delta: true }));
    expect(plan.delta).toBe(true);
    expect(plan.warnings).toEqual([]);
    const [a, b, c] = plan.actions;
    expect(b).toEqual({ kind: 'copy' });
    expect(c).toEqual({ kind: 'copy' }); // sizes differ: changed, no need to read it twice
    expect(a.kind).toBe('hash');
    if (a.kind !== 'hash') return;
    expect(afterHash(a, 'R')).toEqual({ kind: 'keep', resumed: true, checksum: 'R' });
    expect(afterHash(a, 'P')).toEqual({ kind: 'keep', resumed: false, checksum: 'P' });
    expect(afterHash(a, 'X')).toEqual({ kind: 'copy' });
  });

  it('resumes a file the partial set stored with the same size and mtime; a changed one is sent again', () => {
    const plan = planBackup([file('pg_data/a', 10, 900), file('pg_data/b', 10, 901)],
      base({}, { 'pg_data/a': entry(10, 900), 'pg_data/b': entry(10, 900) }), opts({ priorLabel: null, priorTimeline: 0 }));
    expect(plan.actions).toEqual([{ kind: 'keep', resumed: true, checksum: 'sum-10-900' }, { kind: 'copy' }]);
  });
});

describe('which files have page checksums', () => {
  it('relation forks and their segments in database directories, nothing else', () => {
    expect(firstBlockOf('pg_data/base/5/16384', 131072)).toBe(0);
    expect(firstBlockOf('pg_data/base/5/16384.2', 131072)).toBe(262144);
    expect(firstBlockOf('pg_data/base/5/16384_vm', 131072)).toBe(0);
    expect(firstBlockOf('pg_data/base/5/16384_fsm.1', 131072)).toBe(131072);
    expect(firstBlockOf('pg_data/global/1262', 131072)).toBe(0);
    expect(firstBlockOf('pg_tblspc/16400/PG_15_202209061/5/16401', 131072)).toBe(0);
    for (const name of ['pg_data/global/pg_control', 'pg_data/global/pg_filenode.map', 'pg_data/base/5/PG_VERSION', 'pg_data/base/5/pg_filenode.map',
      'pg_data/PG_VERSION', 'pg_data/pg_xact/0000', 'pg_data/postgresql.conf', 'pg_data/base/5/pg_internal.init', 'pg_data/pg_multixact/offsets/0000']) {
      expect(firstBlockOf(name, 131072), name).toBeNull();
    }
  });
});
