import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import type { CheckRequest__Output } from '../../shared/generated/pgrepo/v1/CheckRequest';
import type { CheckDone__Output } from '../../shared/generated/pgrepo/v1/CheckDone';
import type { ArchiverStatus__Output } from '../../shared/generated/pgrepo/v1/ArchiverStatus';
import { archiveId } from '../../shared/info/archive-info';
import type { ServerContext } from '../context';
import type { AttachedAgent } from '../agents';
import { chooseCluster, describeCluster } from './choose-cluster';
import { findArchivedWal, waitForWal } from './archive';
import type { Emit } from './backup';

async function askAgent(ctx: ServerContext, agent: AttachedAgent, stanza: string, systemId: string, switchWal: boolean): Promise<CheckDone__Output> {
  const reply = await ctx.agents.request(agent, { check: { stanza, system_id: systemId, switch_wal: switchWal } }, 'check its cluster', 30_000);
  if (!reply.check_done) throw new StatusError(grpc.status.INTERNAL, `agent '${agent.identity}' answered check with ${reply.kind}`);
  return reply.check_done;
}

function describeArchiver(a: ArchiverStatus__Output | null): string {
  if (!a) return '';
  if (Number(a.failed_count) === 0) return `PostgreSQL's archiver reports no failures (last archived: ${a.last_archived_wal || 'none'})`;
  const when = Number(a.last_failed_time) ? ` at ${new Date(Number(a.last_failed_time) * 1000).toISOString()}` : '';
  return `PostgreSQL's archiver has failed ${a.failed_count} time(s), last on ${a.last_failed_wal}${when} (last archived: ${a.last_archived_wal || 'none'})`;
}

/**
 * repoctl check (pgBackRest's check): the stanza's info files agree, an agent reaches a primary
 * that is the stanza's cluster, archiving is configured, and a WAL segment switched now reaches
 * the repository within archive-timeout.
 */
export async function runCheck(ctx: ServerContext, req: CheckRequest__Output, emit: Emit): Promise<void> {
  const began = Date.now();
  const stanza = req.stanza;
  const timeout = req.archive_timeout || ctx.archiveTimeoutSeconds;
  const backupInfo = await ctx.store.backupInfo(stanza);
  const archiveInfo = await ctx.store.archiveInfo(stanza);
  const db = backupInfo.current;
  if (archiveInfo.current.systemId !== db.systemId || archiveInfo.current.version !== db.version || archiveInfo.current.id !== db.id) {
    throw new StatusError(grpc.status.FAILED_PRECONDITION,
      `stanza '${stanza}' is damaged: backup.info is for ${describeCluster(db)} (db-id ${db.id}) but archive.info for ${describeCluster(archiveInfo.current)} (db-id ${archiveInfo.current.id})`);
  }
  const { agent, cluster } = await chooseCluster(ctx, stanza, req.host);
  if (cluster.system_id !== db.systemId || cluster.version !== db.version) {
    throw new StatusError(grpc.status.FAILED_PRECONDITION,
      `the cluster behind agent '${agent.identity}' (${describeCluster(cluster)}) is not stanza '${stanza}''s (${describeCluster(db)}): check the agent's --stanza and --pg-path`);
  }
  emit({ log: `agent '${agent.identity}' reached PostgreSQL ${cluster.version} (system identifier ${cluster.system_id}), which matches stanza '${stanza}'` });

  const done = await askAgent(ctx, agent, stanza, db.systemId, true);
  emit({ log: `archive_mode = ${done.archive_mode}, archive_command = '${done.archive_command}'` });
  emit({ log: `created a restore point at ${done.restore_point_lsn} and switched WAL: waiting up to ${timeout} s for segment ${done.wal_switched} to reach the archive` });
  try {
    await waitForWal(ctx, stanza, [done.wal_switched], timeout, () => undefined);
  } catch (err) {
    if (!(err instanceof StatusError) || err.status !== grpc.status.DEADLINE_EXCEEDED) throw err;
    const now = await askAgent(ctx, agent, stanza, db.systemId, false).catch(() => null);
    throw new StatusError(grpc.status.DEADLINE_EXCEEDED,
      `WAL segment ${done.wal_switched} did not reach the archive within archive-timeout (${timeout} s), so archiving does not work: ${describeArchiver(now?.archiver ?? done.archiver)}; archive_command is '${(now ?? done).archive_command}'. Check it, PostgreSQL's log and the agent's log`);
  }
  const stored = await findArchivedWal(ctx, stanza, archiveId(archiveInfo.current), done.wal_switched);
  const seconds = (Date.now() - began) / 1000;
  ctx.log.info({ stanza, agent: agent.identity, wal: done.wal_switched, seconds }, 'check passed');
  emit({ result: {
    agent: agent.identity, seconds,
    check: {
      agent: agent.identity, system_id: cluster.system_id, version: cluster.version, archive_command: done.archive_command,
      wal_segment: done.wal_switched, archived_to: stored?.key ?? '',
    },
  } });
}
