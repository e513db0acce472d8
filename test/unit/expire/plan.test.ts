import { describe, expect, it } from 'vitest';
import type { BackupInfoEntry, BackupType } from '../../../shared/info/backup-info';
import type { ArchiveInfo } from '../../../shared/info/archive-info';
import type { PgDb } from '../../../shared/info/pg-db';
import {
  dependents, historyFileExpired, planArchiveExpiry, planBackupExpiry, walDirInRange, walFileInRange, type ArchivePlan,
} from '../../../repo-server/expire/plan';
import { resolveRetention, type RetentionInput } from '../../../repo-server/expire/retention';

const DAY = 86_400;
const NOW = 1_800_000_000;

/** A backup as backup.info holds it; prior/reference follow pgBackRest's model (reference = every backup it depends on). */
function backup(label: string, type: BackupType, o: { prior?: string; reference?: string[]; start?: string; stop?: string; daysAgo?: number; dbId?: number } = {}): BackupInfoEntry {
  const stopped = NOW - (o.daysAgo ?? 0) * DAY;
  return {
    label, type, prior: o.prior ?? null, reference: o.reference ?? [],
    timestampStart: stopped - 60, timestampStop: stopped, lsnStart: '0/1000028', lsnStop: '0/2000050',
    archiveStart: o.start ?? '', archiveStop: o.stop ?? '',
    size: 1, sizeDelta: 1, repoSize: 1, repoSizeDelta: 1, dbId: o.dbId ?? 1, compressType: 'gz', online: true, archiveCheck: true,
  };
}

const seg = (n: number, timeline = 1) => `${String(timeline).padStart(8, '0')}00000000${n.toString(16).toUpperCase().padStart(8, '0')}`;

const F1 = '20260101-010000F';
const F1_D1 = `${F1}_20260102-010000D`;
const F1_I1 = `${F1}_20260103-010000I`;
const F1_D2 = `${F1}_20260104-010000D`;
const F2 = '20260105-010000F';
const F2_I1 = `${F2}_20260106-010000I`;
const F3 = '20260107-010000F';

/** F1 ← D1 ← I1, F1 ← D2, F2 ← I1, F3: a week of fulls, diffs and incrementals */
function week(): BackupInfoEntry[] {
  return [
    backup(F1, 'full', { start: seg(1), stop: seg(2), daysAgo: 30 }),
    backup(F1_D1, 'diff', { prior: F1, reference: [F1], start: seg(4), stop: seg(4), daysAgo: 29 }),
    backup(F1_I1, 'incr', { prior: F1_D1, reference: [F1, F1_D1], start: seg(6), stop: seg(6), daysAgo: 28 }),
    backup(F1_D2, 'diff', { prior: F1, reference: [F1], start: seg(8), stop: seg(9), daysAgo: 27 }),
    backup(F2, 'full', { start: seg(11), stop: seg(12), daysAgo: 10 }),
    backup(F2_I1, 'incr', { prior: F2, reference: [F2], start: seg(14), stop: seg(14), daysAgo: 9 }),
    backup(F3, 'full', { start: seg(16), stop: seg(17), daysAgo: 2 }),
  ];
}

const plan = (input: RetentionInput, set?: string, backups = week()) => planBackupExpiry(backups, resolveRetention(input), { set, now: NOW });
const labels = (bs: { label: string }[]) => bs.map((b) => b.label);

