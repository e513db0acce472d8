/** `repoctl restore --output json` and its summary, for the restore tests. */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { expectSuccess } from './expect';
import type { Fixture } from './fixture';
import { query, startCluster, tableDigest, type Cluster } from './pg';
import { waitUntil } from './system';

export interface RestoreResult {
  label: string;
  files: number;
  seconds: number;
  restore: {
    files_fetched: number;
    bytes_fetched: number;
    files_checked: number;
    files_matched: number;
    files_zeroed: number;
    removed: number;
    mode: string;
    recovery: string;
  };
}

/** Runs a restore through agent `host` that must succeed; PGREPO_TEST_VERBOSE=1 prints its summary. */
export async function restoreWith(fx: Fixture, host: string, args: string[]): Promise<RestoreResult> {
  const res = await fx.repoctl(['restore', '--stanza', fx.stanza, '--host', host, '--output', 'json', ...args], { timeoutMs: 120_000 });
  expectSuccess(res, `repoctl restore --host ${host} ${args.join(' ')}`);
  const result = JSON.parse(res.stdout) as RestoreResult;
  if (process.env.PGREPO_TEST_VERBOSE === '1') console.log(`[restore --host ${host} ${args.join(' ')}] ${JSON.stringify(result)}`);
  return result;
}

/** Starts a restored cluster and waits until recovery has finished (promoted). */
export async function startAndFinishRecovery(c: Cluster, settings: Record<string, string | number> = {}): Promise<void> {
  await startCluster(c, { settings, timeoutMs: 90_000 });
  await waitUntil('recovery to finish (pg_is_in_recovery() = false)', async () => {
    const [r] = await query<{ rec: boolean }>(c, 'select pg_is_in_recovery() as rec');
    return r.rec === false;
  }, { timeoutMs: 90_000, intervalMs: 200 });
}

/** Settings for starting a restored copy beside the original: it must not archive into the original's stanza. */
export const NO_ARCHIVING = { archive_mode: 'off' };

export interface BigTableBackup {
  /** the table file, relative to PGDATA */
  bigFile: string;
  digest: { count: number; sum: string };
  label: string;
}

/**
 * Table `big` with one ~20 MiB file (many 1 MiB frames, enough for a restore to split it), then
 * stanza-create and a full backup stored with `compressType`.
 */
export async function backupBigTable(fx: Fixture, compressType: string): Promise<BigTableBackup> {
  const c = fx.cluster1;
  await query(c, 'create table big (id int, v text)');
  await query(c, "insert into big select g, repeat(md5(g::text), 2) from generate_series(1, 200000) g");
  await query(c, 'checkpoint');
  const bigFile = (await query<{ p: string }>(c, "select pg_relation_filepath('big') as p"))[0].p;
  expect(fs.statSync(path.join(c.dir, bigFile)).size).toBeGreaterThan(12 * 1024 * 1024);
  const digest = await tableDigest(c, 'big');
  expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'stanza-create');
  const res = await fx.repoctl(['backup', '--stanza', 'main', '--type', 'full', '--start-fast', '--compress-type', compressType, '--output', 'json']);
  expectSuccess(res, 'backup');
  return { bigFile, digest, label: (JSON.parse(res.stdout) as { label: string }).label };
}
