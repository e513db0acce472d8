/**
 * What expire removes, decided without touching storage (pgBackRest's src/command/expire/expire.c):
 * backups by full/diff/time retention or an explicit --set, each with every backup that depends
 * on it; then, per archive id, the WAL that no kept backup needs.
 */
import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import type { BackupInfoEntry, BackupType } from '../../shared/info/backup-info';
import { archiveId, type ArchiveInfo } from '../../shared/info/archive-info';
import type { PgDb } from '../../shared/info/pg-db';
import type { Retention } from './retention';

export interface ExpiredSet {
  /** the backup retention (or --set) chose */
  label: string;
  type: BackupType;
  /** it and every backup depending on it, oldest first (removed newest first) */
  labels: string[];
  reason: string;
}

export interface BackupExpiryPlan {
  kept: BackupInfoEntry[];
  expired: ExpiredSet[];
  warnings: string[];
  /** archive retention to use: the configured or derived one, or what time-based full retention derived */
  archiveRetention?: number;
  /** set when the newest backup is among the expired: `latest` must move */
  latestExpired?: string;
}

const byLabel = (a: { label: string }, b: { label: string }) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0);
const DAY = 86_400;

/** The backup and every backup that depends on it (through prior or backup-reference), oldest first. */
export function dependents(backups: BackupInfoEntry[], label: string): string[] {
  const set = new Set([label]);
  for (const b of [...backups].sort(byLabel)) {
    if (set.has(b.label)) continue;
    if ((b.prior !== null && set.has(b.prior)) || b.reference.some((r) => set.has(r))) set.add(b.label);
  }
  return [...set].sort();
}

/** The backups retention of `type` counts, oldest first: fulls count as diffs, and everything as incr. */
export function backupsOfRetentionType(backups: BackupInfoEntry[], type: 'full' | 'diff' | 'incr'): BackupInfoEntry[] {
  const counted: Record<string, BackupType[]> = { full: ['full'], diff: ['full', 'diff'], incr: ['full', 'diff', 'incr'] };
  return backups.filter((b) => counted[type].includes(b.type)).sort(byLabel);
}

class Remaining {
  backups: BackupInfoEntry[];
  readonly expired: ExpiredSet[] = [];

  constructor(backups: BackupInfoEntry[]) {
    this.backups = [...backups].sort(byLabel);
  }

  get(label: string): BackupInfoEntry | undefined {
    return this.backups.find((b) => b.label === label);
  }

  of(type: 'full' | 'diff'): BackupInfoEntry[] {
    return backupsOfRetentionType(this.backups, type);
  }

  expire(b: BackupInfoEntry, reason: string): ExpiredSet {
    const labels = dependents(this.backups, b.label);
    this.backups = this.backups.filter((x) => !labels.includes(x.label));
    const set = { label: b.label, type: b.type, labels, reason };
    this.expired.push(set);
    return set;
  }
}

function expireFullByCount(r: Remaining, keep: number): void {
  const fulls = r.of('full');
  const excess = fulls.length - keep;
  for (const full of fulls.slice(0, Math.max(0, excess))) {
    r.expire(full, `repo-retention-full=${keep}: ${fulls.length} full backups, so the oldest ${excess} expire${excess === 1 ? 's' : ''}`);
  }
}

/**
 * Keeps the newest full that stopped before the cut-off (so at least one full older than the
 * period remains) and everything after it; all older backups expire. Returns how many sets went.
 */
function expireFullByTime(r: Remaining, days: number, now: number): number {
  const fulls = r.of('full');
  if (fulls.length === 0) return 0;
  const cutoff = now - days * DAY;
  let keepFrom = fulls[0];
  for (let i = fulls.length - 1; i >= 0; i--) {
    keepFrom = fulls[i];
    if (fulls[i].timestampStop < cutoff) break;
  }
  let count = 0;
  while (r.backups.length > 0 && r.backups[0].label !== keepFrom.label) {
    r.expire(r.backups[0], `repo-retention-full=${days} days (type time): full backup ${keepFrom.label} is the newest one older than ${days} days, so everything before it expires`);
    count++;
  }
  return count;
}

