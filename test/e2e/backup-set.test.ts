/**
 * A backup set on a real cluster: full → changes → incr → changes → diff, with the type chosen
 * by default where none is given; the incr and diff send only what changed (the manifests
 * reference the full for the rest); --delta and a timestamp in the future make checksums decide;
 * restoring the incr and the diff with --set each brings back exactly the rows of its moment,
 * reassembled from every backup the set references.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { expectSuccess } from '../harness/expect';
import { useFixture } from '../harness/fixture';
import { freePort, query, stopCluster, tableDigest, type Cluster } from '../harness/pg';
import { startRestored } from '../harness/restored';
import { scenario } from '../harness/scenario';
import { parseInfo } from '../../shared/info/ini';
import { parseManifest, type Manifest } from '../../shared/info/manifest';

const TABLES = ['t_static', 't_incr', 't_diff'] as const;
type Digests = Record<(typeof TABLES)[number], { count: number; sum: string }>;

interface Result {
  label: string; type: string; prior: string; files: number; files_copied: number; bytes_copied: number; repo_bytes_copied: number;
  files_referenced: number; bytes_referenced: number; delta: boolean; seconds: number;
}

describe('full, incr and diff backups of a real cluster, and restores of each set', () => {
  const fixture = useFixture();
  const step = scenario();
  const s: {
    full?: string; incr?: string; diff?: string;
    atIncr?: Digests; atDiff?: Digests;
    files?: Record<string, string>;
  } = {};

  const digests = async (c: Cluster) => Object.fromEntries(await Promise.all(TABLES.map(async (t) => [t, await tableDigest(c, t)]))) as Digests;
  const manifest = (label: string): Manifest => {
    const file = path.join(fixture().repoDir, 'backup', 'main', label, 'backup.manifest');
    return parseManifest(parseInfo(fs.readFileSync(file, 'utf8'), file));
  };
  const backup = async (args: string[]) => {
    // four files at a time: each file is fsynced on arrival, and a cluster is ~1000 small files
    const res = await fixture().repoctl(['backup', '--stanza', 'main', '--start-fast', '--process-max', '4', ...args], { timeoutMs: 120_000 });
    expectSuccess(res, `repoctl backup ${args.join(' ')}`);
    return res;
  };
  const backupJson = async (args: string[]) => JSON.parse((await backup([...args, '--output', 'json'])).stdout) as Result;
  const fileOf = (m: Manifest, name: string) => m.files.find((f) => f.name === name)!;

  step('tables with rows, stanza-create', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    for (const t of TABLES) await query(c, `create table ${t} (id int, v text)`);
    await query(c, "insert into t_static select g, repeat(md5(g::text), 4) from generate_series(1, 20000) g");
    await query(c, "insert into t_incr select g, md5(g::text) from generate_series(1, 5000) g");
    await query(c, "insert into t_diff select g, md5(g::text) from generate_series(1, 5000) g");
    // set hint bits and the visibility map now: a first read after the full backup would dirty (and so change) every page
    await query(c, 'vacuum freeze');
    await query(c, 'checkpoint');
    s.files = {};
    for (const t of TABLES) {
      const [row] = await query<{ p: string }>(c, `select pg_relation_filepath('${t}') as p`);
      s.files[t] = `pg_data/${row.p}`;
    }
    expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'stanza-create');
  });

  step('with no --type and no full backup, the backup is a full and says so', async () => {
    const res = await backup([]);
    expect(res.stderr).toContain('no --type given and no full backup exists: full backup');
    const m = /^full backup (\d{8}-\d{6}F) complete/m.exec(res.stdout);
    expect(m, res.stdout).not.toBeNull();
    s.full = m![1];
    const full = manifest(s.full);
    expect(full.backup).toMatchObject({ type: 'full', prior: null, reference: [] });
    expect(full.files.every((f) => f.reference === undefined)).toBe(true);
    // the cluster has data checksums (initdb -k): relation files were checked and found valid
    expect(full.options.checksumPage).toBe(true);
    expect(fileOf(full, s.files!.t_static).checksumPage).toBe(true);
  });

  step('with no --type and a full backup, the backup is an incr on it, and sends only the changed files', async () => {
    const c = fixture().cluster1;
    await query(c, "insert into t_incr select g, 'incr ' || g from generate_series(5001, 6000) g");
    s.atIncr = await digests(c);
    const res = await backup([]);
    expect(res.stderr).toContain(`no --type given: incr backup, because full backup ${s.full} exists`);
    s.incr = /^incr backup (\S+) \(prior (\S+)\) complete/m.exec(res.stdout)?.[1];
    expect(s.incr, res.stdout).toMatch(new RegExp(`^${s.full}_\\d{8}-\\d{6}I$`));
    expect(res.stdout).toMatch(/unchanged since the prior backup: \d+ files/);

    const m = manifest(s.incr!);
    expect(m.backup).toMatchObject({ type: 'incr', prior: s.full, reference: [s.full] });
    const referenced = m.files.filter((f) => f.reference === s.full);
    // a cluster has ~1000 files; the insert touched a handful (the table, its fsm/vm, catalogs, pg_control...)
    expect(referenced.length / m.files.length, `${referenced.length} of ${m.files.length} referenced`).toBeGreaterThan(0.9);
    expect(fileOf(m, s.files!.t_incr).reference).toBeUndefined();
    expect(fileOf(m, s.files!.t_static).reference).toBe(s.full);
    expect(fileOf(m, s.files!.t_diff).reference).toBe(s.full);
    // a referenced entry carries the full's record of the data
    const inFull = fileOf(manifest(s.full!), s.files!.t_static);
    expect(fileOf(m, s.files!.t_static)).toMatchObject({ checksum: inFull.checksum, repoChecksum: inFull.repoChecksum, size: inFull.size });
    expect(fs.existsSync(path.join(fixture().repoDir, 'backup', 'main', s.incr!, `${s.files!.t_static}.zst`))).toBe(false);
    expect(fs.existsSync(path.join(fixture().repoDir, 'backup', 'main', s.incr!, `${s.files!.t_incr}.zst`))).toBe(true);
  });

  step('a diff builds on the full, not on the incr: it sends everything changed since the full', async () => {
    const c = fixture().cluster1;
    await query(c, "update t_diff set v = 'diff ' || id where id % 10 = 0");
    s.atDiff = await digests(c);
    const r = await backupJson(['--type', 'diff']);
    expect(r).toMatchObject({ type: 'diff', prior: s.full, delta: false });
    s.diff = r.label;
    expect(s.diff).toMatch(new RegExp(`^${s.full}_\\d{8}-\\d{6}D$`));
    expect(r.files_referenced).toBeGreaterThan(r.files_copied);
    const m = manifest(s.diff);
    expect(m.backup).toMatchObject({ type: 'diff', prior: s.full, reference: [s.full] });
    expect(fileOf(m, s.files!.t_incr).reference).toBeUndefined(); // changed since the full (by the incr's step)
    expect(fileOf(m, s.files!.t_diff).reference).toBeUndefined();
    expect(fileOf(m, s.files!.t_static).reference).toBe(s.full);
    // rows after the diff must not show up in its restore
    await query(c, "insert into t_diff select g, 'after' from generate_series(100001, 100500) g");
  });

  step('--delta: checksums decide, so a file touched without a change is referenced, not sent', async () => {
    const fx = fixture();
    const file = path.join(fx.cluster1.dir, s.files!.t_static.slice('pg_data/'.length));
    const old = fs.statSync(file);
    fs.utimesSync(file, old.atime, new Date(old.mtimeMs + 5000));
    const r = await backupJson(['--type', 'incr', '--delta']);
    expect(r).toMatchObject({ type: 'incr', prior: s.diff, delta: true });
    const m = manifest(r.label);
    expect(m.options.delta).toBe(true);
    expect(m.backup.reference).toEqual([s.full, s.diff].sort());
    expect(fileOf(m, s.files!.t_static).reference).toBe(s.full);
    expect(fileOf(m, s.files!.t_static).timestamp).toBe(Math.floor(old.mtimeMs / 1000) + 5);
    // its files come from three backups: the full, the diff (t_incr, unchanged since), and itself (t_diff, changed after the diff)
    expect(fileOf(m, s.files!.t_incr).reference).toBe(s.diff);
    expect(fileOf(m, s.files!.t_diff).reference).toBeUndefined();
  });

  step('a file with a timestamp in the future switches the backup to checksums, and the warning says why', async () => {
    const fx = fixture();
    const file = path.join(fx.cluster1.dir, s.files!.t_static.slice('pg_data/'.length));
    fs.utimesSync(file, new Date(), new Date(Date.now() + 3600_000));
    const res = await backup(['--type', 'incr']);
    expect(res.stderr).toMatch(new RegExp(`WARNING: file '${s.files!.t_static}' has timestamp \\d+ in the future \\(relative to copy start \\d+\\), enabling delta checksum`));
    const label = /^incr backup (\S+) /m.exec(res.stdout)![1];
    const m = manifest(label);
    expect(m.options.delta).toBe(true);
    expect(fileOf(m, s.files!.t_static).reference).toBe(s.full);
  });

  step('info shows each backup with its prior, references and the three sizes', async () => {
    const res = await fixture().repoctl(['info', '--stanza', 'main', '--output', 'json']);
    expectSuccess(res, 'info');
    const backups = JSON.parse(res.stdout)[0].backup as Array<Record<string, any>>;
    expect(backups.map((b) => b.type)).toEqual(['full', 'incr', 'diff', 'incr', 'incr']);
    expect(backups[1]).toMatchObject({ label: s.incr, prior: s.full, reference: [s.full] });
    expect(backups[2]).toMatchObject({ label: s.diff, prior: s.full, reference: [s.full] });
    for (const b of backups.slice(1)) {
      expect(b.info.delta, b.label).toBeLessThan(b.info.size / 4);
      expect(b.info.repository.delta, b.label).toBeLessThan(b.info.repository.size / 4);
    }
    expect(backups[0].info.delta).toBe(backups[0].info.size);
    const text = await fixture().repoctl(['info', '--stanza', 'main']);
    expect(text.stdout).toContain(`backup reference list: ${s.full} (prior ${s.full})`);
  });

  const restoreAndCheck = async (set: string, rows: Digests, port: number, dirName: string) => {
    const fx = fixture();
    const dir = path.join(await fx.newDir(`${dirName}-parent`), 'pg');
    const res = await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--set', set, '--pg-path', dir, '--process-max', '4'], { timeoutMs: 120_000 });
    expectSuccess(res, `restore --set ${set}`);
    expect(res.stdout).toContain(`restore of backup ${set} complete`);
    const restored = await startRestored(fx, { name: dirName, dir, port, immediate: true });
    expect(await digests(restored), `rows of the cluster restored from ${set}`).toEqual(rows);
    await stopCluster(restored);
  };

  // both at once: they are independent, and most of a restore's time is waiting for fsync
  step('restore --set of the incr and of the diff each bring back exactly the rows of their moment', async () => {
    await Promise.all([
      restoreAndCheck(s.incr!, s.atIncr!, fixture().restorePort, 'restore-incr'),
      restoreAndCheck(s.diff!, s.atDiff!, await freePort(), 'restore-diff'),
    ]);
  }, 180_000);
});
