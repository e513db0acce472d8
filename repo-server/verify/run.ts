/**
 * verify (pgBackRest's verify command): reads every backup file and WAL segment in the
 * repository once, decompressing, and checks each against its manifest entry or file name;
 * then finds WAL that backups need but the archive lacks, and holes in the archive.
 * Runs on the server alone and takes no lock: what expire removes meanwhile is not an error.
 */
import { isSegmentName, readWalLongHeader, segmentsBetween, WAL_LONG_HEADER_SIZE } from '../../shared/wal';
import { archiveId } from '../../shared/info/archive-info';
import { parseInfo, type InfoSections } from '../../shared/info/ini';
import { parseManifest, type Manifest } from '../../shared/info/manifest';
import type { BackupInfo, BackupInfoEntry } from '../../shared/info/backup-info';
import type { PgDb } from '../../shared/info/pg-db';
import { forEachLimited, ProgressReporter } from '../../shared/progress';
import type { Progress } from '../../shared/generated/pgrepo/v1/Progress';
import type { VerifyReport } from '../../shared/generated/pgrepo/v1/VerifyReport';
import type { VerifyArchive } from '../../shared/generated/pgrepo/v1/VerifyArchive';
import type { VerifyBackup } from '../../shared/generated/pgrepo/v1/VerifyBackup';
import type { VerifyProblem } from '../../shared/generated/pgrepo/v1/VerifyProblem';
import type { ServerContext } from '../context';
import { archiveIdDirKey, archiveInfoKey, backupFileKey, backupInfoKey, manifestKey, parseWalFileName, walDirKey } from '../repo/layout';
import { checkStoredFile, type Expected, type FileCheck } from './check-file';
import { contiguousRanges, findGaps, missingSegments, type SegmentRange } from './wal-ranges';
import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';

export interface VerifyOptions {
  /** only this backup (every file it needs) and the WAL it needs */
  set?: string;
  processMax: number;
  progress: (p: Progress) => void;
  say: (line: string) => void;
  /** the operator went away: stop reading */
  cancelled: () => boolean;
}

interface FileJob {
  key: string;
  compressType: string;
  expected: Expected;
  /** stored bytes, for progress */
  bytes: number;
  wal?: { name: string };
  result?: FileCheck;
}

interface ArchiveScan {
  db: PgDb;
  id: string;
  /** WAL file name (000000010000000000000003, 00000002.history, ...) → its stored copies */
  files: Map<string, FileJob[]>;
}

const DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024;
const WAL_DIR = /^[0-9A-F]{16}$/;

const problem = (kind: string, file: string, detail: string): VerifyProblem => ({ kind, file, detail });

interface InfoPair {
  problems: VerifyProblem[];
  /** the first of the two that loads */
  sections?: InfoSections;
}

/** An info file and its .copy must both load and be identical (they are written from one text). */
async function checkInfoPair(ctx: ServerContext, key: string): Promise<InfoPair> {
  const texts: (string | null)[] = [];
  const pair: InfoPair = { problems: [] };
  for (const candidate of [key, `${key}.copy`]) {
    const data = await ctx.storage.read(candidate);
    texts.push(data === null ? null : data.toString('utf8'));
    if (data === null) {
      pair.problems.push(problem('info', candidate, 'missing'));
      continue;
    }
    try {
      pair.sections ??= parseInfo(data.toString('utf8'), candidate);
    } catch (err) {
      pair.problems.push(problem('info', candidate, (err as Error).message));
    }
  }
  if (pair.problems.length === 0 && texts[0] !== texts[1]) pair.problems.push(problem('info', `${key}.copy`, `differs from ${key}`));
  return pair;
}

class VerifyRun {
  readonly jobs = new Map<string, FileJob>();
  /** repository key → the backups that need the file */
  readonly users = new Map<string, Set<string>>();
  /** backups whose manifest loaded */
  readonly manifests = new Set<string>();
  readonly infoProblems: VerifyProblem[] = [];
  readonly archives: ArchiveScan[] = [];

  constructor(private readonly ctx: ServerContext, readonly stanza: string) {}

  private addJob(job: FileJob, user?: string): FileJob {
    const existing = this.jobs.get(job.key);
    if (!existing) this.jobs.set(job.key, job);
    if (user) {
      const users = this.users.get(job.key) ?? new Set<string>();
      users.add(user);
      this.users.set(job.key, users);
    }
    return existing ?? job;
  }

