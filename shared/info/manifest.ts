/** backup.manifest in pgBackRest's layout (src/info/manifest/serialize.c.inc, notes 3.5). */
import { compareNames, InfoFileError, InfoReader, newRecord, renderInfo, sortByName, type InfoSections } from './ini';
import { readPgDb, renderPgDb, type PgDb } from './pg-db';

export type { PgDb } from './pg-db';

export interface ManifestFile {
  /** 'pg_data/base/1/1259' or 'pg_tblspc/16384/PG_15_202209061/5/16390' */
  name: string;
  size: number;
  /** mtime, unix seconds */
  timestamp: number;
  /** '0600' */
  mode: string;
  user: string;
  group: string;
  /** sha1 hex of the original bytes */
  checksum: string;
  repoSize: number;
  /** sha1 hex of the stored bytes */
  repoChecksum: string;
  /** label of the backup holding the data; absent = this backup */
  reference?: string;
  /**
   * Set when the file is stored inside a bundle (small files, --bundle): the bundle's number in
   * the backup holding the data (`<label>/bundle/<id>`), and where the file's stored bytes
   * (repoSize of them) start in it. pgBackRest's `bni`/`bno`.
   */
  bundleId?: number;
  bundleOffset?: number;
  /** 'gz' | 'lz4' | 'zst' | 'none' */
  compressType: string;
  /** pages validated: true = all valid, false = see checksumPageError; absent = not a relation file or not checked */
  checksumPage?: boolean;
  /** invalid blocks: single block numbers and [first, last] ranges, as pgBackRest writes them */
  checksumPageError?: PageErrorEntry[];
}

export type PageErrorEntry = number | [number, number];

export interface ManifestPath {
  /** 'pg_data', 'pg_data/base', 'pg_tblspc', 'pg_tblspc/16384' ... */
  name: string;
  mode: string;
  user: string;
  group: string;
}

export interface ManifestLink {
  /** 'pg_data/pg_tblspc/16384' */
  name: string;
  destination: string;
  user: string;
  group: string;
}

export interface ManifestTarget {
  /** 'pg_data' or 'pg_tblspc/16384' */
  name: string;
  /** absolute path on the db host */
  path: string;
  type: 'path' | 'link';
  tablespaceId?: number;
  tablespaceName?: string;
}

export interface ManifestDb {
  name: string;
  oid: number;
  lastSystemOid: number;
}

export interface ManifestBackup {
  label: string;
  type: 'full' | 'diff' | 'incr';
  prior: string | null;
  reference: string[];
  timestampStart: number;
  timestampCopyStart: number;
  timestampStop: number;
  lsnStart: string;
  lsnStop: string;
  archiveStart: string;
  archiveStop: string;
}

export interface ManifestOptions {
  compressType: string;
  compressLevel: number;
  processMax: number;
  online: boolean;
  archiveCheck: boolean;
  delta: boolean;
  startFast: boolean;
  /** pages of relation files were validated (the cluster has data checksums); absent in manifests that do not say */
  checksumPage?: boolean;
}

/** Arrays come back from parseManifest sorted by name (byte order), which is how they are written. */
export interface Manifest {
  backup: ManifestBackup;
  db: PgDb;
  options: ManifestOptions;
  targets: ManifestTarget[];
  databases: ManifestDb[];
  paths: ManifestPath[];
  links: ManifestLink[];
  files: ManifestFile[];
}

export interface ManifestTotals {
  size: number;
  repoSize: number;
  sizeDelta: number;
  repoSizeDelta: number;
}

const FILE_NAME = 'backup.manifest';
const BACKUP_TYPES: readonly string[] = ['full', 'diff', 'incr'];

// a type alias, not an interface, so a defaults object can be passed where a section is expected
type Owner = {
  user: string;
  group: string;
  mode?: string;
};

