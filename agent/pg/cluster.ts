import fs from 'node:fs';
import { Client } from 'pg';
import { UserError } from '../../shared/errors';
import type { ClusterIdentity } from '../../shared/generated/pgrepo/v1/ClusterIdentity';

export interface PgConnectionOptions {
  socketPath: string;
  port: number;
  user: string;
  database: string;
}

/** A libpq-style connection over the unix socket; errors name where it tried to connect. */
export async function connectPg(opts: PgConnectionOptions, applicationName = 'pgrepo-agent'): Promise<Client> {
  const client = new Client({ host: opts.socketPath, port: opts.port, user: opts.user, database: opts.database, application_name: applicationName });
  // a backend that dies mid-backup emits 'error' on the client; without a listener that would kill the agent
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    throw new UserError(`cannot connect to PostgreSQL at ${opts.socketPath} port ${opts.port} as ${opts.user}: ${(err as Error).message} (is it running? check --pg-socket-path, --pg-port, --pg-user)`, 'PG_UNREACHABLE');
  }
  return client;
}

export async function identifyCluster(client: Client, pgPath: string): Promise<ClusterIdentity> {
  const { rows } = await client.query<{
    system_id: string; control_version: number; catalog_version: number; version_num: string;
    data_directory: string; in_recovery: boolean; wal_segment_size: string;
  }>(`select s.system_identifier::text as system_id, s.pg_control_version as control_version, s.catalog_version_no as catalog_version,
            current_setting('server_version_num') as version_num, current_setting('data_directory') as data_directory,
            pg_is_in_recovery() as in_recovery,
            (select setting from pg_settings where name = 'wal_segment_size') as wal_segment_size
       from pg_control_system() s`);
  const row = rows[0];
  const versionNum = Number(row.version_num);
  // a pg-path that is not this cluster's data directory would back up (or check) the wrong files
  if (!sameDirectory(row.data_directory, pgPath)) {
    throw new UserError(`the PostgreSQL this agent reaches has data_directory ${row.data_directory}, but --pg-path is ${pgPath}: point them at the same cluster`, 'PG_PATH_MISMATCH');
  }
  return {
    system_id: row.system_id,
    version: String(Math.floor(versionNum / 10000)),
    version_num: versionNum,
    catalog_version: row.catalog_version,
    control_version: row.control_version,
    data_directory: row.data_directory,
    in_recovery: row.in_recovery,
    wal_segment_size: Number(row.wal_segment_size),
  };
}

function sameDirectory(a: string, b: string): boolean {
  try {
    return fs.realpathSync(a) === fs.realpathSync(b);
  } catch {
    return a === b;
  }
}

export async function databaseClock(client: Client): Promise<number> {
  const { rows } = await client.query<{ now: string }>('select extract(epoch from clock_timestamp())::float8 as now');
  return Number(rows[0].now);
}
