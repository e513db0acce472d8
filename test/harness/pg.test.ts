/**
 * The PostgreSQL side of the harness on its own (no pgrepo program involved), so that a
 * broken machine (no PostgreSQL 15, no postgres user, a root-owned temp dir) shows up here
 * with a plain message instead of as a failing backup test.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCleanups } from './cleanup';
import { freePort, initCluster, isRunning, makeTempDir, query, startCluster, stopCluster, switchWal, systemIdentifier, tableDigest, waitForArchived } from './pg';
import { chownToPostgres } from './system';

describe('PostgreSQL test harness', () => {
  afterAll(() => runCleanups(), 120_000);

  it('runs a PostgreSQL 15 cluster with a tablespace and WAL archiving, as a user PostgreSQL accepts', async () => {
    const work = await makeTempDir('pgrepo-h');
    const archive = path.join(work, 'archive');
    const ts = path.join(work, 'ts');
    for (const d of [archive, ts]) {
      fs.mkdirSync(d);
      await chownToPostgres(d);
    }
    const c = await initCluster({
      dir: path.join(work, 'data'),
      port: await freePort(),
      socketDir: work,
      archiveCommand: `test ! -f ${archive}/%f && cp %p ${archive}/%f`,
    });
    await startCluster(c);
    expect(isRunning(c)).toBe(true);

    const [v] = await query<{ v: string }>(c, "select current_setting('server_version_num') as v");
    expect(Number(v.v)).toBeGreaterThanOrEqual(150000);
    expect(Number(v.v)).toBeLessThan(160000);
    const [cs] = await query<{ data_checksums: string }>(c, 'show data_checksums');
    expect(cs.data_checksums).toBe('on');
    expect(await systemIdentifier(c)).toMatch(/^\d+$/);

    await query(c, `create tablespace ts1 location '${ts}'`);
    await query(c, 'create table t (id int, v text) tablespace ts1');
    await query(c, "insert into t select g, md5(g::text) from generate_series(1, 1000) g");
    const d = await tableDigest(c, 't');
    expect(d.count).toBe(1000);

    const seg = await switchWal(c);
    expect(seg).toMatch(/^[0-9A-F]{24}$/);
    await waitForArchived(c, seg, 30_000);
    expect(fs.existsSync(path.join(archive, seg))).toBe(true);

    await stopCluster(c);
    expect(isRunning(c)).toBe(false);
  });
});