/** Delta counts only files stored in this backup, which is what it adds to the repository. */
export function manifestTotals(m: Manifest): ManifestTotals {
  const totals: ManifestTotals = { size: 0, repoSize: 0, sizeDelta: 0, repoSizeDelta: 0 };
  for (const file of m.files) {
    totals.size += file.size;
    totals.repoSize += file.repoSize;
    if (file.reference === undefined) {
      totals.sizeDelta += file.size;
      totals.repoSizeDelta += file.repoSize;
    }
  }
  return totals;
}

// ---------------------------------------------------------------------------------------------
// Rendering

export function renderManifest(m: Manifest, version: string): string {
  const problem = manifestProblem(m);
  if (problem) throw new Error(`cannot write the manifest of ${m.backup.label}: ${problem}`);
  const fileDefault = mostCommonOwner(m.files, true);
  const pathDefault = mostCommonOwner(m.paths, true);
  const linkDefault = mostCommonOwner(m.links, false);
  return renderInfo(
    {
      backup: renderBackup(m.backup),
      'backup:db': renderPgDb(m.db),
      'backup:option': renderOptions(m.options),
      'backup:target': byName(m.targets, renderTarget),
      db: byName(m.databases, (db) => ({ 'db-id': db.oid, 'db-last-system-id': db.lastSystemOid })),
      'target:file': byName(m.files, (file) => renderFile(file, fileDefault, m.options.compressType)),
      'target:file:default': fileDefault ?? {},
      'target:link': byName(m.links, (link) => ({ destination: link.destination, ...ownerOverrides(link, linkDefault) })),
      'target:link:default': linkDefault ?? {},
      'target:path': byName(m.paths, (path) => ownerOverrides(path, pathDefault)),
      'target:path:default': pathDefault ?? {},
    },
    version,
  );
}

function byName<T extends { name: string }>(items: T[], render: (item: T) => unknown): Record<string, unknown> {
  const section = newRecord<unknown>();
  for (const item of items) {
    if (item.name in section) throw new Error(`cannot write a manifest listing '${item.name}' twice`);
    section[item.name] = render(item);
  }
  return section;
}

function renderBackup(b: ManifestBackup): Record<string, unknown> {
  return {
    'backup-archive-start': b.archiveStart || undefined,
    'backup-archive-stop': b.archiveStop || undefined,
    'backup-label': b.label,
    'backup-lsn-start': b.lsnStart || undefined,
    'backup-lsn-stop': b.lsnStop || undefined,
    'backup-prior': b.prior ?? undefined,
    'backup-reference': b.reference.length > 0 ? b.reference : undefined,
    'backup-timestamp-copy-start': b.timestampCopyStart,
    'backup-timestamp-start': b.timestampStart,
    'backup-timestamp-stop': b.timestampStop,
    'backup-type': b.type,
  };
}


/** option-start-fast is ours; pgBackRest ignores option keys it does not know. */
function renderOptions(o: ManifestOptions): Record<string, unknown> {
  return {
    'option-archive-check': o.archiveCheck,
    'option-checksum-page': o.checksumPage,
    'option-compress': o.compressType !== 'none',
    'option-compress-level': o.compressLevel,
    'option-compress-type': o.compressType,
    'option-delta': o.delta,
    'option-online': o.online,
    'option-process-max': o.processMax,
    'option-start-fast': o.startFast,
  };
}

/** pgBackRest writes tablespace-id as a string; kept that way so its tools read our manifests. */
function renderTarget(t: ManifestTarget): Record<string, unknown> {
  return {
    path: t.path,
    'tablespace-id': t.tablespaceId === undefined ? undefined : String(t.tablespaceId),
    'tablespace-name': t.tablespaceName,
    type: t.type,
  };
}

