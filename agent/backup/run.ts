import fs from 'node:fs';
import { Readable } from 'node:stream';
import type { Client } from 'pg';
import { UserError } from '../../shared/errors';
import type { BackupJob__Output } from '../../shared/generated/pgrepo/v1/BackupJob';
import type { JobReply } from '../../shared/generated/pgrepo/v1/JobReply';
import type { FileUpload } from '../../shared/generated/pgrepo/v1/FileUpload';
import type { PutFileResult__Output } from '../../shared/generated/pgrepo/v1/PutFileResult';
import type { AgentContext } from '../context';
import { connectPg, identifyCluster } from '../pg/cluster';
import { checkArchiving, databases, startBackup, stopBackup, tablespaceNames, waitForNextSecond } from '../pg/backup-protocol';
import { uploadFile } from '../transfer/upload';
import { forEachLimited, ProgressReporter } from '../../shared/progress';
import { listDataDirectory, type ListedFile } from './file-list';
import { groupName, userName } from './owners';

type Reply = (reply: Omit<JobReply, 'job_id'>) => void;

interface FileToSend {
  name: string;
  mtime: number;
  mode: string;
  uid: number;
  gid: number;
  open: () => Readable;
}

async function sendFile(ctx: AgentContext, job: BackupJob__Output, jobId: string, file: FileToSend): Promise<number> {
  const header: FileUpload = {
    header: {
      job_id: jobId, name: file.name, timestamp: file.mtime, mode: file.mode,
      user: userName(file.uid), group: groupName(file.gid), compress_type: job.compress_type,
    },
  };
  const { checksums } = await uploadFile<FileUpload, PutFileResult__Output>(
    (cb) => ctx.client.PutBackupFile(cb), header, file.open(), job.compress_type, job.compress_level,
    (data) => ({ data }),
    (c) => ({ trailer: { size: c.original.size, checksum: c.original.checksum, repo_size: c.stored.size, repo_checksum: c.stored.checksum } }),
  );
  return checksums.original.size;
}

function fromDisk(f: ListedFile): FileToSend {
  return { name: f.name, mtime: f.mtime, mode: f.mode, uid: f.uid, gid: f.gid, open: () => fs.createReadStream(f.absPath, { highWaterMark: 256 * 1024 }) };
}

function fromMemory(name: string, text: string, like: { uid: number; gid: number }, mtime: number): FileToSend {
  return { name, mtime, mode: '0600', uid: like.uid, gid: like.gid, open: () => Readable.from([Buffer.from(text)]) };
}

/**
 * The host side of a full backup, between pg_backup_start and pg_backup_stop on one held
 * connection: list PGDATA, wait for the next second, stream every file, then hand over
 * backup_label and tablespace_map as files.
 */
export async function runBackupJob(ctx: AgentContext, jobId: string, job: BackupJob__Output, reply: Reply, cancelled: () => boolean): Promise<void> {
  const client: Client = await connectPg(ctx.pg, 'pgrepo-agent backup');
  try {
    const cluster = await identifyCluster(client, ctx.pgPath);
    if (cluster.system_id !== job.system_id) {
      throw new UserError(`this cluster has system identifier ${cluster.system_id}, but stanza '${job.stanza}' holds backups of ${job.system_id}: refusing to back it up into this stanza`, 'CLUSTER_MISMATCH');
    }
    if (cluster.in_recovery) throw new UserError('this cluster is a standby; backups are taken from the primary', 'STANDBY');
    await checkArchiving(client);
    const start = await startBackup(client, `pgrepo backup ${job.label}`, job.start_fast, cluster.version_num!);
    ctx.log.info({ label: job.label, lsn: start.lsn, wal: start.walFile }, 'backup started on PostgreSQL');

    const list = await listDataDirectory(ctx.pgPath, { warn: (message) => ctx.log.warn(message) });
    const names = await tablespaceNames(client);
    const copyStart = await waitForNextSecond(client);
    const bytesTotal = list.files.reduce((n, f) => n + f.size, 0);
    const own = { uid: list.paths[0]?.uid ?? process.getuid?.() ?? 0, gid: list.paths[0]?.gid ?? process.getgid?.() ?? 0 };
    reply({ backup_started: {
      lsn_start: start.lsn, wal_start: start.walFile, timeline: start.timeline,
      timestamp_start: start.timestamp, timestamp_copy_start: copyStart,
      paths: list.paths.map((p) => ({ name: p.name, mode: p.mode, user: userName(p.uid), group: groupName(p.gid) })),
      links: list.links.map((l) => ({
        name: l.name, destination: l.destination, user: userName(l.uid), group: groupName(l.gid),
        tablespace_oid: l.tablespaceOid ?? 0, tablespace_name: l.tablespaceOid ? names.get(l.tablespaceOid) ?? '' : '',
      })),
      databases: await databases(client, cluster.version_num!),
      bytes_total: bytesTotal, files_total: list.files.length + 2, cluster,
    } });

    const progress = new ProgressReporter(bytesTotal, list.files.length + 2, (p) => reply({ progress: p }));
    await forEachLimited(list.files, job.process_max || 1, async (file) => {
      try {
        progress.add(await sendFile(ctx, job, jobId, fromDisk(file)));
      } catch (err) {
        // PostgreSQL drops relations while a backup runs; a file gone since the listing is not needed (WAL replays the drop)
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        progress.add(0);
      }
    }, cancelled);
    if (cancelled()) throw new UserError('the backup was cancelled');

    const stop = await stopBackup(client, cluster.version_num!);
    await sendFile(ctx, job, jobId, fromMemory('pg_data/backup_label', stop.labelFile, own, stop.timestamp));
    if (stop.tablespaceMap) await sendFile(ctx, job, jobId, fromMemory('pg_data/tablespace_map', stop.tablespaceMap, own, stop.timestamp));
    progress.flush();
    ctx.log.info({ label: job.label, lsn: stop.lsn, wal: stop.walFile, files: list.files.length }, 'backup stopped on PostgreSQL');
    reply({ backup_stopped: { lsn_stop: stop.lsn, wal_stop: stop.walFile, timestamp_stop: stop.timestamp } });
  } finally {
    // closing the session ends a backup that did not reach pg_backup_stop (non-exclusive mode)
    await client.end().catch(() => undefined);
  }
}