/** Fulls count as diffs when counting, but only diffs (and what depends on them) expire here. */
function expireDiff(r: Remaining, keep: number): void {
  const counted = r.of('diff');
  const excess = counted.length - keep;
  for (const b of counted.slice(0, Math.max(0, excess))) {
    if (b.type !== 'diff' || !r.get(b.label)) continue;
    r.expire(b, `repo-retention-diff=${keep}: ${counted.length} full and differential backups, the oldest ${excess} do not count as kept`);
  }
}

function expireAdhoc(r: Remaining, label: string): void {
  const b = r.get(label);
  if (!b) {
    throw new StatusError(grpc.status.NOT_FOUND, `backup ${label} does not exist in this stanza: run repoctl info and use a label it lists`);
  }
  const fulls = r.of('full').reverse();
  if (fulls[0]?.label === label && (fulls.length === 1 || fulls[1].dbId !== b.dbId)) {
    throw new StatusError(grpc.status.FAILED_PRECONDITION,
      `full backup ${label} cannot be expired until another full backup has been created in this repository (it is the only one the current cluster could be restored from)`);
  }
  r.expire(b, `requested with --set ${label}`);
}

/** Which backups go, by the retention settings or (with `set`) the one asked for. */
export function planBackupExpiry(backups: BackupInfoEntry[], retention: Retention, opts: { set?: string; now: number }): BackupExpiryPlan {
  const r = new Remaining(backups);
  const warnings: string[] = [];
  let archiveRetention = retention.archive;
  if (opts.set) {
    expireAdhoc(r, opts.set);
  } else {
    if (retention.full !== undefined) {
      if (retention.fullType === 'time') {
        const sets = expireFullByTime(r, retention.full, opts.now);
        // pgBackRest: with time-based retention, WAL is kept for the fulls that remain
        if (retention.archiveType === 'full' && retention.archive === undefined) {
          if (sets > 0) archiveRetention = r.of('full').length;
          else warnings.push('time-based archive retention not met: WAL segments will not be expired');
        }
      } else {
        expireFullByCount(r, retention.full);
      }
    }
    if (retention.diff !== undefined) expireDiff(r, retention.diff);
  }
  const newest = [...backups].sort(byLabel).pop();
  const latestExpired = newest && !r.get(newest.label) ? newest.label : undefined;
  if (latestExpired) {
    warnings.push(`expiring the latest backup ${latestExpired}: point-in-time recovery may be affected (non-default repo-retention-archive/-archive-type settings, even in earlier expires, can leave gaps in the WAL)`);
  }
  return { kept: r.backups, expired: r.expired, warnings, archiveRetention, latestExpired };
}

// ---------------------------------------------------------------------------------------------
// WAL

/** WAL a backup needs: archive-start..archive-stop, or from archive-start on (stop undefined) for the retention backup. */
export interface KeepRange {
  label: string;
  start: string;
  stop?: string;
}

export type ArchivePlan =
  | { archiveId: string; action: 'remove'; reason: string }
  | { archiveId: string; action: 'prune'; retentionBackup: BackupInfoEntry; ranges: KeepRange[]; reason: string }
  | { archiveId: string; action: 'none'; reason: string };

export interface ArchiveExpiryInput {
  /** the backups that remain */
  backups: BackupInfoEntry[];
  backupHistory: PgDb[];
  archive: ArchiveInfo;
  /** archive id directories that exist (15-1, ...) */
  archiveIdsOnDisk: string[];
  archiveRetention?: number;
  archiveType: 'full' | 'diff' | 'incr';
}

