import type { Client } from 'pg';
import { UserError } from '../../shared/errors';
import { sleep } from '../../shared/sleep';
import { databaseClock } from './cluster';
import { archiveSettings, archiveSettingsProblem } from './archiving';

export interface BackupStart {
  lsn: string;
  walFile: string;
  timeline: number;
  timestamp: number;
}

export interface BackupStop {
  lsn: string;
  walFile: string;
  labelFile: string;
  tablespaceMap: string;
  timestamp: number;
}

/** Refuses clusters whose WAL could never reach the archive: the backup would never complete. */
export async function checkArchiving(client: Client): Promise<void> {
  const problem = archiveSettingsProblem(await archiveSettings(client));
  if (problem) throw problem;
}

/** Non-exclusive backup start (PostgreSQL 15+: pg_backup_start); the same session must stop it. */
export async function startBackup(client: Client, label: string, fast: boolean, versionNum: number): Promise<BackupStart> {
  const fn = versionNum >= 150000 ? 'pg_backup_start($1, $2)' : 'pg_start_backup($1, $2, false)';
  const { rows } = await client.query<{ lsn: string; wal: string; timeline: number; ts: string }>(
    `select lsn::text as lsn, pg_walfile_name(lsn) as wal, (select timeline_id from pg_control_checkpoint()) as timeline,
            extract(epoch from clock_timestamp())::float8 as ts from ${fn} as lsn`, [label, fast]);
  const row = rows[0];
  return { lsn: row.lsn, walFile: row.wal, timeline: Number(row.timeline), timestamp: Math.floor(Number(row.ts)) };
}

/** pg_backup_stop without waiting for the archive: the server checks the archive itself (archive-timeout). */
export async function stopBackup(client: Client, versionNum: number): Promise<BackupStop> {
  const fn = versionNum >= 150000 ? 'pg_backup_stop(false)' : 'pg_stop_backup(false, false)';
  const { rows } = await client.query<{ lsn: string; wal: string; labelfile: string; spcmapfile: string | null; ts: string }>(
    `select lsn::text as lsn, pg_walfile_name(lsn) as wal, labelfile, spcmapfile, extract(epoch from clock_timestamp())::float8 as ts from ${fn}`);
  const row = rows[0];
  return { lsn: row.lsn, walFile: row.wal, labelFile: row.labelfile, tablespaceMap: row.spcmapfile ?? '', timestamp: Math.floor(Number(row.ts)) };
}

/**
 * Files are chosen by size and mtime, which have one-second resolution: wait until the
 * database clock enters the next second, so no file changed after the copy starts can
 * carry the same mtime as one copied before it (pgBackRest's backupTime()). `listedAt` is the
 * second the wait began in: a listed file with a later mtime has a timestamp in the future.
 */
export async function waitForNextSecond(client: Client): Promise<{ listedAt: number; copyStart: number }> {
  const start = Math.floor(await databaseClock(client));
  for (let tries = 0; tries < 30; tries++) {
    const now = await databaseClock(client);
    if (Math.floor(now) > start) return { listedAt: start, copyStart: Math.floor(now) };
    await sleep(Math.max(10, Math.ceil((1 - (now % 1)) * 1000)));
  }
  throw new UserError('the database clock did not advance to the next second: is the clock of the database host working?');
}

export interface PageSettings {
  /** initdb -k (or pg_checksums --enable): pages carry checksums */
  dataChecksums: boolean;
  blockSize: number;
  /** blocks per relation segment file */
  blocksPerSegment: number;
}

export async function pageSettings(client: Client): Promise<PageSettings> {
  const { rows } = await client.query<{ checksums: string; block_size: string; segment_size: string }>(
    `select current_setting('data_checksums') as checksums, current_setting('block_size') as block_size,
            (select setting from pg_settings where name = 'segment_size') as segment_size`);
  const row = rows[0];
  return { dataChecksums: row.checksums === 'on', blockSize: Number(row.block_size), blocksPerSegment: Number(row.segment_size) };
}

export async function tablespaceNames(client: Client): Promise<Map<number, string>> {
  const { rows } = await client.query<{ oid: number; spcname: string }>('select oid::int8::int as oid, spcname from pg_tablespace');
  return new Map(rows.map((r) => [Number(r.oid), r.spcname]));
}

export async function databases(client: Client, versionNum: number): Promise<{ name: string; oid: number; last_system_oid: number }[]> {
  // datlastsysoid went away in PostgreSQL 15; every release since uses FirstNormalObjectId - 1
  const lastSys = versionNum >= 150000 ? '16383' : 'datlastsysoid::int8';
  const { rows } = await client.query<{ name: string; oid: string; last: string }>(`select datname as name, oid::int8 as oid, ${lastSys} as last from pg_database`);
  return rows.map((r) => ({ name: r.name, oid: Number(r.oid), last_system_oid: Number(r.last) }));
}
