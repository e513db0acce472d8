/**
 * pgBackRest's own point-in-time recovery demo, on one real cluster restored in place by its own agent (db1):
 * full backup → "before release" → restore point 'release' → "after release" → stop →
 * delta restore to the restore point (timeline 2) → "important update" on timeline 2 → stop →
 * delta restore along the original timeline: "after release" is back (timeline 3) → stop →
 * delta restore along timeline 2: "important update" is found again.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { expectRefused, expectSuccess } from '../harness/expect';
import { useFixture, type Fixture } from '../harness/fixture';
import { query, stopCluster, switchWal, waitForArchived, type Cluster } from '../harness/pg';
import { restoreWith, startAndFinishRecovery, type RestoreResult } from '../harness/restore';
import { scenario } from '../harness/scenario';

function restoreInPlace(fx: Fixture, args: string[]): Promise<RestoreResult> {
  return restoreWith(fx, 'db1', args);
}

/** Uncommented settings of postgresql.auto.conf: name → values, in order. */
function activeSettings(pgData: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of fs.readFileSync(path.join(pgData, 'postgresql.auto.conf'), 'utf8').split('\n')) {
    const m = /^\s*([a-z_]+)\s*=\s*(.*)$/.exec(line);
    if (m) out.set(m[1], [...(out.get(m[1]) ?? []), m[2]]);
  }
  return out;
}

/** Starts the cluster, lets recovery finish, and checks the message it reached and the timeline it promoted to. */
async function expectRecoveredTo(c: Cluster, text: string, tli: number): Promise<void> {
  await startAndFinishRecovery(c);
  expect(await message(c)).toEqual([text]);
  expect(await timeline(c)).toBe(tli);
}

async function message(c: Cluster): Promise<string[]> {
  return (await query<{ message: string }>(c, 'select message from test order by message')).map((r) => r.message);
}

async function timeline(c: Cluster): Promise<number> {
  const [r] = await query<{ tli: string }>(c, 'select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) as tli');
  return parseInt(r.tli, 16);
}

/** Makes the current WAL segment complete and waits until it is in the repository. */
async function archiveCurrentWal(c: Cluster): Promise<void> {
  await waitForArchived(c, await switchWal(c), 60_000);
}

describe('point-in-time recovery in place: pgBackRest\'s release demo', () => {
  const fixture = useFixture();
  const step = scenario();

  step('full backup, then "before release", restore point release, "after release"', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'stanza-create');
    await query(c, 'create table test (message text)');
    expectSuccess(await fx.repoctl(['backup', '--stanza', 'main', '--type', 'full', '--start-fast'], { timeoutMs: 120_000 }), 'backup');
    await query(c, "insert into test values ('before release')");
    await query(c, "select pg_create_restore_point('release')");
    await query(c, "update test set message = 'after release'");
    await archiveCurrentWal(c);
    expect(await message(c)).toEqual(['after release']);
  });

  step('a delta restore over the running cluster is refused and the cluster keeps running', async () => {
    const fx = fixture();
    expectRefused(await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db1', '--delta', '--type', 'name', '--target', 'release']), 'delta restore over the running cluster', /running/i);
    expect(await message(fx.cluster1)).toEqual(['after release']);
  });

  step('restore --type name --target release --delta into the same directory: "before release"', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    await stopCluster(c);
    const r = await restoreInPlace(fx, ['--delta', '--type', 'name', '--target', 'release', '--target-action', 'promote']);
    // most files of a stopped cluster still match its backup: they are checked, not fetched
    expect(r.restore.mode).toBe('delta (checksum)');
    expect(r.restore.files_checked).toBeGreaterThan(r.files / 2);
    expect(r.restore.files_matched).toBeGreaterThan(r.files / 2);
    expect(r.restore.files_fetched).toBeLessThan(r.files / 2);
    expect(r.restore.files_fetched + r.restore.files_matched).toBe(r.files);
    expect(r.restore.removed, 'pg_wal contents, postmaster.opts, ... are removed').toBeGreaterThan(0);
    expect(r.restore.recovery).toContain("recovery_target_name = 'release'");
    expect(fs.existsSync(path.join(c.dir, 'recovery.signal'))).toBe(true);
    expect(fs.existsSync(path.join(c.dir, 'postmaster.pid'))).toBe(false);
    const settings = activeSettings(c.dir);
    expect(settings.get('restore_command')).toHaveLength(1);
    expect(settings.get('recovery_target_name')).toEqual(["'release'"]);
    expect(settings.get('recovery_target_action')).toEqual(["'promote'"]);

    await expectRecoveredTo(c, 'before release', 2);
  });

  step('"important update" on timeline 2, then a delta restore along timeline 1: "after release" is back', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    await query(c, "update test set message = 'important update'");
    await archiveCurrentWal(c);
    await stopCluster(c);
    // PostgreSQL >= 12 follows the latest timeline by default (which now holds "important update"); the demo's
    // "undo the rollback" is a recovery along the timeline the backup was taken on
    const r = await restoreInPlace(fx, ['--delta', '--target-timeline', 'current']);
    expect(r.restore.recovery).toContain("recovery_target_timeline = 'current'");
    const settings = activeSettings(c.dir);
    expect(settings.get('restore_command')).toHaveLength(1);
    expect(settings.has('recovery_target_name'), 'the earlier restore\'s target is gone').toBe(false);
    expect(settings.has('recovery_target_action')).toBe(false);

    await expectRecoveredTo(c, 'after release', 3);
  });

  step('a delta restore along timeline 2: "important update" is found again', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    await stopCluster(c);
    const r = await restoreInPlace(fx, ['--delta', '--force', '--target-timeline', '2']);
    expect(r.restore.mode).toBe('delta (size and time)');
    expect(activeSettings(c.dir).get('recovery_target_timeline')).toEqual(["'2'"]);

    await expectRecoveredTo(c, 'important update', 4);
  });
});
