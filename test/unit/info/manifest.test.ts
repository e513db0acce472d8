import { describe, expect, it } from 'vitest';
import { InfoFileError, parseInfo, renderInfo, type InfoSections } from '../../../shared/info/ini';
import { manifestTotals, parseManifest, renderManifest, type Manifest, type ManifestFile } from '../../../shared/info/manifest';

const FULL = '20240101-120000F';
const INCR = '20240101-120000F_20240101-130000I';

function file(name: string, extra: Partial<ManifestFile> = {}): ManifestFile {
  return {
    name,
    size: 8192,
    timestamp: 1704110000,
    mode: '0600',
    user: 'postgres',
    group: 'postgres',
    checksum: 'a'.repeat(40),
    repoSize: 311,
    repoChecksum: 'b'.repeat(40),
    compressType: 'lz4',
    ...extra,
  };
}

function sample(): Manifest {
  return {
    backup: {
      label: INCR,
      type: 'incr',
      prior: FULL,
      reference: [FULL],
      timestampStart: 1704114000,
      timestampCopyStart: 1704114001,
      timestampStop: 1704114030,
      lsnStart: '0/5000028',
      lsnStop: '0/5000100',
      archiveStart: '000000010000000000000005',
      archiveStop: '000000010000000000000005',
    },
    db: { id: 1, systemId: '7301234567890123456', version: '15', catalogVersion: 202209061, controlVersion: 1300 },
    options: { compressType: 'lz4', compressLevel: 1, processMax: 4, online: true, archiveCheck: true, delta: false, startFast: true, checksumPage: true },
    targets: [
      { name: 'pg_data', path: '/var/lib/postgresql/15/main', type: 'path' },
      { name: 'pg_tblspc/16384', path: '/mnt/fast', type: 'link', tablespaceId: 16384, tablespaceName: 'fast' },
    ],
    databases: [
      { name: 'postgres', oid: 5, lastSystemOid: 16383 },
      { name: 'template0', oid: 4, lastSystemOid: 16383 },
      { name: 'weird=name "db"', oid: 16390, lastSystemOid: 16383 },
    ],
    paths: [
      { name: 'pg_data', mode: '0700', user: 'postgres', group: 'postgres' },
      { name: 'pg_data/base', mode: '0700', user: 'postgres', group: 'postgres' },
      { name: 'pg_data/pg_wal', mode: '0750', user: 'postgres', group: 'wheel' },
      { name: 'pg_tblspc', mode: '0700', user: 'postgres', group: 'postgres' },
      { name: 'pg_tblspc/16384', mode: '0700', user: 'postgres', group: 'postgres' },
    ],
    links: [{ name: 'pg_data/pg_tblspc/16384', destination: '/mnt/fast', user: 'postgres', group: 'postgres' }],
    files: [
      file('pg_data/PG_VERSION', { size: 3, repoSize: 3, checksum: 'c'.repeat(40), repoChecksum: 'c'.repeat(40), compressType: 'none', reference: FULL }),
      file('pg_data/base/1/1259', { reference: FULL }),
      file('pg_data/base/1/a=b'),
      file('pg_data/global/pg_control', { mode: '0640', user: 'root' }),
      file('pg_data/postgresql.auto.conf', { size: 0, repoSize: 0, checksum: 'da39a3ee5e6b4b0d3255bfef95601890afd80709' }),
      file('pg_tblspc/16384/PG_15_202209061/5/16390', { size: 16384, repoSize: 700 }),
    ],
  };
}

function roundTrip(m: Manifest): Manifest {
  return parseManifest(parseInfo(renderManifest(m, '0.1.0'), 'backup.manifest'));
}

function fileLine(text: string, name: string): string {
  return text.split('\n').find((line) => line.startsWith(`${name}=`)) ?? '';
}

