import { UserError } from '../shared/errors';
import type { CheckJob__Output } from '../shared/generated/pgrepo/v1/CheckJob';
import type { JobReply } from '../shared/generated/pgrepo/v1/JobReply';
import type { AgentContext } from './context';
import { connectPg, identifyCluster } from './pg/cluster';
import { archiverStatus, archiveSettings, archiveSettingsProblem, forceArchive } from './pg/archiving';

type Reply = (reply: Omit<JobReply, 'job_id'>) => void;

/**
 * The host side of repoctl check: this agent reaches its PostgreSQL, the cluster is the stanza's,
 * archiving is configured and (with switch_wal) a segment is handed to archive_command now.
 * The server then waits for that segment to arrive.
 */
export async function runCheckJob(ctx: AgentContext, job: CheckJob__Output, reply: Reply): Promise<void> {
  const client = await connectPg(ctx.pg, 'pgrepo-agent check');
  try {
    const cluster = await identifyCluster(client, ctx.pgPath);
    if (cluster.system_id !== job.system_id) {
      throw new UserError(`this cluster has system identifier ${cluster.system_id}, but stanza '${job.stanza}' is for ${job.system_id}: is the agent's --stanza or --pg-path wrong?`, 'CLUSTER_MISMATCH');
    }
    const settings = await archiveSettings(client);
    let switched = { segment: '', restorePoint: '' };
    if (job.switch_wal) {
      const problem = archiveSettingsProblem(settings);
      if (problem) throw problem;
      if (!/pgrepo-archive\S*\s+push\b|archive-push/.test(settings.command)) {
        throw new UserError(`archive_command '${settings.command}' does not run pgrepo-archive push: set it to '${ctx.archivePushCommand}' and reload PostgreSQL`, 'ARCHIVE_COMMAND');
      }
      if (cluster.in_recovery) throw new UserError('this cluster is a standby: WAL can only be switched on the primary; run check with --host naming the primary\'s agent', 'STANDBY');
      switched = await forceArchive(client);
      ctx.log.info({ segment: switched.segment, restorePoint: switched.restorePoint }, 'check: switched WAL for the archive check');
    }
    reply({ check_done: {
      cluster, archive_mode: settings.mode, archive_command: settings.command,
      wal_switched: switched.segment, restore_point_lsn: switched.restorePoint, archiver: await archiverStatus(client),
    } });
  } finally {
    await client.end().catch(() => undefined);
  }
}
