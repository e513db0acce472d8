import fs from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Client } from 'pg';
import { UserError } from '../../shared/errors';
import type { BackupJob__Output } from '../../shared/generated/pgrepo/v1/BackupJob';
import type { JobReply } from '../../shared/generated/pgrepo/v1/JobReply';
import type { AgentContext } from '../context';
import { connectPg, identifyCluster } from '../pg/cluster';
import { checkArchiving, databases, pageSettings, startBackup, stopBackup, tablespaceNames, waitForNextSecond } from '../pg/backup-protocol';
import { forEachLimited, ProgressReporter } from '../../shared/progress';
import { listDataDirectory, type ListedFile } from './file-list';
import { groupName, userName } from './owners';
import { afterHash, planBackup, type FileAction } from './plan';
import { fetchBaseline } from './baseline';
import { fromDisk, fromMemory, sendBundle, sendFile, type PageCheck, type Sent } from './send-file';
import { acrossTablespaces, bundled, ByteBudget, bytesInFlight, filesInFlight, inFlightBudget, largestFirst, tablespaceOfFile } from '../transfer/schedule';
import { CodecPool } from '../../shared/stream/codec-pool';
import { HashSize } from '../../shared/stream/hash-size';
import { PAGE_SIZE, describeBlocks } from '../../shared/stream/page-checksum';
import { parseLsn } from '../../shared/wal';
import { sleep } from '../../shared/sleep';
import type { UnchangedFile } from '../../shared/generated/pgrepo/v1/UnchangedFile';

type Reply = (reply: Omit<JobReply, 'job_id'>) => void;

async function sha1Of(file: string): Promise<string> {
  const hash = new HashSize();
  await pipeline(fs.createReadStream(file, { highWaterMark: 256 * 1024 }), hash, new Writable({ write: (_c, _e, done) => done() }));
  return hash.result().checksum;
}

/** Files not sent are reported in batches, so a cluster of a million unchanged files is not a million messages. */
class UnchangedReporter {
  private batch: UnchangedFile[] = [];
  files = 0;
  bytes = 0;

  constructor(private readonly reply: Reply) {}

  add(f: ListedFile, keep: Extract<FileAction, { kind: 'keep' }>): void {
    this.batch.push({
      name: f.name, size: f.size, timestamp: f.mtime, mode: f.mode, user: userName(f.uid), group: groupName(f.gid),
      checksum: keep.checksum, resumed: keep.resumed,
    });
    this.files++;
    this.bytes += f.size;
    if (this.batch.length >= 1000) this.flush();
  }

  flush(): void {
    if (this.batch.length > 0) this.reply({ files_unchanged: { files: this.batch } });
    this.batch = [];
  }
}

const isGone = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ENOENT';

/** Page checksums are validated when the cluster has them and its pages are the 8 KiB this code reads. */
async function pageCheckFor(ctx: AgentContext, client: Client, reply: Reply): Promise<{ blocksPerSegment: number } | null> {
  const settings = await pageSettings(client);
  if (!settings.dataChecksums) return null;
  if (settings.blockSize !== PAGE_SIZE) {
    const message = `page checksums are not validated: this cluster's block size is ${settings.blockSize}, only ${PAGE_SIZE} is supported`;
    ctx.log.warn(message);
    reply({ warning: message });
    return null;
  }
  return { blocksPerSegment: settings.blocksPerSegment };
}

interface CopyContext {
  ctx: AgentContext;
  job: BackupJob__Output;
  jobId: string;
  pageCheck: PageCheck | null;
  unchanged: UnchangedReporter;
  progress: ProgressReporter;
  warn: (message: string, detail?: Record<string, unknown>) => void;
  cancelled: () => boolean;
  /** the codec threads, which also read the bundles' files */
  pool: CodecPool;
}

/** What one file sent said about its pages; counts the files with invalid ones. */
function pageReport(c: CopyContext, file: ListedFile, sent: Sent): number {
  if (sent.pageErrors.length === 0) return 0;
  c.warn(`invalid page checksums found in file ${file.absPath} (${file.name}) at block(s) ${describeBlocks(sent.pageErrors)}`, { file: file.name });
  return 1;
}

/**
 * Sends the files that changed (checksumming first under delta), largest first, several at a
 * time, their chunks compressed by the pool's process-max workers; files under --bundle-limit
 * that must be sent travel together in bundles. Returns how many had invalid pages.
 */
