import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import { segmentsBetween } from '../../shared/wal';
import { manifestTotals, type Manifest } from '../../shared/info/manifest';
import type { BackupType } from '../../shared/info/backup-info';
import type { BackupRequest__Output } from '../../shared/generated/pgrepo/v1/BackupRequest';
import type { BackupStarted__Output } from '../../shared/generated/pgrepo/v1/BackupStarted';
import type { BackupStopped__Output } from '../../shared/generated/pgrepo/v1/BackupStopped';
import type { OperationEvent } from '../../shared/generated/pgrepo/v1/OperationEvent';
import { DEFAULT_COMPRESS_TYPE, defaultCompressLevel, parseCompressType } from '../../shared/stream/compress';
import { checkCompressLevel } from '../../shared/stream/frame-codec';
import type { ServerContext } from '../context';
import type { AgentJob } from '../agents';
import { backupDirKey, latestKey } from '../repo/layout';
import { chooseCluster, describeCluster } from './choose-cluster';
import { BackupSession } from './backup-session';
import { waitForWal } from './archive';
import { newBackupLabel } from './label';
import { chooseBackupType } from './backup-type';
import { PartialSaver, prepareResume, removeStrays, unlistedBackupDirs, type Resumable } from './backup-partial';
import { buildManifest, infoEntry, pageErrorFiles, type ManifestOptionsIn } from './backup-manifest';
import { formatBytes } from '../repoctl/units';
import { expireAfterBackup, retentionFor } from './expire';

export type Emit = (event: OperationEvent) => void;

interface BackupOptions extends ManifestOptionsIn {
  archiveTimeout: number;
  delta: boolean;
  resume: boolean;
  /** files smaller than this go into bundles; 0 = no bundles */
  bundleLimit: number;
  bundleSize: number;
}

const MiB = 1024 * 1024;

function backupOptions(ctx: ServerContext, req: BackupRequest__Output): BackupOptions {
  const compressType = parseCompressType(req.compress_type || DEFAULT_COMPRESS_TYPE);
  // -1: not given, the type's default
  const compressLevel = req.compress_level === -1 ? defaultCompressLevel(compressType) : req.compress_level;
  try {
    checkCompressLevel(compressType, compressLevel);
  } catch (err) {
    throw new StatusError(grpc.status.INVALID_ARGUMENT, (err as Error).message);
  }
  return {
    compressType,
    compressLevel,
    processMax: Math.max(1, req.process_max || 1),
    startFast: req.start_fast,
    archiveTimeout: req.archive_timeout || ctx.archiveTimeoutSeconds,
    delta: req.delta,
    resume: !req.no_resume,
    bundleLimit: req.bundle ? req.bundle_limit || 2 * MiB : 0,
    bundleSize: req.bundle_size || 20 * MiB,
  };
}

/** What one backup run knows so far; the failure path needs it to keep a partial set. */
interface Run {
  stanza: string;
  label: string;
  type: BackupType;
  prior: Manifest | null;
  opts: BackupOptions;
  db: Manifest['db'];
  resumable?: Resumable;
  session?: BackupSession;
  started?: BackupStarted__Output;
}

type Say = (level: 'info' | 'warn', message: string, detail?: Record<string, unknown>) => void;

/** Replies until the agent reports the backup stopped: progress to the operator, unchanged files into the session. */
async function followAgent(job: AgentJob, run: Run, session: BackupSession, emit: Emit, say: Say): Promise<BackupStopped__Output> {
  for (;;) {
    const reply = await job.next();
    if (reply.backup_started) {
      const s = (run.started = reply.backup_started);
      say('info', `backup started at LSN ${s.lsn_start} (WAL ${s.wal_start}); ${s.files_total} of ${s.files_listed} files, ` +
        `${formatBytes(s.bytes_total)} of ${formatBytes(s.bytes_listed)} to read${s.delta ? ' (delta: checksums decide what changed)' : ''}` +
        `${s.checksum_page ? '; page checksums are validated' : ''}`);
    } else if (reply.files_unchanged) {
      for (const f of reply.files_unchanged.files) session.addUnchanged(f);
    } else if (reply.warning) {
      say('warn', reply.warning, { agent: job.agent.identity });
    } else if (reply.progress) {
      emit({ progress: reply.progress });
    } else if (reply.backup_stopped) {
      if (!run.started) throw new StatusError(grpc.status.INTERNAL, 'the agent stopped a backup it never reported started');
      return reply.backup_stopped;
    }
  }
}

