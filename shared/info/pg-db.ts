import type { InfoReader } from './ini';

/** A PostgreSQL cluster as archive.info and backup.info record it (one [db:history] entry). */
export interface PgDb {
  /** history id, counting up each time the stanza is upgraded to a new cluster */
  id: number;
  /** pg_control's system identifier: a 64-bit integer, so kept as decimal digits */
  systemId: string;
  /** major version as PostgreSQL names it: '9.6', '15' */
  version: string;
  catalogVersion: number;
  controlVersion: number;
}

/** System identifiers go to JSON as bigint so they are written as bare digits, as pgBackRest does. */
export function systemIdJson(systemId: string): bigint {
  if (!/^\d+$/.test(systemId)) throw new Error(`system identifier '${systemId}' is not an unsigned integer`);
  return BigInt(systemId);
}

/** Sorted by id, oldest first. */
export function sortHistory(history: PgDb[]): PgDb[] {
  return [...history].sort((a, b) => a.id - b.id);
}

/** Why `history` cannot go with `current`, or null when it can. */
export function historyProblem(current: PgDb, history: PgDb[]): string | null {
  const ids = new Set<number>();
  for (const db of history) {
    if (ids.has(db.id)) return `history id ${db.id} appears twice`;
    ids.add(db.id);
  }
  const entry = history.find((db) => db.id === current.id);
  if (!entry) return `current db-id ${current.id} has no history entry`;
  if (entry.systemId !== current.systemId || entry.version !== current.version) {
    return `current db (id ${current.id}, system id ${current.systemId}, version ${current.version}) differs from its history entry (system id ${entry.systemId}, version ${entry.version})`;
  }
  if (entry.catalogVersion !== current.catalogVersion || entry.controlVersion !== current.controlVersion) {
    return `current db (id ${current.id}) catalog/control versions differ from its history entry`;
  }
  // a stanza upgrade always appends, so anything newer than current means the file was mangled
  if (history.some((db) => db.id > current.id)) return `current db-id ${current.id} is not the newest history entry`;
  return null;
}

/** The [db] / [backup:db] form shared by backup.info and the manifest. */
export function renderPgDb(db: PgDb): Record<string, unknown> {
  return {
    'db-catalog-version': db.catalogVersion,
    'db-control-version': db.controlVersion,
    'db-id': db.id,
    'db-system-id': systemIdJson(db.systemId),
    'db-version': db.version,
  };
}

export function readPgDb(db: InfoReader): PgDb {
  return {
    id: db.integer('db-id'),
    systemId: db.digits('db-system-id'),
    version: db.string('db-version'),
    catalogVersion: db.integer('db-catalog-version'),
    controlVersion: db.integer('db-control-version'),
  };
}