  async addBackup(b: BackupInfoEntry, info: BackupInfo): Promise<void> {
    const key = manifestKey(this.stanza, b.label);
    const pair = await checkInfoPair(this.ctx, key);
    this.infoProblems.push(...pair.problems);
    let manifest: Manifest;
    try {
      if (!pair.sections) return; // reported as missing-manifest
      manifest = parseManifest(pair.sections, key);
    } catch (err) {
      this.infoProblems.push(problem('manifest', key, (err as Error).message));
      return;
    }
    this.manifests.add(b.label);
    const listed = new Set(info.backups.map((x) => x.label));
    const unlisted = new Set<string>();
    for (const f of manifest.files) {
      const holder = f.reference || b.label;
      const fileKey = backupFileKey(this.stanza, holder, f.name, f.compressType);
      if (f.reference && !listed.has(f.reference) && !unlisted.has(f.reference)) {
        unlisted.add(f.reference);
        this.infoProblems.push(problem('manifest', key, `files (${f.name}, ...) reference backup ${f.reference}, which is not in backup.info`));
      }
      this.addJob({
        key: fileKey, compressType: f.compressType, bytes: f.repoSize,
        expected: { checksum: f.checksum, size: f.size, repoChecksum: f.repoChecksum, repoSize: f.repoSize },
      }, b.label);
    }
  }

  /** Lists an archive id's WAL files (only the segments of `only`, when given) and queues them. */
  async addArchive(db: PgDb, only?: SegmentRange): Promise<void> {
    const id = archiveId(db);
    const base = archiveIdDirKey(this.stanza, id);
    const scan: ArchiveScan = { db, id, files: new Map() };
    this.archives.push(scan);
    const entries = await this.ctx.storage.list(base);
    const inRange = (name: string, width: number) => !only || (name >= only.start.slice(0, width) && name <= only.stop.slice(0, width));
    const candidates: { dir: string; file: string }[] = [];
    for (const dir of entries.filter((e) => WAL_DIR.test(e) && inRange(e, 16))) {
      for (const file of await this.ctx.storage.list(`${base}/${dir}`)) candidates.push({ dir: `${base}/${dir}`, file });
    }
    if (!only) for (const file of entries.filter((e) => !WAL_DIR.test(e))) candidates.push({ dir: base, file });
    for (const { dir, file } of candidates) {
      const parsed = parseWalFileName(file);
      if (!parsed || (only && !(isSegmentName(parsed.walName) && inRange(parsed.walName, 24)))) continue;
      const key = `${dir}/${file}`;
      const job = this.addJob({
        key, compressType: parsed.compressType, bytes: await this.ctx.storage.size(key).catch(() => 0),
        expected: { checksum: parsed.checksum }, wal: { name: parsed.walName },
      });
      scan.files.set(parsed.walName, [...(scan.files.get(parsed.walName) ?? []), job]);
    }
  }

  async run(processMax: number, progress: (p: Progress) => void, cancelled: () => boolean): Promise<void> {
    const jobs = [...this.jobs.values()];
    const reporter = new ProgressReporter(jobs.reduce((n, j) => n + j.bytes, 0), jobs.length, progress);
    await forEachLimited(jobs, processMax, async (job) => {
      job.result = await checkStoredFile(this.ctx.storage.path(job.key), job.compressType, job.expected, job.wal ? WAL_LONG_HEADER_SIZE : 0);
      reporter.add(job.bytes);
    }, cancelled);
    if (cancelled()) throw new StatusError(grpc.status.CANCELLED, 'verify was cancelled');
    reporter.flush();
  }
}

/** A WAL file's own problems: its checksum (from the name), and for a segment its header and size. */
function walProblems(job: FileJob, db: PgDb, segmentSize: number): VerifyProblem[] {
  const r = job.result!;
  if (r.problem) return [problem(r.problem.kind, job.key, r.problem.detail)];
  if (!isSegmentName(job.wal!.name)) return [];
  try {
    const header = readWalLongHeader(r.head ?? Buffer.alloc(0));
    if (header.systemId !== db.systemId) return [problem('header', job.key, `segment is from system identifier ${header.systemId}, not ${db.systemId}`)];
  } catch (err) {
    return [problem('header', job.key, (err as Error).message)];
  }
  if (r.originalBytes !== segmentSize) return [problem('size', job.key, `segment is ${r.originalBytes} bytes, not ${segmentSize}`)];
  return [];
}

/** The segment size the archive's own segments declare in their headers. */
function segmentSizeOf(scan: ArchiveScan): number {
  for (const [name, jobs] of scan.files) {
    const head = jobs[0].result?.head;
    if (!isSegmentName(name) || jobs[0].result?.problem || !head) continue;
    try {
      return readWalLongHeader(head).segmentSize;
    } catch {
      // a damaged header is reported with the file
    }
  }
  return DEFAULT_SEGMENT_SIZE;
}

interface ArchiveResult {
  report: VerifyArchive;
  segmentSize: number;
  present: Set<string>;
  /** segment → why it cannot be used */
  invalid: Map<string, VerifyProblem>;
}