/** The files of a partial set: the resumed ones still in place, and everything stored since. */
function partialManifest(run: Run): Manifest {
  const files = new Map(run.resumable?.kept ?? []);
  for (const [name, f] of run.session!.stored) files.set(name, f);
  return buildManifest(run.label, run.type, run.prior, run.opts, run.db, [...files.values()], run.started!);
}

/** A failed backup keeps what it stored, for the next backup to resume; one that stored nothing leaves nothing. */
async function afterFailure(ctx: ServerContext, run: Run, say: Say, saver: PartialSaver | undefined): Promise<void> {
  const dir = backupDirKey(run.stanza, run.label);
  if (!run.started) {
    // a resumed set not touched yet still has its own partial manifest
    if (!run.resumable) await ctx.storage.remove(dir, true).catch(() => undefined);
    return;
  }
  const m = partialManifest(run);
  if (m.files.length === 0 || !saver) {
    await ctx.storage.remove(dir, true).catch(() => undefined);
    return;
  }
  try {
    await saver.now();
    const bytes = m.files.reduce((n, f) => n + f.size, 0);
    say('warn', `backup ${run.label} failed; the ${m.files.length} file(s) (${formatBytes(bytes)}) it stored are kept as a partial backup: ` +
      `the next ${run.type} backup resumes it (--no-resume starts clean). A partial backup is never offered for restore.`);
  } catch (err) {
    ctx.log.warn({ stanza: run.stanza, label: run.label, err: (err as Error).message }, 'cannot save the partial manifest; removing the partial backup');
    await ctx.storage.remove(dir, true).catch(() => undefined);
  }
}

/** Makes the backup visible: manifest, backup.info, latest. */
async function complete(ctx: ServerContext, run: Run, stopped: BackupStopped__Output): Promise<Manifest> {
  const session = run.session!;
  const manifest = buildManifest(run.label, run.type, run.prior, run.opts, run.db, session.files(), run.started!, stopped);
  if (run.resumable) {
    const strays = await removeStrays(ctx, run.stanza, run.label, session.stored.values());
    if (strays > 0) ctx.log.info({ stanza: run.stanza, label: run.label, files: strays }, 'removed files of the resumed backup that it no longer has');
  }
  await ctx.store.saveManifest(run.stanza, manifest);
  const latestInfo = await ctx.store.backupInfo(run.stanza);
  latestInfo.backups = [...latestInfo.backups, infoEntry(manifest)].sort((a, b) => (a.label < b.label ? -1 : 1));
  await ctx.store.saveBackupInfo(run.stanza, latestInfo);
  await ctx.storage.symlink(latestKey(run.stanza), run.label);
  return manifest;
}

/**
 * repoctl backup: chooses the type and prior, resumes a partial set of the same kind, has the
 * agent copy what changed between pg_backup_start and pg_backup_stop, and makes the backup
 * visible (manifest, backup.info, latest) only after every WAL segment from its start to its
 * stop is in the archive.
 */
