/**
 * Carries out an expire plan on the repository, in pgBackRest's order so that an interrupted
 * expire leaves only usable backups: each expired backup loses its manifest first (newest
 * first), then backup.info is saved without them, then their directories go, then the WAL.
 */
import { isBackupHistoryName, isHistoryName } from '../../shared/wal';
import type { BackupInfoEntry } from '../../shared/info/backup-info';
import { parseInfo } from '../../shared/info/ini';
import { parseManifest } from '../../shared/info/manifest';
import type { ExpireReport } from '../../shared/generated/pgrepo/v1/ExpireReport';
import type { ExpiredWalRange } from '../../shared/generated/pgrepo/v1/ExpiredWalRange';
import type { ServerContext } from '../context';
import { archiveIdDirKey, backupDirKey, latestKey, manifestKey, parseWalFileName } from '../repo/layout';
import { planArchiveExpiry, planBackupExpiry, historyFileExpired, walDirInRange, walFileInRange, type ArchivePlan, type BackupExpiryPlan } from './plan';
import { describeRetention, type Retention } from './retention';

export interface ExpireOptions {
  retention: Retention;
  /** expire this backup (and its dependents) instead of applying retention */
  set?: string;
  dryRun: boolean;
  /** a line for the operator (also logged) */
  say: (line: string) => void;
  now?: number;
}

const BACKUP_DIR = /^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$/;
const WAL_DIR = /^[0-9A-F]{16}$/;
const ARCHIVE_ID_DIR = /^\d+(\.\d+)?-\d+$/;

class Expiry {
  readonly report: ExpireReport;

  constructor(private readonly ctx: ServerContext, readonly stanza: string, private readonly o: ExpireOptions) {
    this.report = { dry_run: o.dryRun, backups: [], wal: [], removed: [], warnings: [], wal_files: 0, error: '' };
  }

  say(line: string): void {
    this.o.say(this.o.dryRun ? `[dry-run] ${line}` : line);
  }

  warn(line: string): void {
    this.report.warnings!.push(line);
    this.say(`WARNING: ${line}`);
  }

  async remove(key: string, recursive = false): Promise<void> {
    if (!this.o.dryRun) await this.ctx.storage.remove(key, recursive);
  }

  /** pgBackRest reconstructs backup.info on load: a backup whose manifest is gone (an interrupted expire) is dropped. */
  async withManifests(backups: BackupInfoEntry[]): Promise<BackupInfoEntry[]> {
    const kept: BackupInfoEntry[] = [];
    for (const b of backups) {
      const key = manifestKey(this.stanza, b.label);
      if ((await this.ctx.storage.exists(key)) || (await this.ctx.storage.exists(`${key}.copy`))) {
        kept.push(b);
      } else {
        this.warn(`backup ${b.label} has no manifest (an interrupted expire?): removing it from backup.info`);
      }
    }
    return kept;
  }

  async expireBackups(plan: BackupExpiryPlan, all: BackupInfoEntry[]): Promise<void> {
    for (const set of plan.expired) {
      // newest first: until the set's full goes, what remains of the set is still restorable
      for (const label of [...set.labels].reverse()) {
        await this.remove(manifestKey(this.stanza, label));
        await this.remove(`${manifestKey(this.stanza, label)}.copy`);
      }
      for (const label of set.labels) {
        const type = all.find((b) => b.label === label)?.type ?? set.type;
        const why = label === set.label ? set.reason : `depends on ${set.label}, which expires (${set.reason})`;
        this.say(`expire ${type} backup ${label}: ${why}`);
      }
      this.report.backups!.push({ label: set.label, type: set.type, reason: set.reason, set: set.labels });
    }
  }