describe('which backups expire', () => {
  it('a backup takes everything that depends on it, oldest first', () => {
    expect(dependents(week(), F1)).toEqual([F1, F1_D1, F1_I1, F1_D2]);
    expect(dependents(week(), F1_D1)).toEqual([F1_D1, F1_I1]);
    expect(dependents(week(), F3)).toEqual([F3]);
  });

  it('repo-retention-full=2 expires the oldest full with its diffs and incrementals', () => {
    const p = plan({ full: 2 });
    expect(p.expired).toHaveLength(1);
    expect(p.expired[0]).toMatchObject({ label: F1, type: 'full', labels: [F1, F1_D1, F1_I1, F1_D2] });
    expect(p.expired[0].reason).toMatch(/repo-retention-full=2: 3 full backups/);
    expect(labels(p.kept)).toEqual([F2, F2_I1, F3]);
    expect(p.latestExpired).toBeUndefined();
    expect(p.archiveRetention).toBe(2);
  });

  it('repo-retention-full=1 expires each older full as its own set', () => {
    const p = plan({ full: 1 });
    expect(p.expired.map((s) => s.labels)).toEqual([[F1, F1_D1, F1_I1, F1_D2], [F2, F2_I1]]);
    expect(labels(p.kept)).toEqual([F3]);
  });

  it('expires nothing, and warns, when repo-retention-full is not set', () => {
    const r = resolveRetention({});
    expect(r.warnings.join('\n')).toMatch(/repo-retention-full is not set/);
    expect(r.archive).toBeUndefined();
    const p = plan({});
    expect(p.expired).toEqual([]);
    expect(p.kept).toHaveLength(7);
  });

  it('repo-retention-diff counts fulls as diffs but expires only diffs (pgBackRest: F1 D1 D2 F2, diff=2 keeps F1 D2 F2 ... )', () => {
    // full+diff, oldest first: F1, F1_D1, F1_D2, F2, F3; keep 2 → the oldest 3 are not kept, F1 is skipped as a full
    const p = plan({ full: 9, diff: 2 });
    expect(p.expired.map((s) => s.labels)).toEqual([[F1_D1, F1_I1], [F1_D2]]);
    expect(p.expired[0].reason).toMatch(/repo-retention-diff=2/);
    expect(labels(p.kept)).toEqual([F1, F2, F2_I1, F3]);
  });

  it('time-based retention keeps the newest full older than the period and everything after it', () => {
    const p = plan({ full: 7, fullType: 'time' });
    expect(p.expired.map((s) => s.labels)).toEqual([[F1, F1_D1, F1_I1, F1_D2]]);
    expect(p.expired[0].reason).toMatch(/7 days \(type time\).*20260105-010000F/);
    expect(labels(p.kept)).toEqual([F2, F2_I1, F3]);
    // WAL is then kept for the fulls that remain
    expect(p.archiveRetention).toBe(2);
    // a period that nothing is older than expires nothing, and leaves WAL alone
    const none = plan({ full: 60, fullType: 'time' });
    expect(none.expired).toEqual([]);
    expect(none.archiveRetention).toBeUndefined();
    expect(none.warnings.join()).toMatch(/time-based archive retention not met/);
  });

  it('--set expires that backup and its dependents, regardless of retention', () => {
    const p = plan({ full: 9 }, F1_D1);
    expect(p.expired).toEqual([expect.objectContaining({ label: F1_D1, labels: [F1_D1, F1_I1], reason: expect.stringMatching(/--set/) })]);
    expect(labels(p.kept)).toEqual([F1, F1_D2, F2, F2_I1, F3]);
  });

  it('--set refuses the only full, and a label that does not exist', () => {
    const only = [backup(F1, 'full'), backup(F1_D1, 'diff', { prior: F1, reference: [F1] })];
    expect(() => plan({}, F1, only)).toThrow(/full backup 20260101-010000F cannot be expired until another full backup has been created/);
    expect(() => plan({}, '20990101-000000F')).toThrow(/does not exist/);
  });

  it('--set refuses the latest full when the prior full is of another database, allows it otherwise (and warns)', () => {
    const upgraded = [backup(F1, 'full', { dbId: 1 }), backup(F2, 'full', { dbId: 2 })];
    expect(() => plan({}, F2, upgraded)).toThrow(/cannot be expired/);
    const p = plan({}, F3);
    expect(labels(p.kept).pop()).toBe(F2_I1);
    expect(p.latestExpired).toBe(F3);
    expect(p.warnings.join()).toMatch(/expiring the latest backup 20260107-010000F/);
  });
});

const db = (id: number, version = '15'): PgDb => ({ id, systemId: String(7000 + id), version, catalogVersion: 1, controlVersion: 1 });
const archiveInfo = (...dbs: PgDb[]): ArchiveInfo => ({ current: dbs[dbs.length - 1], history: dbs });

function prune(p: ArchivePlan[], id = '15-1'): Extract<ArchivePlan, { action: 'prune' }> {
  const found = p.find((x) => x.archiveId === id);
  if (found?.action !== 'prune') throw new Error(`expected a prune plan for ${id}, got ${JSON.stringify(found)}`);
  return found;
}

