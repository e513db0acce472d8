/**
 * Issue 6: a smoke run of the backup benchmark (`npm run bench`) on a tiny cluster of poorly
 * compressible data, so the benchmark's code cannot rot: pgrepo and pgBackRest at zst-3
 * process-max 2, pgrepo alone at process-max 1 (the RSS rows). pg_basebackup's row runs in
 * bench-smoke-bundle.test.ts (the two files share the work, to stay short).
 * Asserts nothing about speed, only that the table holds sane numbers and every restore matched.
 */
import { afterAll, expect, it } from 'vitest';
import { benchSmoke, expectSaneResult } from '../harness/bench-smoke';
import { runCleanups } from '../harness/cleanup';

afterAll(async () => {
  await runCleanups();
}, 120_000);

it('benchmark smoke run, random data: both tools, a pgrepo-only row', async () => {
  const r = await benchSmoke('random', { basebackup: false, rssProcessMax: [1] });
  expectSaneResult(r, ['pgrepo', 'pgbackrest']);
  expect(r.rows.find((x) => x.what === 'backup' && x.p === 1 && x.samples.pgrepo && !x.samples.pgbackrest), 'the pgrepo-only row at process-max 1').toBeDefined();
}, 120_000);
