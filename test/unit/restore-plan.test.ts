import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { chooseBackup, zeroedDatabases } from '../../repo-server/commands/restore-plan';
import { validateRecoveryTarget } from '../../shared/restore/recovery-target';
import type { BackupInfoEntry } from '../../shared/info/backup-info';
import type { Manifest } from '../../shared/info/manifest';
import { tablespaceTargets } from '../../agent/restore/layout';
import { zeroedFileFilter } from '../../agent/restore/selective';
import { cleanTree } from '../../agent/restore/clean';

function backup(label: string, stop: string, lsnStop: string): BackupInfoEntry {
  return {
    label, type: 'full', prior: null, reference: [], timestampStart: Date.parse(stop) / 1000 - 60, timestampStop: Date.parse(stop) / 1000,
    lsnStart: '0/1000028', lsnStop, archiveStart: '', archiveStop: '', size: 1, sizeDelta: 1, repoSize: 1, repoSizeDelta: 1,
    dbId: 1, compressType: 'gz', online: true, archiveCheck: true,
  };
}

describe('which backup a restore uses', () => {
  const backups = [backup('20261101-000000F', '2026-11-01T00:10:00Z', '0/5000100'), backup('20261102-000000F', '2026-11-02T00:10:00Z', '0/9000100')];
  const choose = (set: string, r: Parameters<typeof validateRecoveryTarget>[0]) => chooseBackup('main', backups, set, validateRecoveryTarget(r));

  it('--set wins, and must be a backup of the stanza', () => {
    expect(choose('20261101-000000F', { type: 'time', target: '2026-11-03 00:00:00+00' }).label).toBe('20261101-000000F');
    expect(() => choose('20261105-000000F', {})).toThrow(/not a backup of stanza 'main'/);
    expect(choose('latest', {}).label).toBe('20261102-000000F');
  });

  it('--type time: the newest backup that ended before the target', () => {
    expect(choose('', { type: 'time', target: '2026-11-02 00:10:01+00' })).toMatchObject({ label: '20261102-000000F', reason: expect.stringContaining('ended before the target time') });
    expect(choose('', { type: 'time', target: '2026-11-02 00:10:00+00' }).label).toBe('20261101-000000F');
    expect(() => choose('', { type: 'time', target: '2026-11-01 00:00:00+00' })).toThrow(/no backup of stanza 'main' ended before/);
    expect(() => choose('', { type: 'time', target: 'tomorrow noon' })).toThrow(/YYYY-MM-DD HH:MM:SS/);
  });

  it('--type lsn: the newest backup that stopped at or before the target; others: the newest', () => {
    expect(choose('', { type: 'lsn', target: '0/9000100' }).label).toBe('20261102-000000F');
    expect(choose('', { type: 'lsn', target: '0/8000000' }).label).toBe('20261101-000000F');
    expect(() => choose('', { type: 'lsn', target: '0/100' })).toThrow(/stopped at or before LSN/);
    expect(choose('', { type: 'xid', target: '5' }).label).toBe('20261102-000000F');
    expect(() => chooseBackup('main', [], '', validateRecoveryTarget(null))).toThrow(/has no backups/);
  });
});