describe('which WAL expires', () => {
  const kept = planBackupExpiry(week(), resolveRetention({ full: 9 }), { now: NOW }).kept;

  it('keeps every kept backup\'s start..stop, and everything from the retention backup\'s start on', () => {
    // archive retention 1 (type full): F3 is the retention backup; older backups keep only what makes them consistent
    const { plans } = planArchiveExpiry({ backups: kept, backupHistory: [db(1)], archive: archiveInfo(db(1)), archiveIdsOnDisk: ['15-1'], archiveRetention: 1, archiveType: 'full' });
    const p = prune(plans);
    expect(p.retentionBackup.label).toBe(F3);
    expect(p.ranges).toEqual([
      { label: F1, start: seg(1), stop: seg(2) },
      { label: F1_D1, start: seg(4), stop: seg(4) },
      { label: F1_I1, start: seg(6), stop: seg(6) },
      { label: F1_D2, start: seg(8), stop: seg(9) },
      { label: F2, start: seg(11), stop: seg(12) },
      { label: F2_I1, start: seg(14), stop: seg(14) },
      { label: F3, start: seg(16) },
    ]);
    const needed = [1, 2, 4, 6, 8, 9, 11, 12, 14, 16, 17, 100];
    for (let n = 0; n <= 100; n++) expect(walFileInRange(`${seg(n)}-${'a'.repeat(40)}.gz`, p.ranges), seg(n)).toBe(needed.includes(n) || n >= 16);
  });

  it('with archive retention type incr, the retention backup may be an incremental', () => {
    const { plans } = planArchiveExpiry({ backups: kept, backupHistory: [db(1)], archive: archiveInfo(db(1)), archiveIdsOnDisk: ['15-1'], archiveRetention: 2, archiveType: 'incr' });
    expect(prune(plans).retentionBackup.label).toBe(F2_I1);
    const diff = planArchiveExpiry({ backups: kept, backupHistory: [db(1)], archive: archiveInfo(db(1)), archiveIdsOnDisk: ['15-1'], archiveRetention: 3, archiveType: 'diff' });
    expect(prune(diff.plans).retentionBackup.label).toBe(F1_D2);
  });

  it('expires no WAL while fewer backups exist than archive retention counts, or when it is not set', () => {
    const soon = planArchiveExpiry({ backups: kept, backupHistory: [db(1)], archive: archiveInfo(db(1)), archiveIdsOnDisk: ['15-1'], archiveRetention: 4, archiveType: 'full' });
    expect(soon.plans).toEqual([]);
    expect(soon.notes.join()).toMatch(/only 3/);
    const unset = planArchiveExpiry({ backups: kept, backupHistory: [db(1)], archive: archiveInfo(db(1)), archiveIdsOnDisk: ['15-1'], archiveType: 'full' });
    expect(unset.plans).toEqual([]);
    expect(unset.notes.join()).toMatch(/not set/);
  });

  it('removes the archive of an older database no backup uses, never the current one', () => {
    const backups = [backup(F3, 'full', { start: seg(16), stop: seg(17), dbId: 2 })];
    const { plans } = planArchiveExpiry({
      backups, backupHistory: [db(1, '14'), db(2)], archive: archiveInfo(db(1, '14'), db(2), db(3)), archiveIdsOnDisk: ['14-1', '15-2', '15-3'], archiveRetention: 1, archiveType: 'full',
    });
    expect(plans.find((p) => p.archiveId === '14-1')).toMatchObject({ action: 'remove' });
    expect(plans.find((p) => p.archiveId === '15-3')).toMatchObject({ action: 'none' });
    expect(prune(plans, '15-2').retentionBackup.label).toBe(F3);
  });

  it('refuses when archive.info and backup.info disagree about a database', () => {
    const other = { ...db(1), systemId: '999' };
    expect(() => planArchiveExpiry({ backups: kept, backupHistory: [other], archive: archiveInfo(db(1)), archiveIdsOnDisk: ['15-1'], archiveRetention: 1, archiveType: 'full' }))
      .toThrow(/archive.info and backup.info disagree/);
  });

  it('keeps a 16-character directory when any range touches it, and timeline history from the retention timeline on', () => {
    const ranges = [{ label: F1, start: '000000010000000200000010', stop: '000000010000000300000001' }, { label: F3, start: '000000020000000500000000' }];
    expect(walDirInRange('0000000100000001', ranges)).toBe(false);
    expect(walDirInRange('0000000100000002', ranges)).toBe(true);
    expect(walDirInRange('0000000100000003', ranges)).toBe(true);
    expect(walDirInRange('0000000100000004', ranges)).toBe(false);
    expect(walDirInRange('0000000200000005', ranges)).toBe(true);
    expect(walFileInRange('00000001000000020000000F-' + 'b'.repeat(40), ranges)).toBe(false);
    expect(walFileInRange('000000010000000200000010.partial-' + 'b'.repeat(40), ranges)).toBe(true);
    expect(historyFileExpired('00000001.history', '000000020000000500000000')).toBe(true);
    expect(historyFileExpired('00000002.history', '000000020000000500000000')).toBe(false);
  });
});
