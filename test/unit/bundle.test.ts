/**
 * Small-file bundles: which files travel together, how the manifest records a bundled file
 * (pgBackRest's bni/bno), and where the server reads a file's stored bytes back from.
 */
import { describe, expect, it } from 'vitest';
import { parseInfo } from '../../shared/info/ini';
import { parseManifest, renderManifest, type Manifest } from '../../shared/info/manifest';
import { acrossTablespaces, bundled, tablespaceOfFile } from '../../agent/transfer/schedule';
import { storedLocation } from '../../repo-server/repo/layout';

const KiB = 1024;
const f = (name: string, size: number) => ({ name, size });

describe('bundled()', () => {
  it('keeps files at or over the limit alone and packs the rest into bundles of about bundle-size', () => {
    const files = [f('big', 5000 * KiB), f('limit', 2048 * KiB), f('a', 900 * KiB), f('b', 900 * KiB), f('c', 900 * KiB), f('d', 10), f('e', 0)];
    expect(bundled(files, 2048 * KiB, 2000 * KiB)).toEqual([
      { kind: 'file', file: files[0] },
      { kind: 'file', file: files[1] },
      { kind: 'bundle', files: [files[2], files[3]] },
      { kind: 'bundle', files: [files[4], files[5], files[6]] },
    ]);
  });

  it('a limit of 0 means no bundles; a file larger than bundle-size still gets a bundle of its own', () => {
    const files = [f('a', 10), f('b', 20)];
    expect(bundled(files, 0, 100)).toEqual(files.map((file) => ({ kind: 'file', file })));
    expect(bundled([f('a', 150), f('b', 150)], 1000, 100)).toEqual([{ kind: 'bundle', files: [f('a', 150)] }, { kind: 'bundle', files: [f('b', 150)] }]);
  });

  it('never puts files of two tablespaces in one bundle', () => {
    const files = [f('pg_data/base/1/1', 50), f('pg_tblspc/16384/PG_15_1/5/1', 40), f('pg_data/base/1/2', 30), f('pg_tblspc/16384/PG_15_1/5/2', 20)];
    expect(bundled(files, 1000, 1000, () => true, (x) => tablespaceOfFile(x.name))).toEqual([
      { kind: 'bundle', files: [files[0], files[2]] },
      { kind: 'bundle', files: [files[1], files[3]] },
    ]);
  });
});

describe('acrossTablespaces()', () => {
  it('takes turns between tablespaces, each in its own order, as pgBackRest\'s queue per tablespace does', () => {
    const names = ['pg_data/base/1/1', 'pg_data/base/1/2', 'pg_data/base/1/3', 'pg_tblspc/16384/PG_15_1/5/1', 'pg_tblspc/16385/PG_15_1/5/1', 'pg_tblspc/16384/PG_15_1/5/2'];
    expect(acrossTablespaces(names, tablespaceOfFile)).toEqual([
      'pg_data/base/1/1', 'pg_tblspc/16384/PG_15_1/5/1', 'pg_tblspc/16385/PG_15_1/5/1',
      'pg_data/base/1/2', 'pg_tblspc/16384/PG_15_1/5/2',
      'pg_data/base/1/3',
    ]);
  });

  it('leaves a cluster without tablespaces in its order', () => {
    const names = ['pg_data/base/1/3', 'pg_data/base/1/1', 'pg_data/global/1260'];
    expect(acrossTablespaces(names, tablespaceOfFile)).toEqual(names);
  });
});

function manifest(): Manifest {
  const file = (name: string, extra: object) => ({
    name, size: 8192, timestamp: 1704110000, mode: '0600', user: 'postgres', group: 'postgres',
    checksum: 'a'.repeat(40), repoSize: 300, repoChecksum: 'b'.repeat(40), compressType: 'zst', ...extra,
  });
  return {
    backup: {
      label: '20240101-120000F', type: 'full', prior: null, reference: [], timestampStart: 1704114000, timestampCopyStart: 1704114001,
      timestampStop: 1704114030, lsnStart: '0/5000028', lsnStop: '0/5000100', archiveStart: '000000010000000000000005', archiveStop: '000000010000000000000005',
    },
    db: { id: 1, systemId: '7301234567890123456', version: '15', catalogVersion: 202209061, controlVersion: 1300 },
    options: { compressType: 'zst', compressLevel: 3, processMax: 2, online: true, archiveCheck: true, delta: false, startFast: true },
    targets: [{ name: 'pg_data', path: '/var/lib/postgresql/15/main', type: 'path' }],
    databases: [],
    paths: [{ name: 'pg_data', mode: '0700', user: 'postgres', group: 'postgres' }],
    links: [],
    files: [file('pg_data/PG_VERSION', { bundleId: 1, bundleOffset: 0 }), file('pg_data/base/1/1259', { bundleId: 1, bundleOffset: 300 }), file('pg_data/base/1/2600', {})],
  };
}

describe('bundled files in the manifest and on the server', () => {
  it('bundle id and offset round-trip as bni/bno; unbundled files carry neither', () => {
    const text = renderManifest(manifest(), '0.1.0');
    expect(text).toMatch(/^pg_data\/base\/1\/1259=\{"bni":1,"bno":300,/m);
    expect(text).not.toMatch(/^pg_data\/base\/1\/2600=.*"bni"/m);
    const back = parseManifest(parseInfo(text, 'backup.manifest'));
    expect(back.files.map((x) => [x.bundleId, x.bundleOffset])).toEqual([[1, 0], [1, 300], [undefined, undefined]]);
  });

  it('a bundled file is read as a range of its bundle, in the backup that holds it', () => {
    const [a, b, c] = manifest().files;
    const label = '20240102-120000F_20240102-130000I';
    expect(storedLocation('main', label, b)).toEqual({ key: `backup/main/${label}/bundle/1`, range: { start: 300, length: 300 } });
    expect(storedLocation('main', label, { ...a, reference: '20240101-120000F' })).toEqual({ key: 'backup/main/20240101-120000F/bundle/1', range: { start: 0, length: 300 } });
    expect(storedLocation('main', label, c)).toEqual({ key: `backup/main/${label}/pg_data/base/1/2600.zst` });
  });
});