describe('--db-include', () => {
  const m = {
    backup: { label: '20261101-000000F' },
    databases: [
      { name: 'postgres', oid: 5, lastSystemOid: 0 }, { name: 'template1', oid: 1, lastSystemOid: 0 },
      { name: 'app', oid: 16384, lastSystemOid: 0 }, { name: 'reports', oid: 16390, lastSystemOid: 0 },
    ],
    files: [{ name: 'pg_data/base/16384/PG_VERSION' }, { name: 'pg_data/base/16401/PG_VERSION' }, { name: 'pg_tblspc/16500/PG_15_202209061/16402/PG_VERSION' }],
  } as unknown as Manifest;

  it('zeroes every user database not named, including ones that only have files', () => {
    expect(zeroedDatabases(m, [])).toEqual({ oids: [], names: [] });
    expect(zeroedDatabases(m, ['app'])).toEqual({ oids: [16390, 16401, 16402], names: ['reports (16390)', '? (16401)', '? (16402)'] });
    expect(zeroedDatabases(m, ['16390', 'app']).oids).toEqual([16401, 16402]);
  });

  it('refuses a database the backup lacks, and system databases', () => {
    expect(() => zeroedDatabases(m, ['nope'])).toThrow(/--db-include nope: backup 20261101-000000F has no such database \(its user databases: app \(16384\), reports \(16390\)/);
    expect(() => zeroedDatabases(m, ['postgres'])).toThrow(/system databases .* are always restored/);
  });

  it('zeroes the files of those databases but their PG_VERSION, in the data directory and in tablespaces', () => {
    const zeroed = zeroedFileFilter([16390]);
    expect(zeroed('pg_data/base/16390/16400')).toBe(true);
    expect(zeroed('pg_data/base/16390/16400_fsm')).toBe(true);
    expect(zeroed('pg_tblspc/16500/PG_15_202209061/16390/16410')).toBe(true);
    expect(zeroed('pg_data/base/16390/PG_VERSION')).toBe(false);
    expect(zeroed('pg_data/base/16384/16400')).toBe(false);
    expect(zeroed('pg_data/global/16390')).toBe(false);
    expect(zeroedFileFilter([])('pg_data/base/16390/1')).toBe(false);
  });
});

describe('tablespace mapping', () => {
  const links = [
    { name: 'pg_data/pg_tblspc/16500', destination: '/srv/ts1', user: '', group: '', tablespace_oid: 16500, tablespace_name: 'ts1' },
    { name: 'pg_data/pg_tblspc/16501', destination: '/srv/ts2', user: '', group: '', tablespace_oid: 16501, tablespace_name: 'ts2' },
  ];
  const map = (m: Array<{ name: string; path: string }>, all = '') => tablespaceTargets(links, 'L', '/pg/data', m, all);

  it('by name or oid, --tablespace-map-all/<name> for the rest, else where they were', () => {
    expect([...map([])]).toEqual([[16500, '/srv/ts1'], [16501, '/srv/ts2']]);
    expect([...map([{ name: 'ts1', path: '/new/one' }])]).toEqual([[16500, '/new/one'], [16501, '/srv/ts2']]);
    expect([...map([{ name: '16501', path: '/new/two' }], '/all')]).toEqual([[16501, '/new/two'], [16500, '/all/ts1']]);
  });

  it('refuses unknown tablespaces, relative paths, conflicts and places inside the data directory', () => {
    expect(() => map([{ name: 'ts9', path: '/x' }])).toThrow(/does not have \(it has: ts1 \(16500\), ts2 \(16501\)\)/);
    expect(() => map([{ name: 'ts1', path: 'rel' }])).toThrow(/must be absolute/);
    expect(() => map([], 'rel')).toThrow(/--tablespace-map-all rel: the path must be absolute/);
    expect(() => map([{ name: 'ts1', path: '/a' }, { name: '16500', path: '/b' }])).toThrow(/to both/);
    expect(() => map([{ name: 'ts1', path: '/same' }, { name: 'ts2', path: '/same' }])).toThrow(/both be restored to \/same/);
    expect(() => map([{ name: 'ts1', path: '/pg/data/ts' }])).toThrow(/inside the data directory/);
  });
});

describe('delta clean', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  it('removes what the manifest lacks, keeps what it has, and never follows a link out of the tree', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pgrepo-clean-'));
    dirs.push(root);
    const data = path.join(root, 'data');
    const outside = path.join(root, 'outside');
    for (const d of [data, outside, path.join(data, 'base/5'), path.join(data, 'pg_wal'), path.join(data, 'base/999'), path.join(data, 'pg_tblspc')]) fs.mkdirSync(d, { recursive: true });
    for (const f of ['PG_VERSION', 'base/5/1259', 'base/5/extra', 'pg_wal/000000010000000000000001', 'base/999/1', 'postmaster.pid', 'postgresql.auto.conf']) fs.writeFileSync(path.join(data, f), 'x');
    fs.writeFileSync(path.join(outside, 'precious'), 'x');
    fs.symlinkSync(outside, path.join(data, 'stray-link'));
    fs.symlinkSync('/srv/ts-old', path.join(data, 'pg_tblspc/16500'));
    fs.symlinkSync(outside, path.join(data, 'base/5/1249')); // a link where a file belongs
    const removed: string[] = [];
    const n = await cleanTree({ name: 'pg_data', dir: data }, {
      files: new Set(['pg_data/PG_VERSION', 'pg_data/base/5/1259', 'pg_data/base/5/1249']),
      paths: new Set(['pg_data', 'pg_data/base', 'pg_data/base/5', 'pg_data/pg_wal', 'pg_data/pg_tblspc']),
      links: new Map([['pg_data/pg_tblspc/16500', '/srv/ts-new']]),
    }, new Set(['postgresql.auto.conf']), (p) => removed.push(path.relative(data, p)));
    expect(removed.sort()).toEqual(['base/5/1249', 'base/5/extra', 'base/999', 'pg_tblspc/16500', 'pg_wal/000000010000000000000001', 'postmaster.pid', 'stray-link']);
    expect(n).toBe(7);
    expect(fs.existsSync(path.join(outside, 'precious'))).toBe(true);
    for (const kept of ['PG_VERSION', 'base/5/1259', 'postgresql.auto.conf', 'pg_wal']) expect(fs.existsSync(path.join(data, kept)), kept).toBe(true);
  });
});
