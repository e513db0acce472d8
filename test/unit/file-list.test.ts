import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { listDataDirectory, type FileList } from '../../agent/backup/file-list';

// Lets a test make a file or directory disappear between readdir and lstat, as a DROP TABLE during a backup does.
const hooks = vi.hoisted(() => ({
  beforeLstat: undefined as undefined | ((p: string) => Promise<void>),
  beforeReaddir: undefined as undefined | ((p: string) => Promise<void>),
}));

vi.mock('node:fs/promises', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:fs/promises')>();
  return {
    ...actual,
    lstat: async (p: string) => {
      await hooks.beforeLstat?.(String(p));
      return actual.lstat(p);
    },
    readdir: async (p: string) => {
      await hooks.beforeReaddir?.(String(p));
      return actual.readdir(p);
    },
  };
});

const CATALOG_VERSION = 202209061;
const TS_DIR = `PG_15_${CATALOG_VERSION}`;

let tmp: string;
let pgData: string;

async function write(rel: string, size = 1, root = pgData): Promise<string> {
  const file = path.join(root, rel);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, Buffer.alloc(size, 1));
  return file;
}

async function mkdir(rel: string, root = pgData): Promise<void> {
  await fs.mkdir(path.join(root, rel), { recursive: true });
}

// The first pg_control fields are the same in every version: system id (8), control version (4), catalog version (4).
async function writePgControl(): Promise<void> {
  const control = Buffer.alloc(8192);
  control.writeBigUInt64LE(7711749919240497784n, 0);
  control.writeUInt32LE(1300, 8);
  control.writeUInt32LE(CATALOG_VERSION, 12);
  await mkdir('global');
  await fs.writeFile(path.join(pgData, 'global', 'pg_control'), control);
  await fs.writeFile(path.join(pgData, 'PG_VERSION'), '15\n');
}

const fileNames = (list: FileList) => list.files.map((f) => f.name).sort();
const pathNames = (list: FileList) => list.paths.map((p) => p.name);

beforeEach(async () => {
  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgrepo-fl-'));
  pgData = path.join(tmp, 'data');
  await fs.mkdir(pgData, { mode: 0o700 });
  await writePgControl();
});

afterEach(async () => {
  hooks.beforeLstat = undefined;
  hooks.beforeReaddir = undefined;
  await fs.rm(tmp, { recursive: true, force: true });
});

