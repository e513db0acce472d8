/**
 * Issue 2's scenario, end to end with real processes and real mTLS on loopback:
 * a PostgreSQL 15 cluster with rows in the default tablespace and in a second one →
 * stanza-create → full backup → more rows + pg_switch_wal (archived) → info →
 * restore through a second agent into a new directory with the tablespace moved →
 * start it → it replays the archive, promotes, and every row of both steps is there.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { expectSuccess } from '../harness/expect';
import { useFixture } from '../harness/fixture';
import { clusterAt, query, startCluster, switchWal, systemIdentifier, tableDigest, waitForArchived, type Cluster } from '../harness/pg';
import { scenario } from '../harness/scenario';
import { waitUntil } from '../harness/system';

const FULL_LABEL = /^\d{8}-\d{6}F$/;
const SEGMENT = /^[0-9A-F]{24}$/;

interface Digest {
  count: number;
  sum: string;
}

/** "0/2000028" → 0x2000028 */
function lsnValue(lsn: string): bigint {
  const m = /^([0-9A-F]+)\/([0-9A-F]+)$/i.exec(lsn);
  if (!m) throw new Error(`not an LSN: ${lsn}`);
  return (BigInt(`0x${m[1]}`) << 32n) + BigInt(`0x${m[2]}`);
}

/** The system-id as written (JSON numbers that large lose precision in JSON.parse). */
function rawSystemIds(json: string): string[] {
  return [...json.matchAll(/"system-id"\s*:\s*"?(\d+)"?/g)].map((m) => m[1]);
}

