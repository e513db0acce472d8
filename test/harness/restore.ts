/** `repoctl restore --output json` and its summary, for the restore tests. */
import { expectSuccess } from './expect';
import type { Fixture } from './fixture';
import { query, startCluster, type Cluster } from './pg';
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
