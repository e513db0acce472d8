/**
 * Issue 6: a smoke run of the backup benchmark (`npm run bench`) on a tiny cluster of many small
 * tables, where both tools bundle (pgrepo --bundle, pgBackRest repo1-bundle=y), so that part of
 * the benchmark cannot rot; with pg_basebackup's reference row. Asserts nothing about speed:
 * sane numbers, restores that match.
 */
import { afterAll, expect, it } from 'vitest';
import { benchSmoke, expectSaneResult } from '../harness/bench-smoke';
import { runCleanups } from '../harness/cleanup';

afterAll(async () => {
  await runCleanups();
}, 120_000);

it('benchmark smoke run, small tables: both tools bundle; pg_basebackup', async () => {
  const r = await benchSmoke('small-tables', { basebackup: true, rssProcessMax: [] });
  expect(r.bundle).toBe(true);
  expectSaneResult(r, ['pgrepo', 'pgbackrest', 'pg_basebackup']);
}, 120_000);