/** Only what differs from the defaults or is implied (rck = checksum, repo-size = size) is written. */
function renderFile(f: ManifestFile, defaults: Owner | undefined, compressType: string): Record<string, unknown> {
  return {
    bni: f.bundleId,
    bno: f.bundleId !== undefined ? f.bundleOffset ?? 0 : undefined,
    checksum: f.checksum,
    'checksum-page': f.checksumPage,
    'checksum-page-error': f.checksumPageError,
    ct: f.compressType !== compressType ? f.compressType : undefined,
    rck: f.repoChecksum !== f.checksum ? f.repoChecksum : undefined,
    reference: f.reference,
    'repo-size': f.repoSize !== f.size ? f.repoSize : undefined,
    size: f.size,
    timestamp: f.timestamp,
    ...ownerOverrides(f, defaults),
  };
}

function ownerOverrides(entry: Owner, defaults: Owner | undefined): Record<string, unknown> {
  return {
    group: entry.group !== defaults?.group ? entry.group : undefined,
    mode: entry.mode !== undefined && entry.mode !== defaults?.mode ? entry.mode : undefined,
    user: entry.user !== defaults?.user ? entry.user : undefined,
  };
}

/** The defaults are each attribute's most common value (ties go to the smallest) so most entries carry none. */
function mostCommonOwner(entries: Owner[], withMode: boolean): Owner | undefined {
  if (entries.length === 0) return undefined;
  const owner: Owner = { user: mostCommon(entries.map((e) => e.user)), group: mostCommon(entries.map((e) => e.group)) };
  if (withMode) owner.mode = mostCommon(entries.map((e) => e.mode ?? ''));
  return owner;
}

function mostCommon(values: string[]): string {
  const counts = new Map<string, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  let best = values[0];
  for (const [value, count] of counts) {
    const bestCount = counts.get(best) ?? 0;
    if (count > bestCount || (count === bestCount && compareNames(value, best) < 0)) best = value;
  }
  return best;
}

/**
 * Problems that would make a manifest unusable for restore, checked on both write and read.
 * (Duplicate names need no check on read: the INI parser already refuses duplicate keys.)
 */
function manifestProblem(m: Manifest): string | null {
  if (!BACKUP_TYPES.includes(m.backup.type)) return `backup type '${m.backup.type}' is not full, diff or incr`;
  const references = new Set(m.backup.reference);
  const stray = m.files.find((f) => f.reference !== undefined && !references.has(f.reference));
  if (stray) return `file ${stray.name} references ${stray.reference}, which is not in backup-reference`;
  return null;
}

// ---------------------------------------------------------------------------------------------
// Parsing

export function parseManifest(sections: InfoSections, fileName = FILE_NAME): Manifest {
  const section = (name: string) => InfoReader.section(sections, name, fileName);
  const options = readOptions(section('backup:option'));
  const fileOwner = ownerReader(section('target:file:default'));
  const pathOwner = ownerReader(section('target:path:default'));
  const linkOwner = ownerReader(section('target:link:default'));
  const m: Manifest = {
    backup: readBackup(section('backup')),
    db: readPgDb(section('backup:db')),
    options,
    targets: readEach(section('backup:target'), readTarget),
    databases: readEach(section('db'), (name, e) => ({ name, oid: e.integer('db-id'), lastSystemOid: e.integer('db-last-system-id') })),
    paths: readEach(section('target:path'), (name, e) => ({ name, mode: pathOwner(e, 'mode'), user: pathOwner(e, 'user'), group: pathOwner(e, 'group') })),
    links: readEach(section('target:link'), (name, e) => ({ name, destination: e.string('destination'), user: linkOwner(e, 'user'), group: linkOwner(e, 'group') })),
    files: readEach(section('target:file'), (name, e) => readFile(name, e, options.compressType, fileOwner)),
  };
  const problem = manifestProblem(m);
  if (problem) throw new InfoFileError(`${fileName}: ${problem}`, 'invalid');
  return m;
}

function readEach<T extends { name: string }>(section: InfoReader, read: (name: string, entry: InfoReader) => T): T[] {
  const items = section.keys().map((name) => read(name, section.object(name)));
  return sortByName(items, (item) => item.name);
}