describe('backup.manifest', () => {
  it('round-trips exactly, both as a model and as text', () => {
    const m = sample();
    expect(roundTrip(m)).toEqual(m);
    const text = renderManifest(m, '0.1.0');
    expect(renderManifest(parseManifest(parseInfo(text, 'backup.manifest')), '0.1.0')).toBe(text);
  });

  it("uses pgBackRest's section names", () => {
    const sections = Object.keys(parseInfo(renderManifest(sample(), '0.1.0'), 'backup.manifest')).sort();
    expect(sections).toEqual([
      'backup',
      'backup:db',
      'backup:option',
      'backup:target',
      'db',
      'target:file',
      'target:file:default',
      'target:link',
      'target:link:default',
      'target:path',
      'target:path:default',
    ]);
  });

  it('keeps per-file lines short: defaults hold the common owner and mode, implied values are left out', () => {
    const text = renderManifest(sample(), '0.1.0');
    expect(text).toContain('[target:file:default]\ngroup="postgres"\nmode="0600"\nuser="postgres"\n');
    expect(text).toContain('[target:path:default]\ngroup="postgres"\nmode="0700"\nuser="postgres"\n');
    expect(text).toContain('[target:link:default]\ngroup="postgres"\nuser="postgres"\n');
    expect(fileLine(text, 'pg_data/base/1/1259')).toBe(
      `pg_data/base/1/1259={"checksum":"${'a'.repeat(40)}","rck":"${'b'.repeat(40)}","reference":"${FULL}","repo-size":311,"size":8192,"timestamp":1704110000}`,
    );
    // uncompressed: repo checksum and size equal the originals, so neither is written; ct differs from the option
    expect(fileLine(text, 'pg_data/PG_VERSION')).toBe(
      `pg_data/PG_VERSION={"checksum":"${'c'.repeat(40)}","ct":"none","reference":"${FULL}","size":3,"timestamp":1704110000}`,
    );
    expect(fileLine(text, 'pg_data/global/pg_control')).toContain('"mode":"0640"');
    expect(fileLine(text, 'pg_data/global/pg_control')).toContain('"user":"root"');
    expect(fileLine(text, 'pg_data/global/pg_control')).not.toContain('"group"');
    expect(fileLine(text, 'pg_data/base')).toBe('pg_data/base={}');
    expect(fileLine(text, 'pg_data/pg_wal')).toBe('pg_data/pg_wal={"group":"wheel","mode":"0750"}');
  });

  it('writes targets and databases as pgBackRest does (tablespace-id as a string)', () => {
    const text = renderManifest(sample(), '0.1.0');
    expect(fileLine(text, 'pg_tblspc/16384')).toBe(
      'pg_tblspc/16384={"path":"/mnt/fast","tablespace-id":"16384","tablespace-name":"fast","type":"link"}',
    );
    expect(text).toContain('postgres={"db-id":5,"db-last-system-id":16383}\n');
    expect(text).toContain('"weird=name \\"db\\""={"db-id":16390');
    expect(text).toContain('"pg_data/base/1/a=b"={');
    expect(text).toContain('db-system-id=7301234567890123456\n');
  });

  it('restores full entries when most files differ from the rest (defaults are computed, not fixed)', () => {
    const m = sample();
    m.files = m.files.map((f) => ({ ...f, user: 'pg', group: 'pg', mode: '0640' }));
    m.files[0] = { ...m.files[0], user: 'postgres' };
    const text = renderManifest(m, '0.1.0');
    expect(text).toContain('[target:file:default]\ngroup="pg"\nmode="0640"\nuser="pg"\n');
    expect(roundTrip(m)).toEqual(m);
  });

  it('round-trips a manifest with no links, no tablespaces and an offline full backup', () => {
    const m = sample();
    m.backup = { ...m.backup, type: 'full', prior: null, reference: [], lsnStart: '', lsnStop: '', archiveStart: '', archiveStop: '' };
    m.options = { ...m.options, online: false, compressType: 'none' };
    m.links = [];
    m.targets = [m.targets[0]];
    m.files = m.files.map(({ reference: _, ...f }) => f);
    const back = roundTrip(m);
    expect(back).toEqual(m);
    expect(renderManifest(m, '0.1.0')).not.toContain('[target:link');
  });

  it('returns entries sorted by name whatever order they were given in', () => {
    const m = sample();
    const shuffled = { ...m, files: [...m.files].reverse(), paths: [...m.paths].reverse(), databases: [...m.databases].reverse() };
    expect(roundTrip(shuffled)).toEqual(m);
  });

  it('computes totals, counting only files stored in this backup as delta', () => {
    expect(manifestTotals(sample())).toEqual({
      size: 3 + 8192 + 8192 + 8192 + 0 + 16384,
      repoSize: 3 + 311 + 311 + 311 + 0 + 700,
      sizeDelta: 8192 + 8192 + 0 + 16384,
      repoSizeDelta: 311 + 311 + 0 + 700,
    });
  });

  it('refuses a file referencing a backup missing from backup-reference, on write and on read', () => {
    const m = sample();
    m.files[1] = { ...m.files[1], reference: '20231231-000000F' };
    expect(() => renderManifest(m, '0.1.0')).toThrow(/references 20231231-000000F/);
    const sections = parseInfo(renderManifest(sample(), '0.1.0'), 'backup.manifest');
    (sections['target:file']['pg_data/base/1/1259'] as Record<string, unknown>).reference = '20231231-000000F';
    expect(() => parseManifest(reparse(sections))).toThrow(InfoFileError);
  });

  it('refuses to write the same name twice', () => {
    const m = sample();
    m.files.push(file('pg_data/base/1/1259'));
    expect(() => renderManifest(m, '0.1.0')).toThrow("listing 'pg_data/base/1/1259' twice");
  });

  it('explains a file entry with neither an owner nor a default', () => {
    const sections = parseInfo(renderManifest(sample(), '0.1.0'), 'backup.manifest');
    delete sections['target:file:default'];
    expect(() => parseManifest(reparse(sections))).toThrow(
      "backup.manifest [target:file] pg_data/PG_VERSION: 'mode' is missing and backup.manifest [target:file:default] has no default for it",
    );
  });

  it('reads pgBackRest option keys it does not write itself as absent, not as errors', () => {
    const sections = parseInfo(renderManifest(sample(), '0.1.0'), 'backup.manifest');
    Object.assign(sections['backup:option'], { 'option-hardlink': false, 'option-buffer-size': 16384 });
    delete sections['backup:option']['option-start-fast'];
    expect(parseManifest(reparse(sections)).options.startFast).toBe(false);
  });

  it('stays small for 100,000 files (defaults hold owner and mode)', () => {
    const m = sample();
    m.files = Array.from({ length: 100_000 }, (_, i) =>
      file(`pg_data/base/16390/${100000 + i}`, { checksum: i.toString(16).padStart(40, '0'), repoChecksum: i.toString(16).padStart(40, 'f') }),
    );
    const text = renderManifest(m, '0.1.0');
    const back = parseManifest(parseInfo(text, 'backup.manifest'));
    expect(back.files).toHaveLength(100_000);
    expect(back.files[99_999]).toEqual(m.files[99_999]);
    // a checksum, rck, sizes and mtime only: owner and mode come from the defaults section
    const fileLines = text.split('\n').filter((line) => line.startsWith('pg_data/base/16390/'));
    expect(fileLines.filter((line) => /"(user|group|mode)"/.test(line))).toEqual([]);
    expect(text.length / 100_000).toBeLessThan(200);
  });
});

