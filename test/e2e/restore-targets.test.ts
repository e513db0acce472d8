/**
 * Recovery targets on one real cluster whose table t gets a row at each moment: two full backups around a time,
 * an xid and an LSN target; restores through agent db2 to each target, the backup chosen by time or LSN when
 * --set is not given; and refusals of options that do not fit the type.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { expectRefused, expectSuccess } from '../harness/expect';
import { useFixture, type Fixture } from '../harness/fixture';
import { clusterAt, query, startCluster, stopCluster, switchWal, waitForArchived, type Cluster } from '../harness/pg';
import { NO_ARCHIVING, restoreWith, startAndFinishRecovery, type RestoreResult } from '../harness/restore';
import { scenario } from '../harness/scenario';
import { sleep, waitUntil } from '../harness/system';

function restore(fx: Fixture, args: string[]): Promise<RestoreResult> {
  return restoreWith(fx, 'db2', ['--process-max', '4', ...args]);
}

async function rows(c: Cluster): Promise<string[]> {
  return (await query<{ v: string }>(c, 'select v from t order by v')).map((r) => r.v);
}


describe('restore to a time, an xid, an LSN', () => {
  const fixture = useFixture();
  const step = scenario();
  const s: { b1?: string; b2?: string; xid?: string; lsn?: string; time?: string; restored?: Cluster } = {};

  step('backup 1; an xid, an LSN and a time; backup 2 (incremental)', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    await query(c, 'create table t (v text)');
    expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'stanza-create');
    expectSuccess(await fx.repoctl(['backup', '--stanza', 'main', '--start-fast', '--process-max', '4'], { timeoutMs: 120_000 }), 'backup 1');

    const [x] = await query<{ xid: string }>(c, "insert into t values ('x1') returning txid_current()::text as xid");
    s.xid = x.xid;
    await query(c, "insert into t values ('x2')");
    await query(c, "insert into t values ('l1')");
    s.lsn = (await query<{ lsn: string }>(c, 'select pg_current_wal_lsn()::text as lsn'))[0].lsn;
    await query(c, "insert into t values ('l2')");
    // a time target must lie after the end of the backup it is restored from; backup times have 1 s resolution
    const info = JSON.parse((await fx.repoctl(['info', '--stanza', 'main', '--output', 'json'])).stdout) as Array<{ backup: Array<{ label: string; timestamp: { stop: number } }> }>;
    s.b1 = info[0].backup[0].label;
    await sleep(Math.max(0, (info[0].backup[0].timestamp.stop + 1) * 1000 - Date.now()));
    await query(c, "insert into t values ('t1')");
    s.time = (await query<{ t: string }>(c, "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00' as t"))[0].t;
    await query(c, "insert into t values ('t2')");
    await waitForArchived(c, await switchWal(c));
    expectSuccess(await fx.repoctl(['backup', '--stanza', 'main', '--start-fast', '--process-max', '4'], { timeoutMs: 120_000 }), 'backup 2');
    await query(c, "insert into t values ('after backup 2')");
    await waitForArchived(c, await switchWal(c));
    // backup 2 is an incremental on backup 1 (the default once a full exists)
    const after = JSON.parse((await fx.repoctl(['info', '--stanza', 'main', '--output', 'json'])).stdout) as Array<{ backup: Array<{ label: string }> }>;
    expect(after[0].backup.map((b) => b.label)[0]).toBe(s.b1);
    expect(after[0].backup).toHaveLength(2);
    s.b2 = after[0].backup[1].label;
  });

  step('options that do not fit the type are refused before anything is touched', async () => {
    const fx = fixture();
    const cases: Array<[string[], RegExp]> = [
      [['--type', 'name'], /--type name needs --target/],
      [['--target', 'release'], /--target applies to --type time, name, xid or lsn, not --type default/],
      [['--type', 'immediate', '--target-timeline', 'latest'], /--target-timeline applies to .* not --type immediate/],
      [['--type', 'name', '--target', 'x', '--target-exclusive'], /--target-exclusive applies to --type time, xid or lsn/],
      [['--target-action', 'promote'], /--target-action applies to --type immediate, time, name, xid or lsn, not --type default/],
      [['--type', 'time', '--target', '2020-01-01 00:00:00+00'], /no backup .* ended before 2020-01-01/],
      [['--type', 'xid', '--target', 'abc'], /not a transaction id/],
      [['--type', 'sometime'], /--type must be default, immediate, time, name, xid, lsn, standby, preserve or none/],
    ];
    for (const [args, pattern] of cases) {
      expectRefused(await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', ...args]), `restore ${args.join(' ')}`, pattern);
    }
    expect(fs.existsSync(fx.restoreDir), 'no refused restore created the target').toBe(false);
    // --delta removes what the backup lacks: never in a directory that is not a data directory
    const notPgData = await fx.newDir('not-pgdata');
    fs.writeFileSync(path.join(notPgData, 'keep.txt'), 'precious\n');
    expectRefused(await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--delta', '--pg-path', notPgData]), 'delta restore into a directory that is not a data directory', /no PG_VERSION/);
    expect(fs.readdirSync(notPgData)).toEqual(['keep.txt']);
  });

  step('--type time without --set picks backup 1, named in the output', async () => {
    const fx = fixture();
    const res = await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--process-max', '4', '--type', 'time', '--target', s.time!, '--target-action', 'promote'], { timeoutMs: 120_000 });
    expectSuccess(res, 'restore --type time');
    expect(res.stderr).toContain(`restoring backup ${s.b1} (the newest backup that ended before the target time`);
    expect(res.stdout).toContain(`restore of backup ${s.b1} complete`);
    expect(res.stdout).toContain(`recovery_target_time = '${s.time}'`);
    s.restored = clusterAt({ name: 'restored', dir: fx.restoreDir, port: fx.restorePort, socketDir: fx.socketDir });
    fx.clusters.push(s.restored);
    await startAndFinishRecovery(s.restored, NO_ARCHIVING);
    expect(await rows(s.restored)).toEqual(['l1', 'l2', 't1', 'x1', 'x2']);
    await stopCluster(s.restored);
  });

  step('--type xid --target-exclusive stops just before the transaction, --type xid just after', async () => {
    const fx = fixture();
    const r = await restore(fx, ['--delta', '--set', s.b1!, '--type', 'xid', '--target', s.xid!, '--target-exclusive', '--target-action', 'promote']);
    expect(r.restore.recovery).toContain("recovery_target_inclusive = 'false'");
    await startAndFinishRecovery(s.restored!, NO_ARCHIVING);
    expect(await rows(s.restored!)).toEqual([]);
    await stopCluster(s.restored!);
    await restore(fx, ['--delta', '--set', s.b1!, '--type', 'xid', '--target', s.xid!, '--target-action', 'promote']);
    await startAndFinishRecovery(s.restored!, NO_ARCHIVING);
    expect(await rows(s.restored!)).toEqual(['x1']);
    await stopCluster(s.restored!);
  });

  step('--type lsn without --set picks backup 1 and pauses at the target (the default action)', async () => {
    const fx = fixture();
    const r = await restore(fx, ['--delta', '--type', 'lsn', '--target', s.lsn!]);
    expect(r.label).toBe(s.b1);
    await startCluster(s.restored!, { settings: NO_ARCHIVING });
    await waitUntil('recovery to pause at the target', async () =>
      (await query<{ p: string }>(s.restored!, 'select pg_get_wal_replay_pause_state() as p'))[0].p === 'paused', { timeoutMs: 90_000, intervalMs: 200 });
    expect(await rows(s.restored!)).toEqual(['l1', 'x1', 'x2']);
    await stopCluster(s.restored!);
  });

  step('--type immediate of the newest backup, an incremental: its set restored over the last restore', async () => {
    const fx = fixture();
    const r = await restore(fx, ['--delta', '--type', 'immediate', '--target-action', 'promote']);
    expect(r.label).toBe(s.b2);
    await startAndFinishRecovery(s.restored!, NO_ARCHIVING);
    expect(await rows(s.restored!)).toEqual(['l1', 'l2', 't1', 't2', 'x1', 'x2']);
    await stopCluster(s.restored!);
  });
});