type OwnerReader = (entry: InfoReader, key: 'user' | 'group' | 'mode') => string;

/** An entry's user/group/mode, else the defaults section's; defaults are read once, when first needed. */
function ownerReader(defaults: InfoReader): OwnerReader {
  const cache = new Map<string, string>();
  const fallback = (entry: InfoReader, key: string) => {
    if (!defaults.has(key)) entry.invalid(`'${key}' is missing and ${defaults.where} has no default for it`);
    return cache.get(key) ?? cache.set(key, defaults.string(key)).get(key)!;
  };
  return (entry, key) => entry.optionalString(key) ?? fallback(entry, key);
}

function readBackup(b: InfoReader): ManifestBackup {
  const type = b.string('backup-type');
  if (!BACKUP_TYPES.includes(type)) b.invalid(`'backup-type' must be full, diff or incr, found '${type}'`);
  return {
    label: b.string('backup-label'),
    type: type as ManifestBackup['type'],
    prior: b.optionalString('backup-prior') ?? null,
    reference: b.has('backup-reference') ? b.stringArray('backup-reference') : [],
    timestampStart: b.integer('backup-timestamp-start'),
    timestampCopyStart: b.integer('backup-timestamp-copy-start'),
    timestampStop: b.integer('backup-timestamp-stop'),
    lsnStart: b.optionalString('backup-lsn-start') ?? '',
    lsnStop: b.optionalString('backup-lsn-stop') ?? '',
    archiveStart: b.optionalString('backup-archive-start') ?? '',
    archiveStop: b.optionalString('backup-archive-stop') ?? '',
  };
}


function readOptions(o: InfoReader): ManifestOptions {
  const options: ManifestOptions = {
    compressType: o.optionalString('option-compress-type') ?? (o.boolean('option-compress') ? 'gz' : 'none'),
    compressLevel: o.integer('option-compress-level'),
    processMax: o.integer('option-process-max'),
    online: o.boolean('option-online'),
    archiveCheck: o.boolean('option-archive-check'),
    delta: o.optionalBoolean('option-delta') ?? false,
    startFast: o.optionalBoolean('option-start-fast') ?? false,
  };
  const checksumPage = o.optionalBoolean('option-checksum-page');
  if (checksumPage !== undefined) options.checksumPage = checksumPage;
  return options;
}

function readTarget(name: string, t: InfoReader): ManifestTarget {
  const type = t.string('type');
  if (type !== 'path' && type !== 'link') t.invalid(`'type' must be path or link, found '${type}'`);
  const target: ManifestTarget = { name, path: t.string('path'), type };
  if (t.has('tablespace-id')) target.tablespaceId = Number(t.digits('tablespace-id'));
  if (t.has('tablespace-name')) target.tablespaceName = t.string('tablespace-name');
  return target;
}

function readFile(name: string, f: InfoReader, compressType: string, owner: OwnerReader): ManifestFile {
  const checksum = f.string('checksum');
  const size = f.integer('size');
  const file: ManifestFile = {
    name,
    size,
    timestamp: f.integer('timestamp'),
    mode: owner(f, 'mode'),
    user: owner(f, 'user'),
    group: owner(f, 'group'),
    checksum,
    repoSize: f.optionalInteger('repo-size') ?? size,
    repoChecksum: f.optionalString('rck') ?? checksum,
    compressType: f.optionalString('ct') ?? compressType,
  };
  const reference = f.optionalString('reference');
  if (reference !== undefined) file.reference = reference;
  const checksumPage = f.optionalBoolean('checksum-page');
  if (checksumPage !== undefined) file.checksumPage = checksumPage;
  if (f.has('checksum-page-error')) file.checksumPageError = f.pageErrorList('checksum-page-error');
  const bundleId = f.optionalInteger('bni');
  if (bundleId !== undefined) {
    file.bundleId = bundleId;
    file.bundleOffset = f.optionalInteger('bno') ?? 0;
  }
  return file;
}