describe('listDataDirectory exclusions', () => {
  it('skips what pgBackRest skips and keeps the rest', async () => {
    const kept = [
      'postgresql.conf',
      'postgresql.auto.conf',
      'pg_hba.conf',
      'global/1262',
      'base/1/1259',
      'base/1/1259_fsm',
      'base/1/1259_vm',
      'base/1/1259.1',
      'base/1/PG_VERSION',
      'base/1/pg_filenode.map',
      'pg_xact/0000',
      'pg_logical/backup_label', // only the root backup_label is special
      't1_2', // temp-relation names matter only in database directories
      'pg_internal.init',
    ];
    const skipped = [
      'postmaster.pid',
      'postmaster.opts',
      'backup_label',
      'backup_label.old',
      'postgresql.auto.conf.tmp',
      'recovery.signal',
      'standby.signal',
      'recovery.conf',
      'recovery.done',
      'backup_manifest',
      'backup_manifest.tmp',
      'tablespace_map',
      'current_logfiles.tmp',
      'pg_dynshmem/mmap.1',
      'pg_notify/0000',
      'pg_replslot/slot1/state',
      'pg_serial/0000',
      'pg_snapshots/00000003-1',
      'pg_stat_tmp/global.stat',
      'pg_subtrans/0000',
      'pg_wal/000000010000000000000001',
      'pg_wal/000000010000000000000002.partial',
      'pg_wal/archive_status/000000010000000000000001.done',
      'pg_wal/summaries/0000000100000000010000000000000001000000.summary',
      'global/pg_internal.init',
      'base/1/pg_internal.init',
      'base/1/pg_internal.init.12345',
      'base/1/t3_16500',
      'base/1/t3_16500_fsm',
      'base/1/t3_16500_vm',
      'base/1/t3_16500_init',
      'base/1/t3_16500.2',
      'base/pgsql_tmp/pgsql_tmp123.0',
      'base/1/pgsql_tmp_x',
      'pgsql_tmp_root_file',
    ];
    for (const f of [...kept, ...skipped]) await write(f);

    const list = await listDataDirectory(pgData);

    const alreadyThere = ['PG_VERSION', 'global/pg_control'];
    expect(fileNames(list)).toEqual([...alreadyThere, ...kept].map((f) => `pg_data/${f}`).sort());
    expect(pathNames(list)).toEqual(
      [
        'pg_data',
        'pg_data/base',
        'pg_data/base/1',
        'pg_data/global',
        'pg_data/pg_dynshmem',
        'pg_data/pg_logical',
        'pg_data/pg_notify',
        'pg_data/pg_replslot',
        'pg_data/pg_serial',
        'pg_data/pg_snapshots',
        'pg_data/pg_stat_tmp',
        'pg_data/pg_subtrans',
        'pg_data/pg_wal',
        'pg_data/pg_wal/archive_status',
        'pg_data/pg_wal/summaries',
        'pg_data/pg_xact',
      ].sort(),
    );
    expect(list.links).toEqual([]);
    expect(list.tablespaces).toEqual([]);
  });

  it('drops every fork of an unlogged relation except its init fork', async () => {
    const logged = ['16384', '16384_fsm', '16384_vm', '16384.1', '16384.12'];
    const unlogged = ['16400', '16400_fsm', '16400_vm', '16400.1', '16400.2'];
    for (const f of [...logged, ...unlogged, '16400_init']) await write(`base/5/${f}`);
    // an init fork in another database must not affect this one
    await write('base/6/16384_init');
    await write('base/6/16400');

    const list = await listDataDirectory(pgData);
    const names = fileNames(list).filter((n) => n.startsWith('pg_data/base/'));

    expect(names).toEqual(
      [...logged.map((f) => `pg_data/base/5/${f}`), 'pg_data/base/5/16400_init', 'pg_data/base/6/16384_init', 'pg_data/base/6/16400'].sort(),
    );
  });

  it('does not apply relation rules outside database directories', async () => {
    await write('pg_logical/mappings/16400');
    await write('pg_logical/mappings/16400_init');
    await write('pg_logical/mappings/pg_internal.init');
    const list = await listDataDirectory(pgData);
    expect(fileNames(list)).toEqual(
      expect.arrayContaining([
        'pg_data/pg_logical/mappings/16400',
        'pg_data/pg_logical/mappings/16400_init',
        'pg_data/pg_logical/mappings/pg_internal.init',
      ]),
    );
  });
});

describe('listDataDirectory metadata and order', () => {
  it('reports size, integer mtime, octal mode and owner', async () => {
    const file = await write('base/1/1259', 8192);
    await fs.chmod(file, 0o640);
    await fs.utimes(file, 1_700_000_000.75, 1_700_000_123.75);
    await fs.chmod(pgData, 0o750);

    const list = await listDataDirectory(pgData);
    const entry = list.files.find((f) => f.name === 'pg_data/base/1/1259');

    expect(entry).toEqual({
      name: 'pg_data/base/1/1259',
      absPath: file,
      size: 8192,
      mtime: 1_700_000_123,
      mode: '0640',
      uid: process.getuid!(),
      gid: process.getgid!(),
    });
    expect(list.paths[0]).toMatchObject({ name: 'pg_data', absPath: pgData, mode: '0750' });
  });

  it('sorts files largest first (ties by name) and paths by name', async () => {
    await write('base/1/small', 10);
    await write('base/1/big', 5000);
    await write('global/b_mid', 300);
    await write('global/a_mid', 300);
    const list = await listDataDirectory(pgData);

    const sizes = list.files.map((f) => f.size);
    expect(sizes).toEqual([...sizes].sort((a, b) => b - a));
    expect(list.files[0]!.name).toBe('pg_data/global/pg_control'); // 8192 bytes
    expect(list.files[1]!.name).toBe('pg_data/base/1/big');
    expect(list.files[2]!.name).toBe('pg_data/global/a_mid');
    expect(list.files[3]!.name).toBe('pg_data/global/b_mid');
    const names = pathNames(list);
    expect(names).toEqual([...names].sort());
  });

  it('handles a deep tree without recursion problems', async () => {
    const deep = Array.from({ length: 200 }, (_, i) => `d${i}`).join('/');
    await write(`pg_logical/${deep}/f`);
    const list = await listDataDirectory(pgData);
    expect(fileNames(list)).toContain(`pg_data/pg_logical/${deep}/f`);
  });
});