/** Render and parse again so the edited sections carry a valid checksum. */
function reparse(sections: InfoSections): InfoSections {
  return parseInfo(renderInfo(sections, '0.1.0'), 'backup.manifest');
}

describe('page checksum results in the manifest', () => {
  const withPages = (): Manifest => {
    const m = sample();
    m.files = m.files.map((f) => (f.name === 'pg_data/base/1/1259' ? { ...f, checksumPage: true } : f));
    m.files.push(file('pg_data/base/1/2608', { size: 5 * 8192, checksumPage: false, checksumPageError: [1, [3, 4]] }));
    return roundTrip(m);
  };

  it('round-trip through the file', () => {
    const m = withPages();
    expect(roundTrip(m)).toEqual(m);
    expect(m.files.find((f) => f.name === 'pg_data/base/1/2608')).toMatchObject({ checksumPage: false, checksumPageError: [1, [3, 4]] });
  });

  it("are written as pgBackRest writes them: checksum-page, and checksum-page-error as blocks and [first, last] ranges", () => {
    const text = renderManifest(withPages(), '0.1.0');
    expect(fileLine(text, 'pg_data/base/1/2608')).toContain('"checksum-page":false,"checksum-page-error":[1,[3,4]]');
    expect(fileLine(text, 'pg_data/base/1/1259')).toContain('"checksum-page":true');
    expect(fileLine(text, 'pg_data/base/1/1259')).not.toContain('checksum-page-error');
    expect(fileLine(text, 'pg_data/global/pg_control')).not.toContain('checksum-page');
    expect(text).toMatch(/^option-checksum-page=true$/m);
  });

  it('refuses a checksum-page-error that is not blocks and ranges', () => {
    const sections = parseInfo(renderManifest(withPages(), '0.1.0'), 'backup.manifest');
    (sections['target:file']['pg_data/base/1/2608'] as Record<string, unknown>)['checksum-page-error'] = [[1, 2, 3]];
    expect(() => parseManifest(sections)).toThrow(/checksum-page-error/);
  });
});
