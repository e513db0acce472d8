/**
 * Page checksums on a cluster with data checksums (the harness runs initdb -k): a page of a table
 * file is corrupted on disk while the cluster is stopped; the backup still completes, warns naming
 * the file and the block, records the block in the manifest (checksum-page-error) and flags the
 * backup in info. An incr that references the file carries the finding along.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { expectSuccess } from '../harness/expect';
import { useFixture } from '../harness/fixture';
import { query, startCluster, stopCluster } from '../harness/pg';
import { scenario } from '../harness/scenario';
import { parseInfo } from '../../shared/info/ini';
import { parseManifest, type Manifest } from '../../shared/info/manifest';

const PAGE = 8192;
const BAD_BLOCK = 3;

describe('invalid page checksums are found during the backup', () => {
  const fixture = useFixture();
  const step = scenario();
  const s: { file?: string; full?: string } = {};

  const manifest = (label: string): Manifest => {
    const file = path.join(fixture().repoDir, 'backup', 'main', label, 'backup.manifest');
    return parseManifest(parseInfo(fs.readFileSync(file, 'utf8'), file));
  };
  const backup = async (args: string[]) => {
    const res = await fixture().repoctl(['backup', '--stanza', 'main', '--start-fast', '--process-max', '4', ...args], { timeoutMs: 120_000 });
    expectSuccess(res, `backup ${args.join(' ')}`);
    return res;
  };

  step('a table of several pages, on a cluster with data checksums', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    const [{ on }] = await query<{ on: string }>(c, "select current_setting('data_checksums') as on");
    expect(on).toBe('on');
    await query(c, 'create table t_pages (id int, v text)');
    await query(c, "insert into t_pages select g, md5(g::text) from generate_series(1, 3000) g");
    await query(c, 'vacuum freeze t_pages');
    const [{ p }] = await query<{ p: string }>(c, "select pg_relation_filepath('t_pages') as p");
    s.file = `pg_data/${p}`;
    expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'stanza-create');
  });

  step('bytes flipped in the middle of a page while the cluster is stopped', async () => {
    const c = fixture().cluster1;
    await stopCluster(c); // a clean shutdown writes every page first
    const file = path.join(c.dir, s.file!.slice('pg_data/'.length));
    const data = fs.readFileSync(file);
    expect(data.length).toBeGreaterThan((BAD_BLOCK + 1) * PAGE);
    for (let i = 0; i < 16; i++) data[BAD_BLOCK * PAGE + 4000 + i] ^= 0x5a;
    fs.writeFileSync(file, data);
    await startCluster(c);
  });

  step('the backup completes, warning with the file and the block, and records them', async () => {
    const res = await backup(['--type', 'full']);
    const abs = path.join(fixture().cluster1.dir, s.file!.slice('pg_data/'.length));
    expect(res.stderr).toContain(`WARNING: invalid page checksums found in file ${abs} (${s.file}) at block(s) ${BAD_BLOCK}`);
    expect(res.stdout).toContain(`WARNING: invalid page checksums in 1 file(s): ${s.file}`);
    s.full = /^full backup (\S+) complete/m.exec(res.stdout)![1];
    const m = manifest(s.full);
    const bad = m.files.find((f) => f.name === s.file)!;
    expect(bad).toMatchObject({ checksumPage: false, checksumPageError: [BAD_BLOCK] });
    // every other relation file was checked and is fine; files that are not pages are not checked
    const checked = m.files.filter((f) => f.checksumPage !== undefined);
    expect(checked.length).toBeGreaterThan(100);
    expect(checked.filter((f) => f.checksumPage === false).map((f) => f.name)).toEqual([s.file]);
    for (const name of ['pg_data/global/pg_control', 'pg_data/global/pg_filenode.map', 'pg_data/PG_VERSION']) {
      expect(m.files.find((f) => f.name === name)?.checksumPage, name).toBeUndefined();
    }
  });

  step('info flags the backup', async () => {
    const json = await fixture().repoctl(['info', '--stanza', 'main', '--output', 'json']);
    expect(JSON.parse(json.stdout)[0].backup[0]).toMatchObject({ label: s.full, error: true });
    const text = await fixture().repoctl(['info', '--stanza', 'main']);
    expect(text.stdout).toMatch(/error: invalid page checksums were found/);
  });

  step('an incr that references the file keeps the finding', async () => {
    await query(fixture().cluster1, 'create table t_other (id int)');
    const res = await backup(['--type', 'incr']);
    const label = /^incr backup (\S+) /m.exec(res.stdout)![1];
    const entry = manifest(label).files.find((f) => f.name === s.file)!;
    expect(entry).toMatchObject({ reference: s.full, checksumPage: false, checksumPageError: [BAD_BLOCK] });
    expect(res.stdout).toContain(`WARNING: invalid page checksums in 1 file(s): ${s.file}`);
  });
});