function checkHistoriesMatch(archive: ArchiveInfo, backupHistory: PgDb[]): void {
  for (const a of archive.history) {
    const b = backupHistory.find((h) => h.id === a.id);
    if (b && (b.systemId !== a.systemId || b.version !== a.version)) {
      throw new StatusError(grpc.status.FAILED_PRECONDITION,
        `WAL expiration cannot continue: archive.info and backup.info disagree about database ${a.id} (system identifier ${a.systemId} / ${b.systemId}, version ${a.version} / ${b.version}); nothing was removed from the archive`);
    }
  }
}

/** Per archive id, what to do with its WAL; `notes` say why nothing is done when that is the case. */
export function planArchiveExpiry(input: ArchiveExpiryInput): { plans: ArchivePlan[]; notes: string[] } {
  const { archiveRetention: keep, archiveType } = input;
  if (keep === undefined) return { plans: [], notes: ['repo-retention-archive is not set: WAL segments are not expired'] };
  const counted = backupsOfRetentionType(input.backups, archiveType).reverse(); // newest first
  if (counted.length === 0 || keep > counted.length) {
    return { plans: [], notes: [`repo-retention-archive=${keep} (type ${archiveType}) but only ${counted.length} such backup(s) exist: no WAL expires yet`] };
  }
  checkHistoriesMatch(input.archive, input.backupHistory);
  const inRetention = new Set(counted.slice(0, keep).map((b) => b.label));
  const plans: ArchivePlan[] = [];
  for (const db of [...input.archive.history].reverse()) {
    const id = archiveId(db);
    if (!input.archiveIdsOnDisk.includes(id)) continue;
    const local = counted.filter((b) => b.dbId === db.id).reverse(); // oldest first
    if (local.length === 0) {
      plans.push(db.id === input.archive.current.id
        ? { archiveId: id, action: 'none', reason: `no backup of the current database uses ${id} yet` }
        : { archiveId: id, action: 'remove', reason: `no kept backup uses ${id} and it is not the current database's` });
      continue;
    }
    const localKept = local.filter((b) => inRetention.has(b.label));
    // no backup of this database is within archive retention: keep what recovery from its newest backup needs
    const retentionBackup = localKept[0] ?? local[local.length - 1];
    if (!retentionBackup.archiveStart) {
      plans.push({ archiveId: id, action: 'none', reason: `backup ${retentionBackup.label} was taken offline, so it marks no WAL position to expire before` });
      continue;
    }
    const ranges: KeepRange[] = input.backups
      .filter((b) => b.dbId === db.id && b.label <= retentionBackup.label && b.archiveStart)
      .sort(byLabel)
      .map((b) => (b.label === retentionBackup.label ? { label: b.label, start: b.archiveStart } : { label: b.label, start: b.archiveStart, stop: b.archiveStop }));
    plans.push({
      archiveId: id, action: 'prune', retentionBackup, ranges,
      reason: `older than ${retentionBackup.label}'s archive-start ${retentionBackup.archiveStart} (repo-retention-archive=${keep}, type ${archiveType}) and not needed by any kept backup for consistency`,
    });
  }
  return { plans, notes: [] };
}

/** A 16-character WAL directory is kept whole when it overlaps any range (then its files are looked at one by one). */
export function walDirInRange(dir: string, ranges: KeepRange[]): boolean {
  return ranges.some((r) => dir >= r.start.slice(0, 16) && (r.stop === undefined || dir <= r.stop.slice(0, 16)));
}

/** A WAL file (segment, .partial or .backup: named from its first 24 characters) some kept backup needs. */
export function walFileInRange(name: string, ranges: KeepRange[]): boolean {
  const segment = name.slice(0, 24);
  return ranges.some((r) => segment >= r.start && (r.stop === undefined || segment <= r.stop));
}

/** Timeline history files older than the retention backup's timeline are not needed. */
export function historyFileExpired(historyName: string, retentionStart: string): boolean {
  return historyName.slice(0, 8) < retentionStart.slice(0, 8);
}