describe('listDataDirectory tablespaces and links', () => {
  it('follows pg_tblspc links, names files pg_tblspc/<oid>/..., and lists only this version', async () => {
    const tsRoot = path.join(tmp, 'ts1');
    await write(`${TS_DIR}/5/16390`, 100, tsRoot);
    await write(`${TS_DIR}/5/16391`, 100, tsRoot); // unlogged
    await write(`${TS_DIR}/5/16391_fsm`, 100, tsRoot);
    await write(`${TS_DIR}/5/16391_init`, 100, tsRoot);
    await write(`${TS_DIR}/5/pg_internal.init`, 100, tsRoot);
    await write(`${TS_DIR}/5/t4_16392`, 100, tsRoot);
    await write(`${TS_DIR}/pgsql_tmp/pgsql_tmp99.1`, 100, tsRoot);
    await write('PG_14_202107181/5/999', 100, tsRoot); // left behind by pg_upgrade, not ours
    await mkdir('pg_tblspc');
    await fs.symlink(tsRoot, path.join(pgData, 'pg_tblspc', '16384'));

    const list = await listDataDirectory(pgData);

    expect(list.tablespaces).toEqual([{ oid: 16384, path: tsRoot }]);
    expect(list.links).toEqual([
      { name: 'pg_data/pg_tblspc/16384', destination: tsRoot, uid: process.getuid!(), gid: process.getgid!(), tablespaceOid: 16384 },
    ]);
    const tsFiles = list.files.filter((f) => f.name.startsWith('pg_tblspc/'));
    expect(tsFiles.map((f) => f.name).sort()).toEqual([
      `pg_tblspc/16384/${TS_DIR}/5/16390`,
      `pg_tblspc/16384/${TS_DIR}/5/16391_init`,
    ]);
    expect(tsFiles.find((f) => f.name.endsWith('/16390'))!.absPath).toBe(path.join(tsRoot, TS_DIR, '5', '16390'));
    expect(pathNames(list)).toEqual(
      expect.arrayContaining(['pg_data/pg_tblspc', 'pg_tblspc/16384', `pg_tblspc/16384/${TS_DIR}`, `pg_tblspc/16384/${TS_DIR}/5`]),
    );
    expect(pathNames(list).some((n) => n.includes('PG_14') || n.includes('pgsql_tmp'))).toBe(false);
    expect(list.paths.find((p) => p.name === 'pg_tblspc/16384')!.absPath).toBe(tsRoot);
  });

  it('lists every version directory of a tablespace when the catalog version is unknown', async () => {
    await fs.rm(path.join(pgData, 'global', 'pg_control'));
    const tsRoot = path.join(tmp, 'ts1');
    await write(`${TS_DIR}/5/16390`, 1, tsRoot);
    await write('PG_14_202107181/5/999', 1, tsRoot);
    await mkdir('pg_tblspc');
    await fs.symlink(tsRoot, path.join(pgData, 'pg_tblspc', '16384'));
    const list = await listDataDirectory(pgData);
    expect(fileNames(list)).toEqual(
      expect.arrayContaining([`pg_tblspc/16384/${TS_DIR}/5/16390`, 'pg_tblspc/16384/PG_14_202107181/5/999']),
    );
  });

  it('resolves a relative tablespace link against pg_tblspc', async () => {
    await write(`${TS_DIR}/5/16390`, 1, path.join(tmp, 'ts2'));
    await mkdir('pg_tblspc');
    await fs.symlink('../../ts2', path.join(pgData, 'pg_tblspc', '20000'));
    const list = await listDataDirectory(pgData);
    expect(list.tablespaces).toEqual([{ oid: 20000, path: path.join(tmp, 'ts2') }]);
    expect(list.links[0]!.destination).toBe('../../ts2');
    expect(fileNames(list)).toContain(`pg_tblspc/20000/${TS_DIR}/5/16390`);
  });

  it('refuses a directory in pg_tblspc', async () => {
    await mkdir('pg_tblspc/16384');
    await expect(listDataDirectory(pgData)).rejects.toThrow(/only <oid> symlinks/);
  });

  it('refuses a dangling tablespace link', async () => {
    await mkdir('pg_tblspc');
    await fs.symlink(path.join(tmp, 'gone'), path.join(pgData, 'pg_tblspc', '16384'));
    await expect(listDataDirectory(pgData)).rejects.toThrow(/dangling/);
  });

  it('treats a linked pg_wal as pg_wal and records the link', async () => {
    const walDir = path.join(tmp, 'wal');
    await write('000000010000000000000001', 100, walDir);
    await write('archive_status/000000010000000000000001.ready', 1, walDir);
    await fs.symlink(walDir, path.join(pgData, 'pg_wal'));

    const list = await listDataDirectory(pgData);

    expect(list.links).toEqual([{ name: 'pg_data/pg_wal', destination: walDir, uid: process.getuid!(), gid: process.getgid!() }]);
    expect(list.files.some((f) => f.name.startsWith('pg_data/pg_wal'))).toBe(false);
    expect(list.paths.filter((p) => p.name.startsWith('pg_data/pg_wal'))).toEqual([
      expect.objectContaining({ name: 'pg_data/pg_wal', absPath: walDir }),
      expect.objectContaining({ name: 'pg_data/pg_wal/archive_status', absPath: path.join(walDir, 'archive_status') }),
    ]);
    expect(list.tablespaces).toEqual([]);
  });

  it('records a linked file and lists its target under the link name', async () => {
    const conf = await write('postgresql.conf', 123, path.join(tmp, 'etc'));
    await fs.symlink(conf, path.join(pgData, 'postgresql.conf'));
    const list = await listDataDirectory(pgData);
    expect(list.links.map((l) => l.name)).toEqual(['pg_data/postgresql.conf']);
    expect(list.files.find((f) => f.name === 'pg_data/postgresql.conf')).toMatchObject({ absPath: conf, size: 123 });
  });

  it('drops a linked file that is excluded, link and all', async () => {
    const opts = await write('postmaster.opts', 1, path.join(tmp, 'run'));
    await fs.symlink(opts, path.join(pgData, 'postmaster.opts'));
    const list = await listDataDirectory(pgData);
    expect(list.links).toEqual([]);
    expect(fileNames(list)).not.toContain('pg_data/postmaster.opts');
  });

  it('keeps a dangling link and warns', async () => {
    await fs.symlink(path.join(tmp, 'nowhere'), path.join(pgData, 'pg_log'));
    const warnings: string[] = [];
    const list = await listDataDirectory(pgData, { warn: (m) => warnings.push(m) });
    expect(list.links.map((l) => l.name)).toEqual(['pg_data/pg_log']);
    expect(warnings.join('\n')).toMatch(/points at nothing/);
  });

  it('refuses a link that leads back into PGDATA', async () => {
    await fs.symlink(pgData, path.join(pgData, 'loop'));
    await expect(listDataDirectory(pgData)).rejects.toThrow(/reached twice/);
  });
});

