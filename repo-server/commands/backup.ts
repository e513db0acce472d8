import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import { segmentsBetween } from '../../shared/wal';
import { manifestTotals, type Manifest } from '../../shared/info/manifest';
import type { BackupInfoEntry } from '../../shared/info/backup-info';
import type { BackupRequest__Output } from '../../shared/generated/pgrepo/v1/BackupRequest';
import type { BackupStarted__Output } from '../../shared/generated/pgrepo/v1/BackupStarted';
import type { BackupStopped__Output } from '../../shared/generated/pgrepo/v1/BackupStopped';
import type { OperationEvent } from '../../shared/generated/pgrepo/v1/OperationEvent';
import { defaultCompressLevel, parseCompressType } from '../../shared/stream/compress';
import type { ServerContext } from '../context';
import type { AgentJob } from '../agents';
import { backupDirKey, latestKey } from '../repo/layout';
import { chooseCluster, describeCluster } from './choose-cluster';
import { BackupSession } from './backup-session';
import { waitForWal } from './archive';
import { newFullLabel } from './label';
import { expireAfterBackup, retentionFor } from './expire';

export type Emit = (event: OperationEvent) => void;

interface BackupOptions {
  compressType: string;
  compressLevel: number;
  processMax: number;
  startFast: boolean;
  archiveTimeout: number;
}

function backupOptions(ctx: ServerContext, req: BackupRequest__Output): BackupOptions {
  if (req.type && req.type !== 'full') {
    throw new StatusError(grpc.status.UNIMPLEMENTED, `backup --type ${req.type} is not available yet: only full backups are`);
  }
  const compressType = parseCompressType(req.compress_type || 'gz');
  return {
    compressType,
    compressLevel: req.compress_level >= 0 ? req.compress_level : defaultCompressLevel(compressType),
    processMax: Math.max(1, req.process_max || 1),
    startFast: req.start_fast,
    archiveTimeout: req.archive_timeout || ctx.archiveTimeoutSeconds,
  };
}

/** Replies until the agent reports the backup stopped, relaying progress to the operator. */
async function followAgent(job: AgentJob, emit: Emit): Promise<{ started: BackupStarted__Output; stopped: BackupStopped__Output }> {
  let started: BackupStarted__Output | undefined;
  for (;;) {
    const reply = await job.next();
    if (reply.backup_started) {
      started = reply.backup_started;
      emit({ log: `backup started at LSN ${started.lsn_start} (WAL ${started.wal_start}); ${started.files_total} files, ${started.bytes_total} bytes to copy` });
    } else if (reply.progress) {
      emit({ progress: reply.progress });
    } else if (reply.backup_stopped) {
      if (!started) throw new StatusError(grpc.status.INTERNAL, 'the agent stopped a backup it never reported started');
      return { started, stopped: reply.backup_stopped };
    }
  }
}