function analyzeArchive(scan: ArchiveScan, backups: BackupInfoEntry[], wholeArchive: boolean): ArchiveResult {
  const segmentSize = segmentSizeOf(scan);
  const report: VerifyArchive = { archive_id: scan.id, files: 0, valid: 0, ranges: [], gaps: [], expired_gaps: [], problems: [] };
  const present = new Set<string>();
  const invalid = new Map<string, VerifyProblem>();
  for (const [name, jobs] of scan.files) {
    // a file gone since it was listed was expired meanwhile: it is simply not there
    const there = jobs.filter((j) => j.result?.problem?.kind !== 'missing');
    if (there.length === 0) continue;
    report.files = Number(report.files) + there.length;
    if (there.length > 1) report.problems!.push(problem('duplicate', there.map((j) => j.key).join(', '), `${name} is stored ${there.length} times`));
    const problems = there.flatMap((j) => walProblems(j, scan.db, segmentSize));
    report.problems!.push(...problems);
    if (problems.length === 0) report.valid = Number(report.valid) + there.length;
    if (isSegmentName(name)) {
      present.add(name);
      if (problems.length) invalid.set(name, problems[0]);
    }
  }
  if (wholeArchive) {
    const ranges = contiguousRanges([...present], segmentSize);
    report.ranges = ranges;
    const gaps = findGaps(ranges, segmentSize, backups.filter((b) => b.dbId === scan.db.id && b.archiveStart));
    report.gaps = gaps.filter((g) => !g.expired).map(({ start, stop }) => ({ start, stop }));
    report.expired_gaps = gaps.filter((g) => g.expired).map(({ start, stop }) => ({ start, stop }));
  }
  return { report, segmentSize, present, invalid };
}

function analyzeBackup(run: VerifyRun, b: BackupInfoEntry, archive: ArchiveResult | undefined): VerifyBackup {
  const report: VerifyBackup = { label: b.label, status: 'valid', files: 0, valid: 0, problems: [], wal_missing: [], archive_start: b.archiveStart, archive_stop: b.archiveStop };
  if (!run.manifests.has(b.label)) {
    report.status = 'missing-manifest';
    report.problems!.push(problem('manifest', manifestKey(run.stanza, b.label), 'the manifest and its copy are missing or unreadable'));
    return report;
  }
  for (const [key, users] of run.users) {
    if (!users.has(b.label)) continue;
    report.files = Number(report.files) + 1;
    const p = run.jobs.get(key)!.result?.problem;
    if (p) report.problems!.push(problem(p.kind, key, p.detail));
    else report.valid = Number(report.valid) + 1;
  }
  if (b.archiveStart && b.archiveStop) {
    const present = archive?.present ?? new Set<string>();
    const size = archive?.segmentSize ?? DEFAULT_SEGMENT_SIZE;
    report.wal_missing = missingSegments(b, present, size);
    for (const segment of segmentsBetween(b.archiveStart, b.archiveStop, size)) {
      const bad = archive?.invalid.get(segment);
      if (bad) report.problems!.push(problem('wal', bad.file ?? '', `WAL segment ${segment}, which the backup needs, is unusable: ${bad.detail}`));
    }
  }
  if (report.problems!.length || report.wal_missing!.length) report.status = 'invalid';
  return report;
}

function selectBackups(info: BackupInfo, set: string | undefined): BackupInfoEntry[] {
  if (!set) return info.backups;
  const b = info.backups.find((x) => x.label === set);
  if (!b) throw new StatusError(grpc.status.NOT_FOUND, `backup ${set} is not a backup of this stanza: run repoctl info and use a label it lists`);
  return [b];
}

export async function verifyStanza(ctx: ServerContext, stanza: string, o: VerifyOptions): Promise<VerifyReport> {
  const run = new VerifyRun(ctx, stanza);
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
    ? analyzeBackup(run, b, archives.get(b.dbId))
    : { label: b.label, status: 'expired', files: 0, valid: 0, problems: [], wal_missing: [], archive_start: b.archiveStart, archive_stop: b.archiveStop }));
  const results = [...run.jobs.values()].map((j) => j.result!);
  const archiveReports = [...archives.values()].map((a) => a.report);
  const ok = run.infoProblems.length === 0
    && backups.every((b) => b.status === 'valid' || b.status === 'expired')
    && archiveReports.every((a) => a.problems!.length === 0 && a.gaps!.length === 0);
  return {
    ok, archives: archiveReports, backups, problems: run.infoProblems,
    bytes_read: results.reduce((n, r) => n + r.storedBytes, 0),
    bytes_checked: results.reduce((n, r) => n + r.originalBytes, 0),
    files_checked: results.filter((r) => r.problem?.kind !== 'missing').length,
  };
}

