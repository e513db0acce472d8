/**
 * What a restore request means, decided on the server before any agent touches a directory: which backup
 * (pgBackRest's select.c.inc), whether the recovery options fit, and which databases --db-include leaves out.
 */
import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import { parseLsn } from '../../shared/wal';
import { validateBackupLabel } from '../../shared/validate';
import { parseTargetTime, type ValidRecoveryTarget } from '../../shared/restore/recovery-target';
import type { BackupInfoEntry } from '../../shared/info/backup-info';
import type { Manifest } from '../../shared/info/manifest';

export interface ChosenBackup {
  label: string;
  /** why this one, for the operator */
  reason: string;
}

const invalid = (message: string) => new StatusError(grpc.status.INVALID_ARGUMENT, message);

const iso = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '+00');

/**
 * --set when given (must be a backup of the stanza); else for --type time the newest backup that ended before the
 * target, for --type lsn the newest that stopped at or before it; else the newest. `backups` is sorted by label.
 */
export function chooseBackup(stanza: string, backups: BackupInfoEntry[], set: string, recovery: ValidRecoveryTarget): ChosenBackup {
  if (backups.length === 0) throw new StatusError(grpc.status.NOT_FOUND, `stanza '${stanza}' has no backups to restore: run 'repoctl backup --stanza ${stanza}' first`);
  if (set !== '' && set !== 'latest') {
    validateBackupLabel(set);
    if (!backups.some((b) => b.label === set)) throw new StatusError(grpc.status.NOT_FOUND, `backup set '${set}' is not a backup of stanza '${stanza}' (see repoctl info --stanza ${stanza})`);
    return { label: set, reason: 'given with --set' };
  }
  const newestFirst = [...backups].reverse();
  if (recovery.type === 'time') {
    const target = parseTargetTime(recovery.target);
    if (target === undefined) {
      throw invalid(`cannot choose a backup for --target '${recovery.target}': write the time as YYYY-MM-DD HH:MM:SS with optional fraction and zone (+HH, +HH:MM or Z; without a zone it is the server's local time), or name the backup with --set`);
    }
    const found = newestFirst.find((b) => b.timestampStop * 1000 < target);
    if (!found) throw invalid(`no backup of stanza '${stanza}' ended before ${recovery.target} (the oldest ended at ${iso(backups[0].timestampStop)}): a time target must be after the end of the backup it starts from`);
    return { label: found.label, reason: `the newest backup that ended before the target time (it ended at ${iso(found.timestampStop)})` };
  }
  if (recovery.type === 'lsn') {
    const target = parseLsn(recovery.target);
    const found = newestFirst.find((b) => b.lsnStop !== '' && parseLsn(b.lsnStop) <= target);
    if (!found) throw invalid(`no backup of stanza '${stanza}' stopped at or before LSN ${recovery.target}: an LSN target must be after the end of the backup it starts from`);
    return { label: found.label, reason: `the newest backup that stopped at or before the target LSN (at ${found.lsnStop})` };
  }
  return { label: newestFirst[0].label, reason: 'the newest backup' };
}

// postgres, template0 and template1 are always restored, and so is anything PostgreSQL made at initdb
const SYSTEM_DATABASES = ['postgres', 'template0', 'template1'];
const FIRST_NORMAL_OID = 16384;
const DB_DIR_RE = /^(?:pg_data\/base|pg_tblspc\/\d+\/[^/]+)\/(\d+)\/PG_VERSION$/;

export interface ZeroedDatabases {
  oids: number[];
  /** "name (oid)" for the operator */
  names: string[];
}

/**
 * --db-include (pgBackRest's restoreSelectiveExpression): the user databases not named are restored as zeroed
 * files. Names or oids; a database the backup lacks, or a system database, is refused.
 */
export function zeroedDatabases(m: Manifest, include: string[]): ZeroedDatabases {
  if (include.length === 0) return { oids: [], names: [] };
  const isSystem = (name: string, oid: number) => SYSTEM_DATABASES.includes(name) || oid < FIRST_NORMAL_OID;
  const dbs = new Map(m.databases.map((d) => [d.oid, d.name]));
  // a database created while the backup ran has files but no [db] entry
  for (const f of m.files) {
    const dir = DB_DIR_RE.exec(f.name);
    if (dir && !dbs.has(Number(dir[1]))) dbs.set(Number(dir[1]), '');
  }
  const included = new Set<number>();
  for (const wanted of include) {
    const match = [...dbs].find(([oid, name]) => name === wanted || String(oid) === wanted);
    if (!match) {
      const have = [...dbs].filter(([oid, name]) => !isSystem(name, oid)).map(([oid, name]) => `${name || '?'} (${oid})`);
      throw invalid(`--db-include ${wanted}: backup ${m.backup.label} has no such database (its user databases: ${have.join(', ') || 'none'})`);
    }
    if (isSystem(match[1], match[0])) throw invalid(`--db-include ${wanted}: system databases (${SYSTEM_DATABASES.join(', ')}) are always restored; name the user databases to restore with them`);
    included.add(match[0]);
  }
  const zero = [...dbs].filter(([oid, name]) => !isSystem(name, oid) && !included.has(oid)).sort((a, b) => a[0] - b[0]);
  return { oids: zero.map(([oid]) => oid), names: zero.map(([oid, name]) => `${name || '?'} (${oid})`) };
}
