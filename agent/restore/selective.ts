// Files of one database: pg_data/base/<oid>/... or pg_tblspc/<ts>/PG_<version>_<catalog>/<oid>/...
const DB_FILE_RE = /^(?:pg_data\/base|pg_tblspc\/\d+\/[^/]+)\/(\d+)\/(.+)$/;

/**
 * Which manifest files a selective restore (--db-include) writes as zeroed files: those of the databases the server
 * listed, except PG_VERSION, which PostgreSQL reads to recognise the directory as a database (pgBackRest keeps it too).
 */
export function zeroedFileFilter(zeroDbOids: readonly number[]): (name: string) => boolean {
  const oids = new Set(zeroDbOids);
  if (oids.size === 0) return () => false;
  return (name) => {
    const m = DB_FILE_RE.exec(name);
    return m !== null && oids.has(Number(m[1])) && m[2] !== 'PG_VERSION';
  };
}
