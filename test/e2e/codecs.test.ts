/**
 * Issue 6, end to end: full backups with each compress-type (lz4 and gz at process-max 2, none at
 * process-max 1; zst, the default, also with --bundle), each stored with its own extension and
 * recorded per file in the manifest; a table file larger than one frame is cut into several
 * frames; a diff in lz4 over the zst full references that full's bundled files; restores at
 * process-max 2 of the lz4, gz and diff backups start and have every row; verify reads it all.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { expectSuccess } from '../harness/expect';
import { useFixture } from '../harness/fixture';
import { clusterAt, query, startCluster, stopCluster, tableDigest } from '../harness/pg';
import { scenario } from '../harness/scenario';
import { waitUntil } from '../harness/system';
import { FRAME_SIZE, frameLength } from '../../shared/stream/frame-codec';
import { parseInfo } from '../../shared/info/ini';
import { parseManifest } from '../../shared/info/manifest';

interface Backup {
  label: string;
  files: number;
  bytes: number;
  repo_bytes: number;
}

describe('backup and restore with every compress-type, process-max 2', () => {
  const fixture = useFixture();
  const step = scenario();
  const s: { digest?: { count: number; sum: string }; diffDigest?: { count: number; sum: string }; relation?: string; backups: Record<string, Backup> } = { backups: {} };

  step('a table of several MiB, half incompressible', async () => {
    const c = fixture().cluster1;
    await query(c, 'create table t (id int primary key, v text)');
    // md5 text (compresses ~2x) and repeated text: the heap file is ~7 MiB, several frames
    await query(c, "insert into t select g, md5(g::text) || md5((g * 31)::text) || repeat('x', 20) from generate_series(1, 70000) g");
    await query(c, 'checkpoint');
    s.digest = await tableDigest(c, 't');
    const [r] = await query<{ f: string }>(c, "select pg_relation_filepath('t') as f");
    s.relation = r.f;
    expectSuccess(await fixture().repoctl(['stanza-create', '--stanza', 'main']), 'stanza-create');
  });

  for (const [type, p] of [['lz4', 2], ['gz', 2], ['none', 1]] as const) {
    step(`backup --compress-type ${type} --process-max ${p}`, async () => {
      const fx = fixture();
      const res = await fx.repoctl(['backup', '--stanza', 'main', '--type', 'full', '--start-fast', '--compress-type', type, '--process-max', String(p), '--output', 'json'], { timeoutMs: 200_000 });
      expectSuccess(res, `backup --compress-type ${type}`);
      const b = JSON.parse(res.stdout) as Backup;
      s.backups[type] = b;
      const dir = path.join(fx.repoDir, 'backup', 'main', b.label);
      const ext = type === 'none' ? '' : `.${type}`;
      const stored = path.join(dir, 'pg_data', `${s.relation}${ext}`);
      expect(fs.existsSync(stored), stored).toBe(true);
      const manifest = fs.readFileSync(path.join(dir, 'backup.manifest'), 'utf8');
      expect(manifest).toContain(`option-compress-type="${type}"`);
      if (type === 'none') {
        expect(b.repo_bytes).toBe(b.bytes);
        // stored as it is: the agent sends no SHA-1 of its own, the server's of the stored bytes is the file's
        const file = parseManifest(parseInfo(manifest, 'backup.manifest')).files.find((f) => f.name === `pg_data/${s.relation}`)!;
        const sha1 = createHash('sha1').update(fs.readFileSync(stored)).digest('hex');
        expect(file.checksum).toBe(sha1);
        expect(file.repoChecksum).toBe(sha1);
        expect(file.size).toBe(fs.statSync(stored).size);
        return;
      }
      expect(b.repo_bytes).toBeLessThan(b.bytes);
      // the relation file was cut into independent frames, one per FRAME_SIZE of original bytes
      const data = fs.readFileSync(stored);
      let frames = 0;
      for (let at = 0; at < data.length; frames++) {
        const n = frameLength(type, data.subarray(at), data.length - at);
        expect(typeof n, `frame ${frames} of ${stored}`).toBe('number');
        at += n as number;
      }
      const [size] = await query<{ n: number }>(fx.cluster1, "select pg_relation_size('t')::int as n");
      expect(frames).toBe(Math.ceil(size.n / FRAME_SIZE));
    }, 240_000);
  }

  step('backup --bundle: files under --bundle-limit are stored together, each at its offset', async () => {
    const fx = fixture();
    const res = await fx.repoctl(['backup', '--stanza', 'main', '--type', 'full', '--start-fast', '--bundle', '--bundle-limit', '256KiB', '--bundle-size', '1MiB', '--process-max', '2', '--output', 'json'], { timeoutMs: 200_000 });
    expectSuccess(res, 'backup --bundle');
    const b = JSON.parse(res.stdout) as Backup;
    s.backups.bundle = b;
    const dir = path.join(fx.repoDir, 'backup', 'main', b.label);
    const bundles = fs.readdirSync(path.join(dir, 'bundle'));
    // ~1000 small files of a fresh cluster in 1 MiB bundles: several bundles, far fewer objects than files
    expect(bundles.length).toBeGreaterThan(1);
    expect(bundles.length).toBeLessThan(b.files / 10);
    const manifest = fs.readFileSync(path.join(dir, 'backup.manifest'), 'utf8');
    const bundledFiles = manifest.split('\n').filter((l) => /"bni":\d+/.test(l));
    expect(bundledFiles.length).toBeGreaterThan(b.files / 2);
    // PG_VERSION is tiny: bundled, so no file of its own; the table file is over the limit: on its own
    expect(fs.existsSync(path.join(dir, 'pg_data', 'PG_VERSION.zst'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'pg_data', `${s.relation}.zst`))).toBe(true);
    const sizes = bundles.reduce((n, f) => n + fs.statSync(path.join(dir, 'bundle', f)).size, 0);
    const stored = manifest.split('\n').filter((l) => /"bni":\d+/.test(l)).reduce((n, l) => n + Number(/"repo-size":(\d+)/.exec(l)?.[1] ?? /"size":(\d+)/.exec(l)![1]), 0);
    expect(sizes).toBe(stored);
  }, 240_000);

  step('a diff in lz4 over the zst full with bundles references files of the other codec and in bundles', async () => {
    const fx = fixture();
    await query(fx.cluster1, "insert into t select g, 'after the full ' || g from generate_series(70001, 75000) g");
    await query(fx.cluster1, 'checkpoint');
    s.diffDigest = await tableDigest(fx.cluster1, 't');
    const res = await fx.repoctl(['backup', '--stanza', 'main', '--type', 'diff', '--start-fast', '--compress-type', 'lz4', '--process-max', '2', '--output', 'json'], { timeoutMs: 200_000 });
    expectSuccess(res, 'backup --type diff --compress-type lz4');
    const b = JSON.parse(res.stdout) as Backup;
    s.backups.diff = b;
    const manifest = fs.readFileSync(path.join(fx.repoDir, 'backup', 'main', b.label, 'backup.manifest'), 'utf8');
    const full = s.backups.bundle.label;
    // the changed table file is stored anew in this backup (lz4, the backup's own codec: no per-file ct)
    const line = (name: string) => manifest.split('\n').find((l) => l.startsWith(`${name}=`)) ?? '';
    expect(line(`pg_data/${s.relation}`)).not.toMatch(/"reference"|"ct"/);
    // unchanged small files stay in the full's zst bundles, read by reference and offset
    expect(line('pg_data/PG_VERSION')).toMatch(new RegExp(`^pg_data/PG_VERSION=\\{"bni":\\d+,"bno":\\d+,.*"ct":"zst".*"reference":"${full}"`));
  }, 240_000);

  for (const type of ['lz4', 'gz', 'diff'] as const) {
    step(`restore of the ${type} backup at process-max 2 starts with every row`, async () => {
      const fx = fixture();
      const target = path.join(await fx.newDir(`restore-${type}`), 'data');
      const res = await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', target, '--set', s.backups[type].label, '--process-max', '2',
        // each backup's own rows: stop where it is consistent, not at the end of the archive
        '--type', 'immediate', '--target-action', 'promote'], { timeoutMs: 200_000 });
      expectSuccess(res, `restore of the ${type} backup`);
      const restored = clusterAt({ name: `restored-${type}`, dir: target, port: fx.restorePort, socketDir: fx.socketDir });
      fx.clusters.push(restored);
      await startCluster(restored, { settings: { archive_mode: 'off' }, timeoutMs: 150_000 });
      try {
        await waitUntil('recovery to finish', async () => (await query<{ r: boolean }>(restored, 'select pg_is_in_recovery() as r'))[0].r === false, { timeoutMs: 120_000, intervalMs: 500 });
        expect(await tableDigest(restored, 't')).toEqual(type === 'diff' ? s.diffDigest : s.digest);
      } finally {
        await stopCluster(restored);
      }
    }, 300_000);
  }

  step('verify reads back every backup: each codec, frames and bundled files by offset', async () => {
    const fx = fixture();
    const res = await fx.repoctl(['verify', '--stanza', 'main', '--process-max', '2', '--output', 'json'], { timeoutMs: 200_000 });
    expectSuccess(res, 'verify');
    const r = JSON.parse(res.stdout) as { ok: boolean; backups: Array<{ label: string; status: string; problems: unknown[] }> };
    expect(r.ok).toBe(true);
    const labels = Object.values(s.backups).map((b) => b.label);
    expect(r.backups.filter((b) => labels.includes(b.label)).map((b) => [b.status, b.problems])).toEqual(labels.map(() => ['valid', []]));
  }, 240_000);
});
