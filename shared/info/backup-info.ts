/** backup.info in pgBackRest's layout (src/info/infoBackup.c, src/info/infoPg.c). */
import { INFO_FORMAT, InfoFileError, InfoReader, newRecord, renderInfo, type InfoSections } from './ini';
import { historyProblem, readPgDb, renderPgDb, sortHistory, systemIdJson, type PgDb } from './pg-db';

export type { PgDb } from './pg-db';

export type BackupType = 'full' | 'diff' | 'incr';

export interface BackupInfoEntry {
  label: string;
  type: BackupType;
  prior: string | null;
  /** labels of the backups holding data this one points at */
  reference: string[];
  /** unix seconds */
  timestampStart: number;
  timestampStop: number;
  /** '' for an offline backup (no WAL position) */
  lsnStart: string;
  lsnStop: string;
  archiveStart: string;
  archiveStop: string;
  size: number;
  sizeDelta: number;
  repoSize: number;
  repoSizeDelta: number;
  dbId: number;
  compressType: string;
  online: boolean;
  archiveCheck: boolean;
  error?: boolean;
  /** the version that made the backup; when absent, the version writing the file */
  backrestVersion?: string;
}

export interface BackupInfo {
  current: PgDb;
  history: PgDb[];
  /** sorted by label, which is also the order they were taken in */
  backups: BackupInfoEntry[];
}

const BACKUP_TYPES: readonly string[] = ['full', 'diff', 'incr'];

export function renderBackupInfo(info: BackupInfo, version: string): string {
  const problem = historyProblem(info.current, info.history) ?? backupsProblem(info);
  if (problem) throw new Error(`cannot write backup.info: ${problem}`);
  const history = newRecord<unknown>();
  for (const db of info.history) history[String(db.id)] = renderHistoryEntry(db);
  const current = newRecord<unknown>();
  for (const backup of info.backups) current[backup.label] = renderEntry(backup, version);
  return renderInfo({ 'backup:current': current, db: renderPgDb(info.current), 'db:history': history }, version);
}

function backupsProblem(info: BackupInfo): string | null {
  const labels = new Set<string>();
  for (const backup of info.backups) {
    if (labels.has(backup.label)) return `backup ${backup.label} appears twice`;
    labels.add(backup.label);
    if (!info.history.some((db) => db.id === backup.dbId)) return `backup ${backup.label} has db-id ${backup.dbId}, which is not in the history`;
  }
  return null;
}


function renderHistoryEntry(db: PgDb): Record<string, unknown> {
  return {
    'db-catalog-version': db.catalogVersion,
    'db-control-version': db.controlVersion,
    'db-system-id': systemIdJson(db.systemId),
    'db-version': db.version,
  };
}

/** Optional keys are left out rather than written empty, as pgBackRest does for full and offline backups. */
function renderEntry(b: BackupInfoEntry, version: string): Record<string, unknown> {
  return {
    'backrest-format': INFO_FORMAT,
    'backrest-version': b.backrestVersion ?? version,
    'backup-archive-start': b.archiveStart || undefined,
    'backup-archive-stop': b.archiveStop || undefined,
    'backup-error': b.error,
    'backup-info-repo-size': b.repoSize,
    'backup-info-repo-size-delta': b.repoSizeDelta,
    'backup-info-size': b.size,
    'backup-info-size-delta': b.sizeDelta,
    'backup-lsn-start': b.lsnStart || undefined,
    'backup-lsn-stop': b.lsnStop || undefined,
    'backup-prior': b.prior ?? undefined,
    'backup-reference': b.reference.length > 0 ? b.reference : undefined,
    'backup-timestamp-start': b.timestampStart,
    'backup-timestamp-stop': b.timestampStop,
    'backup-type': b.type,
    'db-id': b.dbId,
    'option-archive-check': b.archiveCheck,
    'option-compress': b.compressType !== 'none',
    'option-compress-type': b.compressType,
    'option-online': b.online,
  };
}

export function parseBackupInfo(sections: InfoSections, fileName = 'backup.info'): BackupInfo {
  const current = readPgDb(InfoReader.section(sections, 'db', fileName));
  const history = sortHistory(readHistory(InfoReader.section(sections, 'db:history', fileName)));
  const backupSection = InfoReader.section(sections, 'backup:current', fileName);
  const backups = backupSection.keys().map((label) => readEntry(label, backupSection.object(label)));
  backups.sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
  const info = { current, history, backups };
  const problem = historyProblem(current, history) ?? backupsProblem(info);
  if (problem) throw new InfoFileError(`${fileName}: ${problem}`, 'invalid');
  return info;
}


function readHistory(section: InfoReader): PgDb[] {
  return section.keys().map((key) => {
    if (!/^\d+$/.test(key)) section.invalid(`history id '${key}' is not a number`);
    const entry = section.object(key);
    return {
      id: Number(key),
      systemId: entry.digits('db-system-id'),
      version: entry.string('db-version'),
      catalogVersion: entry.integer('db-catalog-version'),
      controlVersion: entry.integer('db-control-version'),
    };
  });
}

function readEntry(label: string, e: InfoReader): BackupInfoEntry {
  const entry: BackupInfoEntry = {
    label,
    type: readType(e),
    prior: e.optionalString('backup-prior') ?? null,
    reference: e.has('backup-reference') ? e.stringArray('backup-reference') : [],
    timestampStart: e.integer('backup-timestamp-start'),
    timestampStop: e.integer('backup-timestamp-stop'),
    lsnStart: e.optionalString('backup-lsn-start') ?? '',
    lsnStop: e.optionalString('backup-lsn-stop') ?? '',
    archiveStart: e.optionalString('backup-archive-start') ?? '',
    archiveStop: e.optionalString('backup-archive-stop') ?? '',
    size: e.integer('backup-info-size'),
    sizeDelta: e.integer('backup-info-size-delta'),
    repoSize: e.integer('backup-info-repo-size'),
    repoSizeDelta: e.integer('backup-info-repo-size-delta'),
    dbId: e.integer('db-id'),
    compressType: readCompressType(e),
    online: e.boolean('option-online'),
    archiveCheck: e.boolean('option-archive-check'),
    backrestVersion: e.string('backrest-version'),
  };
  const error = e.optionalBoolean('backup-error');
  if (error !== undefined) entry.error = error;
  return entry;
}

function readType(e: InfoReader): BackupType {
  const type = e.string('backup-type');
  if (!BACKUP_TYPES.includes(type)) e.invalid(`'backup-type' must be full, diff or incr, found '${type}'`);
  return type as BackupType;
}

/** Older pgBackRest versions only recorded option-compress, which meant gzip. */
function readCompressType(e: InfoReader): string {
  return e.optionalString('option-compress-type') ?? (e.boolean('option-compress') ? 'gz' : 'none');
}