export async function runBackup(ctx: ServerContext, req: BackupRequest__Output, emit: Emit, cancelled: () => boolean): Promise<void> {
  const began = Date.now();
  const stanza = req.stanza;
  const opts = backupOptions(ctx, req);
  const retention = retentionFor(ctx, stanza, req.retention);
  const release = ctx.locks.acquire(stanza, 'backup');
  const say: Say = (level, message, detail = {}) => {
    ctx.log[level]({ stanza, ...detail }, message);
    emit({ log: level === 'warn' ? `WARNING: ${message}` : message });
  };
  let run: Run | undefined;
  let job: AgentJob | undefined;
  let saver: PartialSaver | undefined;
  try {
    const backupInfo = await ctx.store.backupInfo(stanza);
    const { agent, cluster } = await chooseCluster(ctx, stanza, req.host);
    if (cluster.system_id !== backupInfo.current.systemId || cluster.version !== backupInfo.current.version) {
      throw new StatusError(grpc.status.FAILED_PRECONDITION,
        `the cluster behind agent '${agent.identity}' (${describeCluster(cluster)}) does not match stanza '${stanza}' (${describeCluster(backupInfo.current)}): refusing to back it up into this stanza`);
    }
    const choice = await chooseBackupType(ctx, stanza, backupInfo, req.type);
    for (const note of choice.notes) say('info', note);
    for (const warning of choice.warnings) say('warn', warning);
    const priorLabel = choice.prior?.backup.label ?? null;
    const resumable = await prepareResume(ctx, stanza, backupInfo, { type: choice.type, prior: priorLabel, compressType: opts.compressType }, opts.resume, say);
    const existing = [...backupInfo.backups.map((b) => b.label), ...(await unlistedBackupDirs(ctx, stanza, backupInfo))];
    const label = resumable?.label ?? newBackupLabel(choice.type, priorLabel, existing, new Date());
    run = { stanza, label, type: choice.type, prior: choice.prior, opts, db: backupInfo.current, resumable };
    say('info', `${choice.type} backup ${label} of stanza '${stanza}' from agent '${agent.identity}'${priorLabel ? ` on prior ${priorLabel}` : ''}${resumable ? ', resuming' : ''}`,
      { label, type: choice.type, prior: priorLabel ?? undefined, agent: agent.identity });

    job = agent.startJob({
      backup: {
        stanza, label, type: choice.type, system_id: backupInfo.current.systemId,
        compress_type: opts.compressType, compress_level: opts.compressLevel, process_max: opts.processMax, start_fast: opts.startFast,
        prior: priorLabel ?? '', delta: opts.delta, resume: resumable !== undefined,
        prior_timeline: choice.prior?.backup.archiveStop ? parseInt(choice.prior.backup.archiveStop.slice(0, 8), 16) : 0,
        bundle_limit: opts.bundleLimit, bundle_size: opts.bundleSize,
      },
    });
    const session = new BackupSession(job.id, stanza, label, agent.identity, { prior: choice.prior, resumable: resumable?.kept ?? new Map() });
    run.session = session;
    const active = run;
    saver = new PartialSaver(() => ctx.store.savePartialManifest(stanza, partialManifest(active)),
      (err) => ctx.log.warn({ stanza, label, err: err.message }, 'cannot save the partial manifest (the backup goes on)'));
    session.onStored = (f) => { if (active.started) saver!.stored(f.repoSize); };
    ctx.sessions.open(session);
    const stopped = await followAgent(job, run, session, emit, say);
    agent.endJob(job.id);
    job = undefined;
    if (cancelled()) throw new StatusError(grpc.status.CANCELLED, 'the backup was cancelled by the operator');

    const needed = segmentsBetween(run.started!.wal_start, stopped.wal_stop, run.started!.cluster!.wal_segment_size);
    emit({ log: `waiting for ${needed.length} WAL segment(s) ${needed[0]}..${needed[needed.length - 1]} to reach the archive` });
    await waitForWal(ctx, stanza, needed, opts.archiveTimeout, (missing) => ctx.log.info({ stanza, label, wal: missing }, 'waiting for WAL segment'));

    const manifest = await complete(ctx, run, stopped);
    // retention runs inside this backup's lock, as pgBackRest runs expire at the end of backup
    const expire = await expireAfterBackup(ctx, stanza, retention, emit);
    const totals = manifestTotals(manifest);
    const seconds = (Date.now() - began) / 1000;
    const badPages = pageErrorFiles(manifest).map((f) => f.name);
    const { copied, resumed, referencedTally: referenced } = session;
    ctx.log.info({ stanza, label, type: run.type, prior: priorLabel ?? undefined, agent: agent.identity, files: manifest.files.length, bytes: totals.size,
      repoBytes: totals.repoSize, copiedFiles: copied.files, copiedBytes: copied.bytes, sentBytes: copied.repoBytes,
      referencedFiles: referenced.files, referencedBytes: referenced.bytes, resumedFiles: resumed.files, resumedBytes: resumed.bytes,
      delta: manifest.options.delta, pageErrorFiles: badPages.length, seconds, lsnStart: manifest.backup.lsnStart, lsnStop: manifest.backup.lsnStop }, 'backup complete');
    emit({ result: {
      label, bytes: totals.size, files: manifest.files.length, repo_bytes: totals.repoSize, agent: agent.identity,
      lsn_start: manifest.backup.lsnStart, lsn_stop: manifest.backup.lsnStop, seconds, type: run.type, prior: priorLabel ?? '',
      files_copied: copied.files, bytes_copied: copied.bytes, repo_bytes_copied: copied.repoBytes,
      files_referenced: referenced.files, bytes_referenced: referenced.bytes, files_resumed: resumed.files, bytes_resumed: resumed.bytes,
      delta: manifest.options.delta, page_error_files: badPages, expire,
    } });
  } catch (err) {
    ctx.metrics.backupFailed(stanza);
    if (job) job.cancel((err as Error).message);
    if (run) await afterFailure(ctx, run, say, saver);
    throw err;
  } finally {
    if (run?.session) ctx.sessions.close(run.session);
    release();
  }
}