async function copyFiles(c: CopyContext, toRead: ToRead[]): Promise<number> {
  let pageErrorFiles = 0;
  const sendAlone = async ({ file, action }: ToRead) => {
    try {
      const decided = action.kind === 'hash' ? afterHash(action, await sha1Of(file.absPath)) : action;
      if (decided.kind === 'keep') {
        c.unchanged.add(file, decided);
      } else {
        pageErrorFiles += pageReport(c, file, await sendFile(c.ctx, c.job, c.jobId, fromDisk(file, c.pageCheck), c.pageCheck?.lsnLimit ?? 0n, c.pool));
      }
      c.progress.add(file.size);
      if (c.ctx.testBackupFileDelayMs > 0) await sleep(c.ctx.testBackupFileDelayMs);
    } catch (err) {
      // PostgreSQL drops relations while a backup runs; a file gone since the listing is not needed (WAL replays the drop)
      if (!isGone(err)) throw err;
      c.progress.add(0);
    }
  };
  // under delta a file is checksummed before it is known to be sent: those go one by one
  const tablespace = (x: ToRead) => tablespaceOfFile(x.file.name);
  const items = acrossTablespaces(
    bundled(largestFirst(toRead), c.job.bundle_limit, c.job.bundle_size, (x) => x.action.kind === 'copy', tablespace),
    (item) => tablespace(item.kind === 'file' ? item.file : item.files[0]));
  // the caller's list is not needed any more: each file is held by its item only, and freed once sent
  toRead.length = 0;
  // the count keeps many small files in flight, the byte budget few large ones
  const budget = new ByteBudget(inFlightBudget(c.pool.size));
  await forEachLimited(items, filesInFlight(c.pool.size), async (item) => {
    const bytes = bytesInFlight(item.kind === 'file' ? item.file.size : item.files.reduce((n, x) => n + x.size, 0), item.kind === 'bundle');
    await budget.take(bytes);
    try {
      if (item.kind === 'file') return await sendAlone(item.file);
      const sent = await sendBundle(c.ctx, c.job, c.jobId, item.files.map((x) => fromDisk(x.file, c.pageCheck)), c.pageCheck?.lsnLimit ?? 0n, c.pool);
      item.files.forEach((x, i) => {
        if (sent[i]) pageErrorFiles += pageReport(c, x.file, sent[i]!);
      });
      c.progress.add(item.files.reduce((n, x) => n + x.file.size, 0), item.files.length);
    } finally {
      budget.give(bytes);
    }
  }, c.cancelled, true);
  return pageErrorFiles;
}

/** A file that may have to be sent, and what the plan says of it. */
interface ToRead {
  file: ListedFile;
  action: FileAction;
  size: number;
}

/**
 * The listing and the plan, reduced to what the backup still needs: the files to read (one
 * object each), those kept (reported once the backup has started, then dropped) and the totals.
 * The listing, the plan's actions and the baseline are freed when this returns, so the list is
 * not held three times while the files are sent.
 */
async function listAndPlan(ctx: AgentContext, jobId: string, job: BackupJob__Output, client: Client, timeline: number) {
  const list = await listDataDirectory(ctx.pgPath, { warn: (message) => ctx.log.warn(message) });
  const { listedAt, copyStart } = await waitForNextSecond(client);
  const baseline = job.prior || job.resume ? await fetchBaseline(ctx, jobId) : { prior: new Map(), resumable: new Map() };
  const plan = planBackup(list.files, baseline,
    { delta: job.delta, priorLabel: job.prior || null, priorTimeline: job.prior_timeline, timeline, listedAt });
  const toRead: ToRead[] = [];
  const kept: { file: ListedFile; action: Extract<FileAction, { kind: 'keep' }> }[] = [];
  let bytesListed = 0;
  list.files.forEach((file, i) => {
    const action = plan.actions[i];
    if (action.kind === 'keep') kept.push({ file, action });
    else toRead.push({ file, action, size: file.size });
    bytesListed += file.size;
  });
  return {
    toRead, kept, copyStart, delta: plan.delta, warnings: plan.warnings, paths: list.paths, links: list.links,
    bytesListed, filesListed: list.files.length,
  };
}

/**
 * The host side of a backup, between pg_backup_start and pg_backup_stop on one held
 * connection: list PGDATA, wait for the next second, decide from the baseline (prior backup,
 * resumable partial set) what must be sent, stream it with page checksums validated on the
 * way, report the rest as unchanged, then hand over backup_label and tablespace_map as files.
 */
