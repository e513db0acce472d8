/**
 * Tablespaces, selective restore and delta restore on one real cluster (a tablespace, two user databases):
 * restores through agent db2 with --tablespace-map and --tablespace-map-all, --db-include, and delta restores onto
 * a directory where files were changed, deleted and added, proving from the agent's log which files were fetched;
 * --force, --type standby and --type preserve on top.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { expectRefused, expectSuccess } from '../harness/expect';
import { useFixture, type Fixture } from '../harness/fixture';
import { clusterAt, query, queryDb, stopCluster, type Cluster } from '../harness/pg';
import { NO_ARCHIVING, restoreWith, startAndFinishRecovery, type RestoreResult } from '../harness/restore';
import { scenario } from '../harness/scenario';
import { chownToPostgres, waitUntil } from '../harness/system';

function restore(fx: Fixture, args: string[]): Promise<RestoreResult> {
  return restoreWith(fx, 'db2', ['--process-max', '4', ...args]);
}

async function tablespaceLocation(c: Cluster): Promise<string> {
  const [row] = await query<{ loc: string }>(c, "select pg_tablespace_location(oid) as loc from pg_tablespace where spcname = 'ts1'");
  return row.loc;
}

const sha1 = (file: string) => createHash('sha1').update(fs.readFileSync(file)).digest('hex');
// recovery only to the backup's consistent point: these steps are about files, not WAL
const TO_CONSISTENCY = ['--type', 'immediate', '--target-action', 'promote'];

describe('tablespace remapping, selective and delta restore', () => {
  const fixture = useFixture();
  const step = scenario();
  const s: { tsOid?: number; dropOid?: number; keepOid?: number; restored?: Cluster; mapped?: string; mapAll?: string } = {};

  step('a cluster with a tablespace and two databases, and a full backup', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    const tsDir = await fx.newDir('ts1');
    await query(c, `create tablespace ts1 location '${tsDir}'`);
    s.tsOid = (await query<{ oid: number }>(c, "select oid::int as oid from pg_tablespace where spcname = 'ts1'"))[0].oid;
    await query(c, "create table t_ts tablespace ts1 as select 'in ts1'::text as v");
    await query(c, 'create database keepdb strategy file_copy');
    await query(c, 'create database dropdb strategy file_copy');
    await queryDb(c, 'keepdb', 'create table k as select g from generate_series(1, 1000) g');
    await queryDb(c, 'dropdb', 'create table d as select g, md5(g::text) as m from generate_series(1, 20000) g');
    for (const db of ['keepdb', 'dropdb']) {
      const [row] = await query<{ oid: number }>(c, 'select oid::int as oid from pg_database where datname = $1', [db]);
      if (db === 'keepdb') s.keepOid = row.oid;
      else s.dropOid = row.oid;
    }
    expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'stanza-create');
    expectSuccess(await fx.repoctl(['backup', '--stanza', 'main', '--start-fast', '--process-max', '4'], { timeoutMs: 120_000 }), 'backup');
  });

  step('--db-include of a database the backup lacks, or of a system database, is refused', async () => {
    const fx = fixture();
    expectRefused(await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--db-include', 'nosuchdb']), 'restore --db-include nosuchdb',
      /--db-include nosuchdb: backup \S+ has no such database \(its user databases: dropdb \(\d+\), keepdb \(\d+\)\)/);
    expectRefused(await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--db-include', 'template1']), 'restore --db-include template1', /system databases .* are always restored/);
    expect(fs.existsSync(fx.restoreDir), 'no refused restore created the target').toBe(false);
  });

  step('--tablespace-map moves ts1; the links point there and tablespace_map is not restored', async () => {
    const fx = fixture();
    s.mapped = path.join(await fx.newDir('mapped'), 'ts1');
    await restore(fx, [...TO_CONSISTENCY, '--tablespace-map', `ts1=${s.mapped}`]);
    expect(fs.readlinkSync(path.join(fx.restoreDir, 'pg_tblspc', String(s.tsOid)))).toBe(s.mapped);
    expect(fs.existsSync(path.join(fx.restoreDir, 'tablespace_map')), 'links are made from the mapping, not from tablespace_map').toBe(false);
    s.restored = clusterAt({ name: 'restored', dir: fx.restoreDir, port: fx.restorePort, socketDir: fx.socketDir });
    fx.clusters.push(s.restored);
    await startAndFinishRecovery(s.restored, NO_ARCHIVING);
    expect(await tablespaceLocation(s.restored)).toBe(s.mapped);
    expect(await query(s.restored, 'select v from t_ts')).toEqual([{ v: 'in ts1' }]);
    await stopCluster(s.restored);
  });

  step('--db-include keepdb with --tablespace-map-all: dropdb becomes sparse zeroed files, keepdb is whole', async () => {
    const fx = fixture();
    s.mapAll = await fx.newDir('all-ts');
    const r = await restore(fx, ['--delta', ...TO_CONSISTENCY, '--db-include', 'keepdb', '--tablespace-map-all', s.mapAll]);
    expect(r.restore.files_zeroed).toBeGreaterThan(0);
    expect(fs.readlinkSync(path.join(fx.restoreDir, 'pg_tblspc', String(s.tsOid)))).toBe(path.join(s.mapAll, 'ts1'));
    // the tablespace's previous place is outside what this restore owns: left as it was
    expect(fs.readdirSync(s.mapped!).some((n) => n.startsWith('PG_15_'))).toBe(true);
    const dropDir = path.join(fx.restoreDir, 'base', String(s.dropOid));
    expect(fs.readFileSync(path.join(dropDir, 'PG_VERSION'), 'utf8').trim()).toBe('15');
    const big = fs.readdirSync(dropDir).map((n) => path.join(dropDir, n)).filter((p) => fs.statSync(p).size > 65536);
    expect(big.length, `files over 64 KiB in ${dropDir}`).toBeGreaterThan(0);
    for (const p of big) {
      const st = fs.statSync(p);
      expect(st.blocks * 512, `${p} is sparse`).toBeLessThan(st.size);
      expect(fs.readFileSync(p).every((b) => b === 0), `${p} is zeros`).toBe(true);
    }
    await startAndFinishRecovery(s.restored!, NO_ARCHIVING);
    expect(await tablespaceLocation(s.restored!)).toBe(path.join(s.mapAll, 'ts1'));
    expect(await queryDb(s.restored!, 'keepdb', 'select count(*)::int as n from k')).toEqual([{ n: 1000 }]);
    await expect(queryDb(s.restored!, 'dropdb', 'select count(*) from d')).rejects.toThrow();
    await query(s.restored!, 'drop database dropdb');
    await stopCluster(s.restored!);
  });

  step('delta onto a directory with files changed, deleted and added: only those are fetched, extras removed', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    // the restored cluster of the last step, brought back to the backup (a delta restore too)
    const d = fx.restoreDir;
    const dTs = s.mapAll!;
    const common = ['--tablespace-map-all', dTs];
    await restore(fx, ['--delta', ...common]);

    const kFile = `base/${s.keepOid}/${(await queryDb<{ f: string }>(c, 'keepdb', "select pg_relation_filenode('k')::text as f"))[0].f}`;
    const dFile = `base/${s.dropOid}/${(await queryDb<{ f: string }>(c, 'dropdb', "select pg_relation_filenode('d')::text as f"))[0].f}`;
    expect(fs.statSync(path.join(d, kFile)).size, kFile).toBeGreaterThan(100);
    const changed = ['postgresql.conf', kFile];
    const deleted = ['base/1/PG_VERSION', dFile];
    const original = new Map([...changed, ...deleted].map((f) => [f, sha1(path.join(d, f))]));
    fs.appendFileSync(path.join(d, 'postgresql.conf'), '\n# changed behind the restore\n');
    const flip = (f: string) => {
      const p = path.join(d, f);
      const st = fs.statSync(p);
      const fd = fs.openSync(p, 'r+');
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, 100);
      b[0] ^= 0xff;
      fs.writeSync(fd, b, 0, 1, 100);
      fs.closeSync(fd);
      fs.utimesSync(p, st.atime, st.mtime); // same size, same mtime: only a checksum sees it
    };
    flip(kFile);
    for (const f of deleted) fs.rmSync(path.join(d, f));
    const outside = await fx.newDir('outside');
    fs.writeFileSync(path.join(outside, 'precious'), 'keep me\n');
    const tsVersionDir = path.join(dTs, 'ts1', fs.readdirSync(path.join(dTs, 'ts1')).find((n) => n.startsWith('PG_15_'))!);
    fs.writeFileSync(path.join(d, 'stray-file'), 'x');
    fs.mkdirSync(path.join(d, 'base', 'stray-dir'));
    fs.writeFileSync(path.join(d, 'base', 'stray-dir', 'junk'), 'x');
    fs.symlinkSync(outside, path.join(d, 'stray-link'));
    fs.writeFileSync(path.join(tsVersionDir, 'stray'), 'x');
    fs.writeFileSync(path.join(dTs, 'ts1', 'not-ours'), 'another version or program may keep files here\n');
    for (const p of [path.join(d, 'stray-file'), path.join(d, 'base', 'stray-dir'), path.join(tsVersionDir, 'stray'), path.join(dTs, 'ts1', 'not-ours')]) await chownToPostgres(p, true);

    const agent = await fx.startAgent2({ logLevel: 'debug' });
    const fetchedSince = (mark: number) => agent.findLogs('file fetched', mark).map((e) => String(e.file)).sort();
    // pg_control is removed first by every delta (so a half-done restore cannot start) and postgresql.auto.conf
    // holds the first restore's recovery settings: both are fetched every time
    const always = ['pg_data/global/pg_control', 'pg_data/postgresql.auto.conf'];

    let mark = agent.mark();
    const r = await restore(fx, ['--delta', ...common]);
    expect(fetchedSince(mark)).toEqual([...changed, ...deleted].map((f) => `pg_data/${f}`).concat(always).sort());
    expect(r.restore.files_fetched).toBe(6);
    expect(r.restore.files_checked).toBe(r.files - deleted.length - 1);
    // the four strays, and the first restore's recovery.signal (written again afterwards)
    expect(r.restore.removed).toBe(5);
    for (const [f, sum] of original) expect(sha1(path.join(d, f)), f).toBe(sum);
    for (const gone of ['stray-file', 'base/stray-dir', 'stray-link']) expect(fs.existsSync(path.join(d, gone)), gone).toBe(false);
    expect(fs.existsSync(path.join(tsVersionDir, 'stray'))).toBe(false);
    expect(fs.readFileSync(path.join(outside, 'precious'), 'utf8')).toBe('keep me\n');
    expect(fs.existsSync(path.join(dTs, 'ts1', 'not-ours'))).toBe(true);

    // --force trusts size and time: a same-size, same-mtime change goes unseen; a checksum delta finds it
    flip(kFile);
    mark = agent.mark();
    const forced = await restore(fx, ['--delta', '--force', ...common]);
    expect(forced.restore.mode).toBe('delta (size and time)');
    expect(fetchedSince(mark)).toEqual(always);
    expect(sha1(path.join(d, kFile))).not.toBe(original.get(kFile));
    mark = agent.mark();
    await restore(fx, ['--delta', ...common]);
    expect(fetchedSince(mark)).toEqual([`pg_data/${kFile}`, ...always].sort());
    expect(sha1(path.join(d, kFile))).toBe(original.get(kFile));

    // --type standby writes standby.signal instead of recovery.signal
    await restore(fx, ['--delta', '--type', 'standby', ...common]);
    expect(fs.existsSync(path.join(d, 'standby.signal'))).toBe(true);
    expect(fs.existsSync(path.join(d, 'recovery.signal'))).toBe(false);
    // --type preserve keeps the recovery files found in the target as they are: not fetched, not rewritten
    const autoConf = fs.readFileSync(path.join(d, 'postgresql.auto.conf'), 'utf8');
    expect(autoConf).toMatch(/^restore_command = /m);
    mark = agent.mark();
    const preserved = await restore(fx, ['--delta', '--type', 'preserve', ...common]);
    expect(preserved.restore.recovery).toMatch(/kept/);
    expect(fetchedSince(mark)).toEqual(['pg_data/global/pg_control']);
    expect(fs.readFileSync(path.join(d, 'postgresql.auto.conf'), 'utf8')).toBe(autoConf);
    expect(fs.existsSync(path.join(d, 'standby.signal'))).toBe(true);
  });

  step('a second restore into a directory a restore is writing is refused, and the first completes', async () => {
    const fx = fixture();
    await fx.startAgent2({ extraArgs: ['--test-restore-file-delay-ms', '5'] });
    const target = await fx.newDir('concurrent');
    const common = ['--stanza', 'main', '--host', 'db2', '--pg-path', target, '--tablespace-map-all', await fx.newDir('concurrent-ts')];
    const first = fx.repoctl(['restore', ...common], { timeoutMs: 120_000 });
    await waitUntil('the first restore to write files', async () => fs.readdirSync(target).length > 3, { timeoutMs: 60_000, intervalMs: 20 });
    const second = await fx.repoctl(['restore', ...common, '--delta']);
    expectRefused(second, 'a second restore into the same directory', new RegExp(`a restore into ${target} is already running on this agent`));
    expectSuccess(await first, 'the first restore');
    expect(fs.existsSync(path.join(target, 'global', 'pg_control')), 'the first restore finished, pg_control last').toBe(true);
    await fx.startAgent2();
  });
});
