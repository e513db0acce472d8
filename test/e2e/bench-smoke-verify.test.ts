/**
 * A smoke run of the verify benchmark (`npm run bench:verify`) on a tiny cluster of poorly
 * compressible data, so its code cannot rot: a backup with each tool, then repoctl verify and
 * pgbackrest verify at process-max 1 and 2, once. Asserts nothing about speed, only that every
 * row is there with sane numbers (each verify passed: the bench checks pgrepo's result).
 */
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { clusterKind, ensureCluster } from '../../bench/clusters';
import { runVerifyBench, verifyTable } from '../../bench/verify-run';
import { TINY } from '../harness/bench-smoke';
import { runCleanups } from '../harness/cleanup';
import { makeTempDir } from '../harness/pg';

afterAll(async () => {
  await runCleanups();
}, 120_000);

it('verify benchmark smoke run, random data: both tools at process-max 1 and 2', async () => {
  const dir = await makeTempDir('bench-verify');
  const bench = await ensureCluster(dir, clusterKind('random', TINY), dir);
  const r = await runVerifyBench({ workDir: path.join(dir, 'run'), bench, codec: { type: 'zst', level: 3 }, processMax: [1, 2], runs: 1 });
  console.log(verifyTable(r.rows, [1, 2]));
  for (const tool of ['pgrepo', 'pgBackRest'] as const) {
    for (const p of [1, 2]) {
      const row = r.rows.find((x) => x.tool === tool && x.p === p);
      expect(row, `${tool} p${p}`).toBeDefined();
      expect(row!.wall, `${tool} p${p} wall`).toBeGreaterThan(0);
      expect(row!.repoBytes, `${tool} repository`).toBeGreaterThan(1024 * 1024);
      if (tool === 'pgrepo') {
        expect(row!.dataBytes, 'bytes pgrepo checked').toBeGreaterThan(1024 * 1024);
        expect(Number.isFinite(row!.lag), 'the server\'s event-loop delay, from its metrics').toBe(true);
      }
    }
  }
}, 120_000);
