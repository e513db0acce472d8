/** archive.info in pgBackRest's layout (src/info/infoArchive.c, src/info/infoPg.c). */
import { InfoFileError, InfoReader, newRecord, renderInfo, type InfoSections } from './ini';
import { historyProblem, sortHistory, systemIdJson, type PgDb } from './pg-db';

export type { PgDb } from './pg-db';

export interface ArchiveInfo {
  current: PgDb;
  /** every cluster WAL was archived for, current included, ascending id */
  history: PgDb[];
}

/** The WAL directory name for a cluster: '<version>-<history id>', e.g. '15-1'. */
export function archiveId(db: PgDb): string {
  return `${db.version}-${db.id}`;
}

/**
 * archive.info does not store catalog/control versions; they are written from nothing and
 * read back as 0.
 */
export function renderArchiveInfo(info: ArchiveInfo, version: string): string {
  const problem = historyProblem(info.current, info.history);
  if (problem) throw new Error(`cannot write archive.info: ${problem}`);
  const history = newRecord<unknown>();
  // pgBackRest's quirk: inside [db:history] the key 'db-id' holds the system identifier
  for (const db of info.history) history[String(db.id)] = { 'db-id': systemIdJson(db.systemId), 'db-version': db.version };
  return renderInfo(
    {
      db: { 'db-id': info.current.id, 'db-system-id': systemIdJson(info.current.systemId), 'db-version': info.current.version },
      'db:history': history,
    },
    version,
  );
}

export function parseArchiveInfo(sections: InfoSections, fileName = 'archive.info'): ArchiveInfo {
  const db = InfoReader.section(sections, 'db', fileName);
  const current: PgDb = {
    id: db.integer('db-id'),
    systemId: db.digits('db-system-id'),
    version: db.string('db-version'),
    catalogVersion: 0,
    controlVersion: 0,
  };
  const history = sortHistory(readHistory(InfoReader.section(sections, 'db:history', fileName)));
  const problem = historyProblem(current, history);
  if (problem) throw new InfoFileError(`${fileName}: ${problem}`, 'invalid');
  return { current, history };
}

function readHistory(section: InfoReader): PgDb[] {
  return section.keys().map((key) => {
    if (!/^\d+$/.test(key)) section.invalid(`history id '${key}' is not a number`);
    const entry = section.object(key);
    return { id: Number(key), systemId: entry.digits('db-id'), version: entry.string('db-version'), catalogVersion: 0, controlVersion: 0 };
  });
}
