/**
 * verify (pgBackRest's verify command): reads every backup file and WAL segment in the
 * repository once, decompressing, and checks each against its manifest entry or file name;
 * then finds WAL that backups need but the archive lacks, and holes in the archive.
 * Runs on the server alone and takes no lock: what expire removes meanwhile is not an error.
 */
import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import type { BackupInfo, BackupInfoEntry } from '../../shared/info/backup-info';
import type { Progress } from '../../shared/generated/pgrepo/v1/Progress';
import type { VerifyReport } from '../../shared/generated/pgrepo/v1/VerifyReport';
import type { ServerContext } from '../context';
import { archiveInfoKey, backupInfoKey, manifestKey } from '../repo/layout';
import { segmentsBetween } from '../../shared/wal';
import { readDropped } from '../commands/archive-dropped';
import { lostSegments } from '../commands/wal-gaps';
import { analyzeArchive, analyzeBackup, type ArchiveResult } from './analyze';
import { contiguousRanges } from './wal-ranges';
import { checkInfoPair } from './info-pair';
import { RepositoryScan } from './scan';

export interface VerifyOptions {
  /** only this backup (every file it needs) and the WAL it needs */
  set?: string;
  processMax: number;
  progress: (p: Progress) => void;
  say: (line: string) => void;
  /** the operator went away: stop reading */
  cancelled: () => boolean;
}

function selectBackups(info: BackupInfo, set: string | undefined): BackupInfoEntry[] {
  if (!set) return info.backups;
  const b = info.backups.find((x) => x.label === set);
  if (!b) throw new StatusError(grpc.status.NOT_FOUND, `backup ${set} is not a backup of this stanza: run repoctl info and use a label it lists`);
  return [b];
}

/**
 * WAL an agent dropped for archive-push-queue-max (its record on the server) and never archived:
 * reported as such, and a hole those segments explain is not reported again as unexplained.
 */
async function reportDropped(ctx: ServerContext, stanza: string, archives: Map<number, ArchiveResult>): Promise<void> {
  const record = await readDropped(ctx, stanza);
  for (const a of archives.values()) {
    const dropped = new Set(record.filter((d) => d.archiveId === a.report.archive_id).map((d) => d.wal));
    a.report.dropped = contiguousRanges(lostSegments(a.present, dropped), a.segmentSize);
    a.report.gaps = a.report.gaps!.filter((g) => !segmentsBetween(g.start!, g.stop!, a.segmentSize).every((n) => dropped.has(n)));
  }
}

export async function verifyStanza(ctx: ServerContext, stanza: string, o: VerifyOptions): Promise<VerifyReport> {
  const run = new RepositoryScan(ctx, stanza);
  for (const key of [backupInfoKey(stanza), archiveInfoKey(stanza)]) run.infoProblems.push(...(await checkInfoPair(ctx, key)).problems);
  const info = await ctx.store.backupInfo(stanza);
  const archiveInfo = await ctx.store.archiveInfo(stanza);
  const selected = selectBackups(info, o.set);
  for (const b of selected) await run.addBackup(b, info);
  for (const db of archiveInfo.history) {
    if (!o.set) {
      await run.addArchive(db);
      continue;
    }
    const b = selected[0];
    if (b.dbId === db.id && b.archiveStart) await run.addArchive(db, { start: b.archiveStart, stop: b.archiveStop });
  }
  const walJobs = run.archives.reduce((n, a) => n + [...a.files.values()].flat().length, 0);
  o.say(`verifying ${run.jobs.size - walJobs} backup files of ${selected.length} backup(s) and ${walJobs} WAL files, ${o.processMax} at a time`);
  await run.run(o.processMax, o.progress, o.cancelled);

  // backups expired while this ran are not damaged, just gone
  const now = await ctx.store.backupInfo(stanza);
  const stillThere = new Set(now.backups.map((b) => b.label));
  const archives = new Map(run.archives.map((scan) => [scan.db.id, analyzeArchive(scan, now.backups, !o.set)]));
  const backups = selected.map((b) => (stillThere.has(b.label)
    ? analyzeBackup(b, manifestKey(stanza, b.label), run.filesOf(b.label), archives.get(b.dbId))
    : { label: b.label, status: 'expired', files: 0, valid: 0, problems: [], wal_missing: [], archive_start: b.archiveStart, archive_stop: b.archiveStop }));
  const results = [...run.jobs.values()].map((j) => j.result!);
  if (!o.set) await reportDropped(ctx, stanza, archives);
  const archiveReports = [...archives.values()].map((a) => a.report);
  const ok = run.infoProblems.length === 0
    && backups.every((b) => b.status === 'valid' || b.status === 'expired')
    && archiveReports.every((a) => a.problems!.length === 0 && a.gaps!.length === 0 && a.dropped!.length === 0);
  return {
    ok, archives: archiveReports, backups, problems: run.infoProblems,
    bytes_read: results.reduce((n, r) => n + r.storedBytes, 0),
    bytes_checked: results.reduce((n, r) => n + r.originalBytes, 0),
    files_checked: results.filter((r) => r.problem?.kind !== 'missing').length,
  };
}