  /**
   * Backup directories that are not in backup.info any more: the expired ones, and those a failed
   * backup left. The newest one is spared when it is newer than every listed backup and depends
   * on nothing expired: it may be a backup in progress, or a partial one the next backup resumes.
   */
  async removeBackupDirs(kept: BackupInfoEntry[], expiredLabels: Set<string>): Promise<void> {
    const onDisk = (await this.ctx.storage.list(`backup/${this.stanza}`)).filter((n) => BACKUP_DIR.test(n));
    const keptLabels = new Set(kept.map((b) => b.label));
    const newestKept = kept.length ? kept[kept.length - 1].label : '';
    const newestOnDisk = onDisk[onDisk.length - 1];
    for (const label of onDisk) {
      if (keptLabels.has(label)) continue;
      if (label === newestOnDisk && label > newestKept && !(await this.dependsOnExpired(label, expiredLabels))) continue;
      await this.remove(backupDirKey(this.stanza, label), true);
      if (expiredLabels.has(label)) {
        this.ctx.log.debug({ stanza: this.stanza, label }, 'removed expired backup directory');
      } else {
        this.report.removed!.push(`backup directory ${label}`);
        this.say(`remove backup directory ${label}: it is in no backup.info entry (left by a failed or expired backup)`);
      }
    }
  }

  /** Whether a directory not in backup.info belongs to an expired backup, or (by its partial manifest or its label) depends on one. */
  private async dependsOnExpired(label: string, expiredLabels: Set<string>): Promise<boolean> {
    if (expiredLabels.has(label) || expiredLabels.has(label.slice(0, 16))) return true;
    const data = await this.ctx.storage.read(`${manifestKey(this.stanza, label)}.copy`).catch(() => null);
    if (!data) return false;
    try {
      const { backup } = parseManifest(parseInfo(data.toString('utf8'), label));
      return [backup.prior, ...backup.reference].some((l) => l !== null && expiredLabels.has(l));
    } catch {
      return false; // an unreadable partial manifest: the next backup decides about it
    }
  }

  async expireArchive(plans: ArchivePlan[]): Promise<void> {
    for (const plan of plans) {
      if (plan.action === 'none') {
        this.ctx.log.debug({ stanza: this.stanza, archiveId: plan.archiveId, reason: plan.reason }, 'no WAL to expire');
      } else if (plan.action === 'remove') {
        await this.remove(archiveIdDirKey(this.stanza, plan.archiveId), true);
        this.report.removed!.push(`archive ${plan.archiveId}`);
        this.say(`remove archive ${plan.archiveId}: ${plan.reason}`);
      } else {
        await this.pruneArchive(plan);
      }
    }
  }

  private async pruneArchive(plan: Extract<ArchivePlan, { action: 'prune' }>): Promise<void> {
    const base = archiveIdDirKey(this.stanza, plan.archiveId);
    const ranges = new RangeLog(plan.archiveId, plan.reason);
    const expireMax = plan.retentionBackup.archiveStart.slice(0, 16);
    const entries = await this.ctx.storage.list(base);
    for (const dir of entries.filter((e) => WAL_DIR.test(e))) {
      const files = (await this.ctx.storage.list(`${base}/${dir}`)).filter((f) => parseWalFileName(f));
      if (!walDirInRange(dir, plan.ranges)) {
        for (const f of files) ranges.removed(f.slice(0, 24));
        await this.remove(`${base}/${dir}`, true);
      } else if (dir <= expireMax) {
        for (const f of files) {
          if (walFileInRange(f, plan.ranges)) {
            ranges.kept();
          } else {
            ranges.removed(f.slice(0, 24));
            await this.remove(`${base}/${dir}/${f}`);
          }
        }
      } else {
        ranges.kept();
      }
    }
    ranges.kept();
    for (const r of ranges.done) {
      this.say(`${r.archive_id}: remove WAL ${r.start === r.stop ? r.start : `${r.start} to ${r.stop}`} (${r.files} file${r.files === 1 ? '' : 's'}): ${r.reason}`);
    }
    this.report.wal!.push(...ranges.done);
    this.report.wal_files = Number(this.report.wal_files) + ranges.total;
    if (ranges.total === 0) this.ctx.log.debug({ stanza: this.stanza, archiveId: plan.archiveId }, 'no WAL to remove');
    await this.pruneArchiveIdFiles(base, plan, entries);
  }