describe('full backup and restore of a real PostgreSQL 15 cluster over mutual TLS', () => {
  const fixture = useFixture();
  const step = scenario();

  const TABLES = ['t_main', 't_ts', 't_after'] as const;
  const s: {
    tsDir?: string;
    tsOid?: number;
    sysId?: string;
    before?: Record<string, Digest>;
    after?: Record<string, Digest>;
    label?: string;
    lastSegment?: string;
    restoreTs?: string;
    restored?: Cluster;
  } = {};

  step('creates a tablespace and tables with known rows in both tablespaces', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    s.tsDir = await fx.newDir('ts1');
    await query(c, `create tablespace ts1 location '${s.tsDir}'`);
    const [ts] = await query<{ oid: number }>(c, "select oid::int as oid from pg_tablespace where spcname = 'ts1'");
    s.tsOid = ts.oid;
    // big enough that the main table's file is several MB (more than one chunk on the wire)
    await query(c, 'create table t_main (id int primary key, v text, at timestamptz default now())');
    await query(c, "insert into t_main (id, v) select g, repeat(md5(g::text), 3) from generate_series(1, 60000) g");
    await query(c, 'create table t_ts (id int, v text) tablespace ts1');
    await query(c, 'create index t_ts_id on t_ts (id) tablespace ts1');
    await query(c, "insert into t_ts select g, md5((g * 7)::text) from generate_series(1, 20000) g");
    await query(c, 'checkpoint');
    s.before = { t_main: await tableDigest(c, 't_main'), t_ts: await tableDigest(c, 't_ts') };
    expect(s.before.t_main.count).toBe(60000);
    expect(s.before.t_ts.count).toBe(20000);
    s.sysId = await systemIdentifier(c);
  });

  step('stanza-create records the cluster', async () => {
    const fx = fixture();
    expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'repoctl stanza-create');
    const info = await fx.repoctl(['info', '--stanza', 'main', '--output', 'json']);
    expectSuccess(info, 'repoctl info after stanza-create');
    const parsed = JSON.parse(info.stdout) as Array<{ name: string; db: Array<{ version: string }> }>;
    const stanza = parsed.find((x) => x.name === 'main');
    expect(stanza, info.stdout).toBeDefined();
    expect(stanza!.db.length, info.stdout).toBeGreaterThanOrEqual(1);
    expect(String(stanza!.db[0].version)).toBe('15');
    expect(rawSystemIds(info.stdout), info.stdout).toContain(s.sysId);
  });

  step(
    'a full backup completes and is stored in the repository layout',
    async () => {
      const fx = fixture();
      const res = await fx.repoctl(['backup', '--stanza', 'main', '--type', 'full', '--start-fast', '--archive-timeout', '60'], { timeoutMs: 200_000 });
      expectSuccess(res, 'repoctl backup --type full');

      const stanzaDir = path.join(fx.repoDir, 'backup', 'main');
      const labels = fs.readdirSync(stanzaDir).filter((n) => FULL_LABEL.test(n));
      expect(labels, `backup dirs in ${stanzaDir}`).toHaveLength(1);
      s.label = labels[0];
      const dir = path.join(stanzaDir, s.label);
      for (const f of ['backup.manifest', 'backup.manifest.copy']) expect(fs.existsSync(path.join(dir, f)), `${dir}/${f}`).toBe(true);
      for (const f of ['backup.info', 'backup.info.copy']) expect(fs.existsSync(path.join(stanzaDir, f)), `${stanzaDir}/${f}`).toBe(true);
      expect(fs.readlinkSync(path.join(stanzaDir, 'latest'))).toMatch(new RegExp(`(^|/)${s.label}$`));
      expect(fs.existsSync(path.join(dir, 'pg_data', 'PG_VERSION.zst')), 'pg_data/PG_VERSION.zst (zst is the default)').toBe(true);
      expect(fs.existsSync(path.join(dir, 'pg_data', 'backup_label.zst')), 'pg_data/backup_label.zst').toBe(true);
      expect(fs.existsSync(path.join(dir, 'pg_data', 'tablespace_map.zst')), 'pg_data/tablespace_map.zst').toBe(true);
      // excluded: the live cluster's pid file and WAL
      expect(fs.existsSync(path.join(dir, 'pg_data', 'postmaster.pid.zst'))).toBe(false);
      const walDir = path.join(dir, 'pg_data', 'pg_wal');
      const walFiles = fs.existsSync(walDir) ? fs.readdirSync(walDir).filter((n) => /^[0-9A-F]{24}/.test(n)) : [];
      expect(walFiles).toEqual([]);
    },
    240_000,
  );

  step('more rows after the backup, a WAL switch, and the segment is archived', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    await query(c, "insert into t_main (id, v) select g, 'after ' || g from generate_series(60001, 61000) g");
    await query(c, "update t_main set v = 'changed' where id % 1000 = 0");
    await query(c, "insert into t_ts select g, 'after ' || g from generate_series(20001, 21500) g");
    await query(c, 'create table t_after (id int, v text) tablespace ts1');
    await query(c, "insert into t_after select g, md5(g::text) from generate_series(1, 500) g");
    s.after = {};
    for (const t of TABLES) s.after[t] = await tableDigest(c, t);
    expect(s.after.t_main.count).toBe(61000);
    expect(s.after.t_ts.count).toBe(21500);
    s.lastSegment = await switchWal(c);
    await waitForArchived(c, s.lastSegment, 90_000);
  });

  step('info --output json describes the stanza, the archive and the one full backup', async () => {
    const fx = fixture();
    for (const args of [['info', '--output', 'json'], ['info', '--stanza', 'main', '--output', 'json']]) {
      const res = await fx.repoctl(args);
      expectSuccess(res, `repoctl ${args.join(' ')}`);
      const all = JSON.parse(res.stdout) as unknown;
      expect(Array.isArray(all), res.stdout).toBe(true);
      const stanza = (all as Array<Record<string, any>>).find((x) => x.name === 'main');
      expect(stanza, res.stdout).toBeDefined();
      expect(stanza!.status.code, res.stdout).toBe(0);
      expect(typeof stanza!.status.message).toBe('string');

      expect(stanza!.db.length).toBeGreaterThanOrEqual(1);
      expect(rawSystemIds(res.stdout)).toContain(s.sysId);

      expect(stanza!.archive.length, res.stdout).toBeGreaterThanOrEqual(1);
      const archive = stanza!.archive[0];
      expect(archive.id).toBe('15-1');
      expect(archive.min).toMatch(SEGMENT);
      expect(archive.max).toMatch(SEGMENT);
      expect(archive.min <= archive.max).toBe(true);
      expect(archive.max >= s.lastSegment!, `archive max ${archive.max} vs last switched ${s.lastSegment}`).toBe(true);

      expect(stanza!.backup, res.stdout).toHaveLength(1);
      const b = stanza!.backup[0];
      expect(b.label).toBe(s.label);
      expect(b.label).toMatch(FULL_LABEL);
      expect(b.type).toBe('full');
      expect(b.prior).toBeNull();
      expect(b.reference == null || (Array.isArray(b.reference) && b.reference.length === 0), `reference ${JSON.stringify(b.reference)}`).toBe(true);
      expect(typeof b.timestamp.start).toBe('number');
      expect(b.timestamp.start).toBeLessThanOrEqual(b.timestamp.stop);
      // the label is the start time (UTC or local): within a day of timestamp.start
      const t = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})F$/.exec(b.label)!;
      const labelTime = Date.UTC(+t[1], +t[2] - 1, +t[3], +t[4], +t[5], +t[6]) / 1000;
      expect(Math.abs(labelTime - b.timestamp.start)).toBeLessThan(86_400);
      expect(lsnValue(b.lsn.start)).toBeLessThanOrEqual(lsnValue(b.lsn.stop));
      expect(b.info.size).toBeGreaterThan(0);
      expect(b.info.delta).toBeGreaterThan(0);
      expect(b.info.delta).toBeLessThanOrEqual(b.info.size);
      expect(b.info.repository.size).toBeGreaterThan(0);
      expect(b.info.repository.delta).toBeGreaterThan(0);
      // 60k rows of repeated md5 compress well: stored bytes < original bytes
      expect(b.info.repository.size).toBeLessThan(b.info.size);
    }
  });

  step('info prints a readable summary', async () => {
    const fx = fixture();
    const res = await fx.repoctl(['info', '--stanza', 'main']);
    expectSuccess(res, 'repoctl info');
    expect(res.stdout).toMatch(/stanza:?\s+main/i);
    expect(res.stdout).toContain(s.label!);
    expect(res.stdout).toMatch(/full/i);
    expect(() => JSON.parse(res.stdout)).toThrow();
  });

  step(
    'restore through agent db2 into a new directory, moving the tablespace',
    async () => {
      const fx = fixture();
      s.restoreTs = path.join(await fx.newDir('restore-ts-parent'), 'ts1');
      const res = await fx.repoctl(
        ['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', fx.restoreDir, '--tablespace-map', `ts1=${s.restoreTs}`],
        { timeoutMs: 200_000 },
      );
      expectSuccess(res, 'repoctl restore --host db2');

      const d = fx.restoreDir;
      expect(fs.existsSync(path.join(d, 'PG_VERSION'))).toBe(true);
      expect(fs.readFileSync(path.join(d, 'PG_VERSION'), 'utf8').trim()).toBe('15');
      expect(fs.existsSync(path.join(d, 'global', 'pg_control'))).toBe(true);
      expect(fs.existsSync(path.join(d, 'backup_label')), 'backup_label restored').toBe(true);
      expect(fs.existsSync(path.join(d, 'recovery.signal')), 'recovery.signal written').toBe(true);
      expect(fs.existsSync(path.join(d, 'postmaster.pid'))).toBe(false);
      expect(fs.statSync(path.join(d, 'pg_wal')).isDirectory()).toBe(true);
      // PostgreSQL refuses a data directory group/other can write or other can read
      expect(fs.statSync(d).mode & 0o027).toBe(0);
      // files have the modes they had (set when created, or after)
      for (const f of ['PG_VERSION', path.join('global', 'pg_filenode.map'), path.join('global', 'pg_control')]) {
        expect(fs.statSync(path.join(d, f)).mode & 0o7777, `${f}'s mode`).toBe(fs.statSync(path.join(fx.cluster1.dir, f)).mode & 0o7777);
      }
      const conf = ['postgresql.auto.conf', 'postgresql.conf'].map((f) => fs.readFileSync(path.join(d, f), 'utf8')).join('\n');
      expect(conf).toMatch(/^\s*restore_command\s*=.*pgrepo-archive get /m);
      const link = path.join(d, 'pg_tblspc', String(s.tsOid));
      expect(fs.lstatSync(link).isSymbolicLink(), `${link} is a symlink`).toBe(true);
      expect(fs.readlinkSync(link)).toBe(s.restoreTs);
      expect(fs.readdirSync(s.restoreTs!).some((n) => n.startsWith('PG_15_')), `${s.restoreTs} has PG_15_*`).toBe(true);
    },
    240_000,
  );

  step(
    'the restored cluster starts, replays the archived WAL and promotes',
    async () => {
      const fx = fixture();
      s.restored = clusterAt({ name: 'restored', dir: fx.restoreDir, port: fx.restorePort, socketDir: fx.socketDir });
      fx.clusters.push(s.restored);
      // archive_mode=off: the restored copy must not push into the stanza of the cluster it came from
      await startCluster(s.restored, { settings: { archive_mode: 'off' }, timeoutMs: 150_000 });
      await waitUntil(
        'the restored cluster to finish recovery (pg_is_in_recovery() = false)',
        async () => {
          const [r] = await query<{ rec: boolean }>(s.restored!, 'select pg_is_in_recovery() as rec');
          return r.rec === false;
        },
        { timeoutMs: 120_000, intervalMs: 500 },
      );
    },
    300_000,
  );

  step('every row of both steps is there, in the right tablespaces', async () => {
    const r = s.restored!;
    for (const t of TABLES) {
      expect(await tableDigest(r, t), `table ${t}`).toEqual(s.after![t]);
    }
    const [loc] = await query<{ loc: string }>(r, "select pg_tablespace_location(oid) as loc from pg_tablespace where spcname = 'ts1'");
    expect(loc.loc).toBe(s.restoreTs);
    const inTs = await query<{ relname: string }>(
      r,
      "select c.relname from pg_class c join pg_tablespace t on t.oid = c.reltablespace where t.spcname = 'ts1' and c.relnamespace = 'public'::regnamespace order by 1",
    );
    expect(inTs.map((x) => x.relname)).toEqual(['t_after', 't_ts', 't_ts_id']);
    // same cluster identity, and a new timeline after the promotion at the end of the archive
    expect(await systemIdentifier(r)).toBe(s.sysId);
    const [tl] = await query<{ tli: string }>(r, 'select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) as tli');
    expect(tl.tli).toBe('00000002');
    // heap and indexes agree (amcheck ships with Debian's postgresql-15)
    await query(r, 'create extension if not exists amcheck');
    for (const ix of ['t_main_pkey', 't_ts_id']) await query(r, `select bt_index_check('${ix}'::regclass, true)`);
  });
});
