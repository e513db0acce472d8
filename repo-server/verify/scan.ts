import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import { isSegmentName, WAL_LONG_HEADER_SIZE } from '../../shared/wal';
import { archiveId } from '../../shared/info/archive-info';
import type { BackupInfo, BackupInfoEntry } from '../../shared/info/backup-info';
import type { PgDb } from '../../shared/info/pg-db';
import { ProgressReporter } from '../../shared/progress';
import type { Progress } from '../../shared/generated/pgrepo/v1/Progress';
import type { VerifyProblem } from '../../shared/generated/pgrepo/v1/VerifyProblem';
import type { ServerContext } from '../context';
import { archiveIdDirKey, manifestKey, parseWalFileName, storedLocation } from '../repo/layout';
import { judgeStoredFile } from './check-file';
import { sumAll } from './sums-pool';
import { readManifestOffThread } from './manifest-rows';
import { problem, type ArchiveScan, type FileJob } from './model';
import type { SegmentRange } from './wal-ranges';

const WAL_DIR = /^[0-9A-F]{16}$/;

/** Everything verify reads, each stored file once however many backups need it; then reads it all. */
export class RepositoryScan {
  readonly jobs = new Map<string, FileJob>();
  /** backup label → the repository keys of the files it needs */
  private readonly needs = new Map<string, Set<string>>();
  /** backups whose manifest loaded */
  readonly manifests = new Set<string>();
  readonly infoProblems: VerifyProblem[] = [];
  readonly archives: ArchiveScan[] = [];

  constructor(private readonly ctx: ServerContext, readonly stanza: string) {}

  private addJob(job: Omit<FileJob, 'req'>, user?: string): FileJob {
    let existing = this.jobs.get(job.key);
    if (!existing) {
      existing = {
        ...job,
        req: { path: this.ctx.storage.path(job.read?.key ?? job.key), range: job.read?.range, compressType: job.compressType, headBytes: job.wal ? WAL_LONG_HEADER_SIZE : 0 },
      };
      this.jobs.set(job.key, existing);
    }
    if (user) {
      const needs = this.needs.get(user) ?? new Set<string>();
      needs.add(job.key);
      this.needs.set(user, needs);
    }
    return existing;
  }

  /** Queues the files of a backup's manifest, loaded on a thread of its own (manifest-rows.ts). */
  async addBackup(b: BackupInfoEntry, info: BackupInfo): Promise<void> {
    const key = manifestKey(this.stanza, b.label);
    const listed = new Set(info.backups.map((x) => x.label));
    const unlisted = new Set<string>();
    const referenceProblems: VerifyProblem[] = [];
    const manifest = await readManifestOffThread(this.ctx.storage.path(key), key, (rows) => {
      for (const f of rows) {
        const stored = storedLocation(this.stanza, b.label, f);
        const fileKey = stored.range ? `${stored.key}#${stored.range.start}` : stored.key;
        if (f.reference && !listed.has(f.reference) && !unlisted.has(f.reference)) {
          unlisted.add(f.reference);
          referenceProblems.push(problem('manifest', key, `files (${f.name}, ...) reference backup ${f.reference}, which is not in backup.info`));
        }
        this.addJob({
          key: fileKey, read: stored.range ? stored : undefined, name: stored.range ? f.name : undefined, compressType: f.compressType, bytes: f.repoSize,
          expected: { checksum: f.checksum, size: f.size, repoChecksum: f.repoChecksum, repoSize: f.repoSize },
        }, b.label);
      }
    });
    this.infoProblems.push(...manifest.problems, ...referenceProblems);
    // not loaded: reported as missing-manifest
    if (manifest.loaded) this.manifests.add(b.label);
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

  /** The stored files a backup needs; undefined when its manifest could not be read. */
  filesOf(label: string): FileJob[] | undefined {
    if (!this.manifests.has(label)) return undefined;
    return [...(this.needs.get(label) ?? [])].map((key) => this.jobs.get(key)!);
  }

  /** Reads every file on `processMax` threads (sums-pool.ts) and judges it. */
  async run(processMax: number, progress: (p: Progress) => void, cancelled: () => boolean): Promise<void> {
    const jobs = [...this.jobs.values()];
    const reporter = new ProgressReporter(jobs.reduce((n, j) => n + j.bytes, 0), jobs.length, progress);
    await sumAll(jobs, processMax, (done, sums) => {
      done.forEach((job, i) => (job.result = judgeStoredFile(sums[i], job.compressType, job.expected)));
      reporter.add(done.reduce((n, j) => n + j.bytes, 0), done.length);
    }, cancelled);
    if (cancelled()) throw new StatusError(grpc.status.CANCELLED, 'verify was cancelled');
    reporter.flush();
  }
}
