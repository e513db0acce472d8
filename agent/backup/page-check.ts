/**
 * Which backup files are relation files whose pages carry checksums, and where their blocks
 * start. pgBackRest checks the files under base/, global/ and pg_tblspc/ except pg_filenode.map,
 * PG_VERSION and pg_control; naming the relation forks positively (<relfilenode>[_fsm|_vm|_init][.N]
 * in a database directory) leaves those three out by construction, and anything else that is not pages.
 */
const DB_DIR = /^(pg_data\/(global|base\/\d+)|pg_tblspc\/\d+\/PG_[^/]+\/\d+)$/;
const RELATION_FORK = /^\d+(?:_(?:fsm|vm|init))?(?:\.(\d+))?$/;

/** The relation block number of the file's first page, or null when the file is not pages. */
export function firstBlockOf(name: string, blocksPerSegment: number): number | null {
  const slash = name.lastIndexOf('/');
  if (slash < 0 || !DB_DIR.test(name.slice(0, slash))) return null;
  const m = RELATION_FORK.exec(name.slice(slash + 1));
  if (!m) return null;
  return Number(m[1] ?? 0) * blocksPerSegment;
}
