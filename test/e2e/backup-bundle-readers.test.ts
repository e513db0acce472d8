/**
 * Bundled files are read, hashed, page-checked and compressed by the agent's codec threads
 * (agent/backup/bundle-reader.ts), not the main thread. What must still hold there: a bad page
 * in a bundled file is found, warned about and recorded; a bundled file the agent cannot read
 * fails the backup with a message naming the file (no stack trace, nothing recorded as done),
 * and once it is readable again the next backup resumes the partial set, completes, and
 * restores every row (the bundles a resumed backup writes are kept, not removed as strays).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { expectRefused, expectSuccess } from '../harness/expect';
import { useFixture } from '../harness/fixture';
import { query, startCluster, stopCluster, tableDigest } from '../harness/pg';
import { startRestored } from '../harness/restored';
import { scenario } from '../harness/scenario';
import { parseInfo } from '../../shared/info/ini';
import { parseManifest, type Manifest } from '../../shared/info/manifest';

const PAGE = 8192;
const BAD_BLOCK = 2;
const BUNDLE = ['--bundle', '--bundle-limit', '1MiB', '--bundle-size', '2MiB', '--process-max', '2'];

describe('bundled files through the codec threads', () => {
  const fixture = useFixture();
  const step = scenario();
  const s: { bad?: string; locked?: string; digest?: unknown; label?: string } = {};

  const manifest = (label: string): Manifest => {
    const file = path.join(fixture().repoDir, 'backup', 'main', label, 'backup.manifest');
    return parseManifest(parseInfo(fs.readFileSync(file, 'utf8'), file));
  };
  const backup = (args: string[]) => fixture().repoctl(['backup', '--stanza', 'main', '--start-fast', ...BUNDLE, ...args], { timeoutMs: 120_000 });
  const onDisk = (name: string) => path.join(fixture().cluster1.dir, name.slice('pg_data/'.length));

  step('two small tables; a page of one is damaged while the cluster is stopped', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    for (const t of ['t_bad', 't_locked']) {
      await query(c, `create table ${t} (id int, v text)`);
      await query(c, `insert into ${t} select g, md5(g::text) from generate_series(1, 2000) g`);
      await query(c, `vacuum freeze ${t}`);
    }
    s.bad = `pg_data/${(await query<{ p: string }>(c, "select pg_relation_filepath('t_bad') as p"))[0].p}`;
    s.locked = `pg_data/${(await query<{ p: string }>(c, "select pg_relation_filepath('t_locked') as p"))[0].p}`;
    s.digest = await tableDigest(c, 't_locked');
    expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'stanza-create');
    await stopCluster(c);
    const data = fs.readFileSync(onDisk(s.bad));
    expect(data.length).toBeGreaterThan((BAD_BLOCK + 1) * PAGE);
    expect(data.length).toBeLessThan(1024 * 1024); // under the bundle limit: it travels in a bundle
    for (let i = 0; i < 16; i++) data[BAD_BLOCK * PAGE + 4000 + i] ^= 0x5a;
    fs.writeFileSync(onDisk(s.bad), data);
    await startCluster(c);
  });

  step('a bundled file the agent cannot read fails the backup, naming the file', async () => {
    fs.chmodSync(onDisk(s.locked!), 0o000);
    try {
      const res = await backup(['--type', 'full']);
      expectRefused(res, 'backup with an unreadable file', new RegExp(`permission denied.*${path.basename(s.locked!)}`, 'i'));
    } finally {
      fs.chmodSync(onDisk(s.locked!), 0o600);
    }
  });

  step('readable again, the next backup completes: the bad page is warned about and recorded in the bundle', async () => {
    const res = await backup(['--type', 'full']);
    expectSuccess(res, 'backup --bundle');
    // it resumes the failed one's partial set: its bundles must survive the removal of the set's strays
    expect(res.stdout + res.stderr).toMatch(/resumable backup \S+ of the same type exists/);
    expect(res.stderr).toContain(`WARNING: invalid page checksums found in file ${onDisk(s.bad!)} (${s.bad}) at block(s) ${BAD_BLOCK}`);
    s.label = /^full backup (\S+) complete/m.exec(res.stdout)![1];
    const m = manifest(s.label);
    const bad = m.files.find((f) => f.name === s.bad)!;
    expect(bad).toMatchObject({ checksumPage: false, checksumPageError: [BAD_BLOCK] });
    expect(bad.bundleId).toBeGreaterThan(0);
    expect(m.files.find((f) => f.name === s.locked)).toMatchObject({ checksumPage: true, bundleId: expect.any(Number) });
    // relation files were checked in the codec threads and every other one is fine
    const checked = m.files.filter((f) => f.checksumPage !== undefined);
    expect(checked.length).toBeGreaterThan(100);
    expect(checked.filter((f) => f.checksumPage === false).map((f) => f.name)).toEqual([s.bad]);
  });

  step('the backup restores every row of the table that was unreadable before', async () => {
    const fx = fixture();
    const res = await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', fx.restoreDir, '--set', s.label!], { timeoutMs: 120_000 });
    expectSuccess(res, 'restore');
    const restored = await startRestored(fx, { name: 'restored', dir: fx.restoreDir, port: fx.restorePort, immediate: true });
    expect(await tableDigest(restored, 't_locked')).toEqual(s.digest);
  });
});
