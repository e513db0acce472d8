/** From what the scan read to the report: per archive id and per backup, what is missing or damaged. */
import { isSegmentName, readWalLongHeader, segmentsBetween } from '../../shared/wal';
import type { BackupInfoEntry } from '../../shared/info/backup-info';
import type { PgDb } from '../../shared/info/pg-db';
import type { VerifyArchive } from '../../shared/generated/pgrepo/v1/VerifyArchive';
import type { VerifyBackup } from '../../shared/generated/pgrepo/v1/VerifyBackup';
import type { VerifyProblem } from '../../shared/generated/pgrepo/v1/VerifyProblem';
import { DEFAULT_SEGMENT_SIZE, problem, type ArchiveScan, type FileJob } from './model';
import { contiguousRanges, findGaps, missingSegments } from './wal-ranges';

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

export interface ArchiveResult {
  report: VerifyArchive;
  segmentSize: number;
  present: Set<string>;
  /** segment → why it cannot be used */
  invalid: Map<string, VerifyProblem>;
}

export function analyzeArchive(scan: ArchiveScan, backups: BackupInfoEntry[], wholeArchive: boolean): ArchiveResult {
  const segmentSize = segmentSizeOf(scan);
  const report: VerifyArchive = { archive_id: scan.id, files: 0, valid: 0, ranges: [], gaps: [], expired_gaps: [], problems: [], dropped: [] };
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

/** A backup's verdict: `files` are the stored files it needs (its own and those it references); none when its manifest could not be read. */
export function analyzeBackup(b: BackupInfoEntry, manifest: string, files: FileJob[] | undefined, archive: ArchiveResult | undefined): VerifyBackup {
  const report: VerifyBackup = { label: b.label, status: 'valid', files: 0, valid: 0, problems: [], wal_missing: [], archive_start: b.archiveStart, archive_stop: b.archiveStop };
  if (!files) {
    report.status = 'missing-manifest';
    report.problems!.push(problem('manifest', manifest, 'the manifest and its copy are missing or unreadable'));
    return report;
  }
  for (const job of files) {
    report.files = Number(report.files) + 1;
    const p = job.result?.problem;
    if (p) report.problems!.push(problem(p.kind, job.key, job.name ? `${job.name}: ${p.detail}` : p.detail));
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
