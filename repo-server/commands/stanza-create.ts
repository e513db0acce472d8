import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import type { PgDb } from '../../shared/info/pg-db';
import type { StanzaCreateResult } from '../../shared/generated/pgrepo/v1/StanzaCreateResult';
import type { ServerContext } from '../context';
import { chooseCluster, describeCluster } from './choose-cluster';

export async function stanzaCreate(ctx: ServerContext, stanza: string, host: string): Promise<StanzaCreateResult> {
  const release = ctx.locks.acquire(stanza, 'stanza-create');
  try {
    const { agent, cluster } = await chooseCluster(ctx, stanza, host);
    const db: PgDb = {
      id: 1,
      systemId: cluster.system_id,
      version: cluster.version,
      catalogVersion: cluster.catalog_version,
      controlVersion: cluster.control_version,
    };
    if (await ctx.store.exists(stanza)) {
      const existing = (await ctx.store.backupInfo(stanza)).current;
      if (existing.systemId !== db.systemId || existing.version !== db.version) {
        throw new StatusError(grpc.status.FAILED_PRECONDITION,
          `stanza '${stanza}' already exists for ${describeCluster(existing)}, but agent '${agent.identity}' reports ${describeCluster(cluster)}: use a new stanza name for this cluster`);
      }
      ctx.log.info({ stanza, agent: agent.identity }, 'stanza already exists and matches the cluster');
      return { cluster, agent: agent.identity, already_existed: true };
    }
    // archive.info first: a stanza with backup.info but no archive.info would accept no WAL
    await ctx.store.saveArchiveInfo(stanza, { current: db, history: [db] });
    await ctx.store.saveBackupInfo(stanza, { current: db, history: [db], backups: [] });
    ctx.log.info({ stanza, agent: agent.identity, systemId: db.systemId, version: db.version }, 'stanza created');
    return { cluster, agent: agent.identity, already_existed: false };
  } finally {
    release();
  }
}