function buildManifest(label: string, opts: BackupOptions, db: Manifest['db'], session: BackupSession,
  started: BackupStarted__Output, stopped: BackupStopped__Output): Manifest {
  const cluster = started.cluster!;
  const tablespaces = started.links.filter((l) => l.tablespace_oid > 0);
  return {
    backup: {
      label, type: 'full', prior: null, reference: [],
      timestampStart: started.timestamp_start, timestampCopyStart: started.timestamp_copy_start, timestampStop: stopped.timestamp_stop,
      lsnStart: started.lsn_start, lsnStop: stopped.lsn_stop, archiveStart: started.wal_start, archiveStop: stopped.wal_stop,
    },
    db,
    options: {
      compressType: opts.compressType, compressLevel: opts.compressLevel, processMax: opts.processMax,
      online: true, archiveCheck: true, delta: false, startFast: opts.startFast,
    },
    targets: [
      { name: 'pg_data', path: cluster.data_directory, type: 'path' },
      ...tablespaces.map((t) => ({
        name: `pg_tblspc/${t.tablespace_oid}`, path: t.destination, type: 'link' as const,
        tablespaceId: t.tablespace_oid, tablespaceName: t.tablespace_name,
      })),
    ],
    databases: started.databases.map((d) => ({ name: d.name, oid: d.oid, lastSystemOid: d.last_system_oid })),
    paths: started.paths.map((p) => ({ name: p.name, mode: p.mode, user: p.user, group: p.group })),
    links: started.links.map((l) => ({ name: l.name, destination: l.destination, user: l.user, group: l.group })),
    files: [...session.files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
  };
}

function infoEntry(m: Manifest): BackupInfoEntry {
  const totals = manifestTotals(m);
  return {
    label: m.backup.label, type: m.backup.type, prior: m.backup.prior, reference: m.backup.reference,
    timestampStart: m.backup.timestampStart, timestampStop: m.backup.timestampStop,
    lsnStart: m.backup.lsnStart, lsnStop: m.backup.lsnStop, archiveStart: m.backup.archiveStart, archiveStop: m.backup.archiveStop,
    size: totals.size, sizeDelta: totals.sizeDelta, repoSize: totals.repoSize, repoSizeDelta: totals.repoSizeDelta,
    dbId: m.db.id, compressType: m.options.compressType, online: true, archiveCheck: true,
  };
}

/**
 * repoctl backup: the agent copies PGDATA between pg_backup_start and pg_backup_stop; the
 * backup becomes visible (manifest, backup.info, latest) only after every WAL segment from
 * its start to its stop is in the archive.
 */
export async function runBackup(ctx: ServerContext, req: BackupRequest__Output, emit: Emit, cancelled: () => boolean): Promise<void> {
  const began = Date.now();
  const stanza = req.stanza;
  const opts = backupOptions(ctx, req);
  const retention = retentionFor(ctx, stanza, req.retention);
  const release = ctx.locks.acquire(stanza, 'backup');
  let session: BackupSession | undefined;
  let job: AgentJob | undefined;
  try {
    const backupInfo = await ctx.store.backupInfo(stanza);
    const { agent, cluster } = await chooseCluster(ctx, stanza, req.host);
    if (cluster.system_id !== backupInfo.current.systemId || cluster.version !== backupInfo.current.version) {
      throw new StatusError(grpc.status.FAILED_PRECONDITION,
        `the cluster behind agent '${agent.identity}' (${describeCluster(cluster)}) does not match stanza '${stanza}' (${describeCluster(backupInfo.current)}): refusing to back it up into this stanza`);
    }
    const label = newFullLabel(backupInfo.backups.map((b) => b.label), new Date());
    emit({ log: `full backup ${label} of stanza '${stanza}' from agent '${agent.identity}'` });
    ctx.log.info({ stanza, label, agent: agent.identity }, 'backup started');

    job = agent.startJob({
      backup: {
        stanza, label, type: 'full', system_id: backupInfo.current.systemId,
        compress_type: opts.compressType, compress_level: opts.compressLevel, process_max: opts.processMax, start_fast: opts.startFast,
      },
    });
    session = new BackupSession(job.id, stanza, label, agent.identity);
    ctx.sessions.open(session);
    const { started, stopped } = await followAgent(job, emit);
    agent.endJob(job.id);
    job = undefined;
    if (cancelled()) throw new StatusError(grpc.status.CANCELLED, 'the backup was cancelled by the operator');

    const needed = segmentsBetween(started.wal_start, stopped.wal_stop, started.cluster!.wal_segment_size);
    emit({ log: `waiting for ${needed.length} WAL segment(s) ${needed[0]}..${needed[needed.length - 1]} to reach the archive` });
    await waitForWal(ctx, stanza, needed, opts.archiveTimeout, (missing) => ctx.log.info({ stanza, label, wal: missing }, 'waiting for WAL segment'));

    const manifest = buildManifest(label, opts, backupInfo.current, session, started, stopped);
    await ctx.store.saveManifest(stanza, manifest);
    const latestInfo = await ctx.store.backupInfo(stanza);
    latestInfo.backups = [...latestInfo.backups, infoEntry(manifest)].sort((a, b) => (a.label < b.label ? -1 : 1));
    await ctx.store.saveBackupInfo(stanza, latestInfo);
    await ctx.storage.symlink(latestKey(stanza), label);
    // retention runs inside this backup's lock, as pgBackRest runs expire at the end of backup
    const expire = await expireAfterBackup(ctx, stanza, retention, emit);

    const totals = manifestTotals(manifest);
    const seconds = (Date.now() - began) / 1000;
    ctx.log.info({ stanza, label, type: manifest.backup.type, agent: agent.identity, files: manifest.files.length, bytes: totals.size, repoBytes: totals.repoSize, seconds,
      lsnStart: started.lsn_start, lsnStop: stopped.lsn_stop }, 'backup complete');
    emit({ result: {
      label, bytes: totals.size, files: manifest.files.length, repo_bytes: totals.repoSize, agent: agent.identity,
      lsn_start: started.lsn_start, lsn_stop: stopped.lsn_stop, seconds, expire,
    } });
  } catch (err) {
    ctx.metrics.backupFailed(stanza);
    if (job) job.cancel((err as Error).message);
    if (session) {
      // an incomplete backup is never left looking like one; resume (later) will keep it instead
      await ctx.storage.remove(backupDirKey(stanza, session.label), true).catch(() => undefined);
      ctx.log.warn({ stanza, label: session.label, err: (err as Error).message }, 'backup failed; its partial files were removed');
    }
    throw err;
  } finally {
    if (session) ctx.sessions.close(session);
    release();
  }
}