  /** Timeline history files, and backup history files where the layout keeps them beside the sub-directories. */
  private async pruneArchiveIdFiles(base: string, plan: Extract<ArchivePlan, { action: 'prune' }>, entries: string[]): Promise<void> {
    const start = plan.retentionBackup.archiveStart;
    for (const entry of entries) {
      const name = parseWalFileName(entry)?.walName;
      if (!name) continue;
      let why: string | undefined;
      if (isHistoryName(name) && historyFileExpired(name, start)) {
        why = `its timeline is older than ${plan.retentionBackup.label}'s (${start.slice(0, 8)})`;
      } else if (isBackupHistoryName(name) && name.slice(0, 24) < start && !walFileInRange(name, plan.ranges)) {
        why = plan.reason;
      }
      if (!why) continue;
      await this.remove(`${base}/${entry}`);
      this.report.removed!.push(`${plan.archiveId}/${name}`);
      this.say(`${plan.archiveId}: remove ${isHistoryName(name) ? 'timeline history' : 'backup history'} file ${name}: ${why}`);
    }
  }
}

/** Groups removed WAL files into ranges of consecutive files, broken wherever a file is kept. */
class RangeLog {
  readonly done: ExpiredWalRange[] = [];
  total = 0;
  private current: ExpiredWalRange | undefined;

  constructor(private readonly archiveId: string, private readonly reason: string) {}

  removed(segment: string): void {
    this.total++;
    if (this.current) {
      this.current.stop = segment;
      this.current.files = Number(this.current.files) + 1;
    } else {
      this.current = { archive_id: this.archiveId, start: segment, stop: segment, files: 1, reason: this.reason };
    }
  }

  kept(): void {
    if (this.current) this.done.push(this.current);
    this.current = undefined;
  }
}

/**
 * Expires one stanza's backups and WAL by the retention settings (or one backup with `set`).
 * The caller holds the stanza's lock. With dryRun nothing changes; the report says what would.
 */
export async function expireStanza(ctx: ServerContext, stanza: string, o: ExpireOptions): Promise<ExpireReport> {
  const e = new Expiry(ctx, stanza, o);
  ctx.log.info({ stanza, retention: describeRetention(o.retention), set: o.set, dryRun: o.dryRun }, 'expire started');
  for (const w of o.retention.warnings) e.warn(w);

  const info = await ctx.store.backupInfo(stanza);
  const listed = await e.withManifests(info.backups);
  const plan = planBackupExpiry(listed, o.retention, { set: o.set, now: o.now ?? Math.floor(Date.now() / 1000) });
  for (const w of plan.warnings) e.warn(w);

  await e.expireBackups(plan, listed);
  if (!o.dryRun && (plan.kept.length !== info.backups.length)) {
    await ctx.store.saveBackupInfo(stanza, { ...info, backups: plan.kept });
  }
  if (plan.latestExpired && !o.dryRun) {
    const newest = plan.kept[plan.kept.length - 1];
    if (newest) await ctx.storage.symlink(latestKey(stanza), newest.label);
    else await ctx.storage.remove(latestKey(stanza));
  }
  const expiredLabels = new Set(plan.expired.flatMap((s) => s.labels));
  await e.removeBackupDirs(plan.kept, expiredLabels);

  const archive = await ctx.store.archiveInfo(stanza);
  const archiveIdsOnDisk = (await ctx.storage.list(`archive/${stanza}`)).filter((n) => ARCHIVE_ID_DIR.test(n));
  const wal = planArchiveExpiry({
    backups: plan.kept, backupHistory: info.history, archive, archiveIdsOnDisk,
    archiveRetention: plan.archiveRetention, archiveType: o.retention.archiveType,
  });
  for (const note of wal.notes) ctx.log.info({ stanza }, note);
  await e.expireArchive(wal.plans);

  const r = e.report;
  ctx.log.info({ stanza, dryRun: o.dryRun, backups: r.backups!.flatMap((b) => b.set), walFiles: r.wal_files, other: r.removed!.length }, 'expire complete');
  return r;
}