export async function runBackupJob(ctx: AgentContext, jobId: string, job: BackupJob__Output, reply: Reply, cancelled: () => boolean): Promise<void> {
  const client: Client = await connectPg(ctx.pg, 'pgrepo-agent backup');
  const pool = new CodecPool(job.process_max || 1);
  const warn = (message: string, detail: Record<string, unknown> = {}) => {
    ctx.log.warn({ label: job.label, ...detail }, message);
    reply({ warning: message });
  };
  try {
    const cluster = await identifyCluster(client, ctx.pgPath);
    if (cluster.system_id !== job.system_id) {
      throw new UserError(`this cluster has system identifier ${cluster.system_id}, but stanza '${job.stanza}' holds backups of ${job.system_id}: refusing to back it up into this stanza`, 'CLUSTER_MISMATCH');
    }
    if (cluster.in_recovery) throw new UserError('this cluster is a standby; backups are taken from the primary', 'STANDBY');
    await checkArchiving(client);
    const pageSettingsFound = await pageCheckFor(ctx, client, reply);
    const start = await startBackup(client, `pgrepo backup ${job.label}`, job.start_fast, cluster.version_num!);
    ctx.log.info({ label: job.label, type: job.type, prior: job.prior || undefined, lsn: start.lsn, wal: start.walFile }, 'backup started on PostgreSQL');
    const pageCheck: PageCheck | null = pageSettingsFound ? { ...pageSettingsFound, lsnLimit: parseLsn(start.lsn) } : null;

    const names = await tablespaceNames(client);
    const listed = await listAndPlan(ctx, jobId, job, client, start.timeline);
    for (const w of listed.warnings) warn(w);

    const { toRead, filesListed } = listed;
    const filesToRead = toRead.length;
    const bytesTotal = toRead.reduce((n, x) => n + x.size, 0);
    const own = { uid: listed.paths[0]?.uid ?? process.getuid?.() ?? 0, gid: listed.paths[0]?.gid ?? process.getgid?.() ?? 0 };
    reply({ backup_started: {
      lsn_start: start.lsn, wal_start: start.walFile, timeline: start.timeline,
      timestamp_start: start.timestamp, timestamp_copy_start: listed.copyStart,
      paths: listed.paths.map((p) => ({ name: p.name, mode: p.mode, user: userName(p.uid), group: groupName(p.gid) })),
      links: listed.links.map((l) => ({
        name: l.name, destination: l.destination, user: userName(l.uid), group: groupName(l.gid),
        tablespace_oid: l.tablespaceOid ?? 0, tablespace_name: l.tablespaceOid ? names.get(l.tablespaceOid) ?? '' : '',
      })),
      databases: await databases(client, cluster.version_num!),
      bytes_total: bytesTotal, files_total: filesToRead + 2, cluster,
      bytes_listed: listed.bytesListed, files_listed: filesListed + 2,
      delta: listed.delta, checksum_page: pageCheck !== null,
    } });

    const unchanged = new UnchangedReporter(reply);
    for (const { file, action } of listed.kept) unchanged.add(file, action);
    listed.kept.length = 0;
    const progress = new ProgressReporter(bytesTotal, filesToRead + 2, (p) => reply({ progress: p }));
    const pageErrorFiles = await copyFiles({ ctx, job, jobId, pageCheck, unchanged, progress, warn, cancelled, pool }, toRead);
    if (cancelled()) throw new UserError('the backup was cancelled');
    unchanged.flush();

    const stop = await stopBackup(client, cluster.version_num!);
    await sendFile(ctx, job, jobId, fromMemory('pg_data/backup_label', stop.labelFile, own, stop.timestamp), 0n, pool);
    if (stop.tablespaceMap) await sendFile(ctx, job, jobId, fromMemory('pg_data/tablespace_map', stop.tablespaceMap, own, stop.timestamp), 0n, pool);
    progress.flush();
    ctx.log.info({ label: job.label, lsn: stop.lsn, wal: stop.walFile, files: filesListed, unchanged: unchanged.files, pageErrorFiles }, 'backup stopped on PostgreSQL');
    reply({ backup_stopped: { lsn_stop: stop.lsn, wal_stop: stop.walFile, timestamp_stop: stop.timestamp } });
  } finally {
    // closing the session ends a backup that did not reach pg_backup_stop (non-exclusive mode)
    await client.end().catch(() => undefined);
    await pool.close();
  }
}