describe('listDataDirectory special files and races', () => {
  it('skips sockets and fifos with a warning', async () => {
    const server = net.createServer();
    const sock = path.join(pgData, '.s.PGSQL.5432');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(sock, resolve);
    });
    try {
      execFileSync('mkfifo', [path.join(pgData, 'fifo')]);
      const warnings: string[] = [];
      const list = await listDataDirectory(pgData, { warn: (m) => warnings.push(m) });
      expect(fileNames(list)).not.toContain('pg_data/.s.PGSQL.5432');
      expect(fileNames(list)).not.toContain('pg_data/fifo');
      expect(warnings.filter((w) => w.includes('special file'))).toHaveLength(2);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('silently skips a file that disappears during the walk', async () => {
    await write('base/5/16400');
    const victim = await write('base/5/16401');
    hooks.beforeLstat = async (p) => {
      if (p === victim) await fs.rm(victim);
    };
    const warnings: string[] = [];
    const list = await listDataDirectory(pgData, { warn: (m) => warnings.push(m) });
    expect(fileNames(list)).toContain('pg_data/base/5/16400');
    expect(fileNames(list)).not.toContain('pg_data/base/5/16401');
    expect(warnings).toEqual([]);
  });

  it('silently skips a directory that disappears during the walk', async () => {
    await write('base/5/16400');
    await write('base/6/16400');
    const dropped = path.join(pgData, 'base', '6');
    hooks.beforeReaddir = async (p) => {
      if (p === dropped) await fs.rm(dropped, { recursive: true });
    };
    const list = await listDataDirectory(pgData);
    expect(fileNames(list)).toContain('pg_data/base/5/16400');
    expect(fileNames(list)).not.toContain('pg_data/base/6/16400');
  });

  it('propagates other errors', async () => {
    hooks.beforeReaddir = async (p) => {
      if (p.endsWith('global')) throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    };
    await expect(listDataDirectory(pgData)).rejects.toThrow(/EACCES/);
  });

  it('fails when PGDATA does not exist', async () => {
    await expect(listDataDirectory(path.join(tmp, 'missing'))).rejects.toThrow(/ENOENT/);
  });
});
