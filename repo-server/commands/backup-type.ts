import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import type { BackupInfo, BackupType } from '../../shared/info/backup-info';
import type { Manifest } from '../../shared/info/manifest';
import type { ServerContext } from '../context';

export interface TypeChoice {
  type: BackupType;
  /** the manifest of the backup a diff/incr builds on */
  prior: Manifest | null;
  /** why this type, for the log and the operator */
  notes: string[];
  /** a type that was asked for and could not be honoured */
  warnings: string[];
}

const TYPES: readonly string[] = ['full', 'diff', 'incr'];

/**
 * pgBackRest's backupBuildIncrPrior: a diff builds on the latest full, an incr on the latest
 * backup of any type, both only on backups of the stanza's current cluster. With no type asked
 * for, incr when a full exists, else full. No usable prior turns a diff/incr into a full, and says why.
 */
export async function chooseBackupType(ctx: ServerContext, stanza: string, info: BackupInfo, requested: string): Promise<TypeChoice> {
  if (requested && !TYPES.includes(requested)) {
    throw new StatusError(grpc.status.INVALID_ARGUMENT, `backup --type must be full, diff or incr, not '${requested}'`);
  }
  const current = info.backups.filter((b) => b.dbId === info.current.id);
  const notes: string[] = [];
  let type = requested as BackupType;
  if (!requested) {
    const full = current.filter((b) => b.type === 'full').pop();
    type = full ? 'incr' : 'full';
    notes.push(full ? `no --type given: incr backup, because full backup ${full.label} exists` : 'no --type given and no full backup exists: full backup');
  }
  if (type === 'full') return { type, prior: null, notes, warnings: [] };

  const candidate = current.filter((b) => type === 'incr' || b.type === 'full').pop();
  if (!candidate) {
    const others = info.backups.length - current.length;
    const why = others > 0 ? ` (the ${others} backup(s) in the stanza are of an earlier cluster)` : '';
    return { type: 'full', prior: null, notes, warnings: [`no prior backup exists${why}, ${type} backup has been changed to full`] };
  }
  const prior = await ctx.store.manifest(stanza, candidate.label);
  if (prior.db.systemId !== info.current.systemId || prior.db.version !== info.current.version) {
    return { type: 'full', prior: null, notes, warnings: [
      `prior backup ${candidate.label} is of system identifier ${prior.db.systemId}, PostgreSQL ${prior.db.version}, but the stanza's cluster is ` +
      `${info.current.systemId}, PostgreSQL ${info.current.version}: ${type} backup has been changed to full`,
    ] };
  }
  notes.push(`${type} backup on prior backup ${candidate.label}`);
  return { type, prior, notes, warnings: [] };
}
