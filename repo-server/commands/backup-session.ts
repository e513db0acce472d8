import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import { validateManifestPath } from '../../shared/validate';
import type { ManifestFile } from '../../shared/info/manifest';
import type { FileUpload__Output } from '../../shared/generated/pgrepo/v1/FileUpload';
import type { PutFileResult } from '../../shared/generated/pgrepo/v1/PutFileResult';
import type { ServerContext } from '../context';
import type { Caller } from '../service/guard';
import { backupFileKey } from '../repo/layout';
import { receiveIntoTemp } from './receive-file';

/** A backup in progress: where the agent's uploads go and what they added to the manifest. */
export class BackupSession {
  readonly files: ManifestFile[] = [];
  constructor(readonly jobId: string, readonly stanza: string, readonly label: string, readonly agentIdentity: string) {}
}

export class BackupSessions {
  private readonly sessions = new Map<string, BackupSession>();

  open(session: BackupSession): void {
    this.sessions.set(session.jobId, session);
  }

  close(session: BackupSession): void {
    this.sessions.delete(session.jobId);
  }

  /** Uploads are accepted only from the agent the backup job was given to. */
  forUpload(jobId: string, caller: Caller): BackupSession {
    const session = this.sessions.get(jobId);
    if (!session) throw new StatusError(grpc.status.NOT_FOUND, `no backup in progress has job id '${jobId}' (it may have failed or been cancelled)`);
    if (session.agentIdentity !== caller.identity) {
      throw new StatusError(grpc.status.PERMISSION_DENIED, `backup job '${jobId}' belongs to agent '${session.agentIdentity}', not '${caller.identity}'`);
    }
    return session;
  }
}

export async function putBackupFile(ctx: ServerContext, call: AsyncIterable<FileUpload__Output>, caller: Caller): Promise<PutFileResult> {
  const messages = call[Symbol.asyncIterator]();
  const first = await messages.next();
  const header = first.done ? undefined : first.value.header;
  if (!header) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'PutBackupFile: the first message must be the header');
  const session = ctx.sessions.forUpload(header.job_id, caller);
  const name = validateManifestPath(header.name);
  const temp = await ctx.storage.openTemp(backupFileKey(session.stanza, session.label, name, header.compress_type));
  try {
    const trailer = await receiveIntoTemp(messages, temp, `backup file ${name}`);
    await temp.commit();
    ctx.metrics.received(session.stanza, 'backup', trailer.repo_size);
    session.files.push({
      name,
      size: trailer.size,
      timestamp: header.timestamp,
      mode: header.mode,
      user: header.user,
      group: header.group,
      checksum: trailer.checksum,
      repoSize: trailer.repo_size,
      repoChecksum: trailer.repo_checksum,
      compressType: header.compress_type,
    });
    return { repo_size: trailer.repo_size };
  } finally {
    await temp.discard();
  }
}
