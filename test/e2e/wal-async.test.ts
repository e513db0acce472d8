/**
 * Issue 5 end to end: archive-async with the shell entry point on a real cluster.
 * WAL is shipped ahead of archive_command and archive_command answers from the spool without
 * starting Node; the server goes away mid-burst and archiving catches up with nothing lost; a
 * restore replays all of it, mostly from the prefetch spool; with compress-type none segments
 * are stored byte for byte (they travel lz4-compressed); .history, .partial and .backup
 * files round-trip; a segment of another PostgreSQL version is refused naming both; and
 * archive-push-queue-max drops WAL, says so, and info and verify show the gap.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { expectRefused, expectSuccess } from '../harness/expect';
import { useFixture, type Fixture } from '../harness/fixture';
import { clusterAt, query, startCluster, switchWal, waitForArchived, type Cluster } from '../harness/pg';
import { archiveShPath, nodePath, runArchiveSh, type LogEntry } from '../harness/processes';
import { scenario } from '../harness/scenario';
import { chownToPostgres, waitUntil } from '../harness/system';

const ASYNC = ['--archive-async', '--process-max', '2', '--log-level', 'debug'];
const SEG = 16 * 1024 * 1024;

const sha1 = (file: string) => crypto.createHash('sha1').update(fs.readFileSync(file)).digest('hex');

/** Every WAL file in the repository: name → its stored file (pgBackRest's `<name>-<sha1>.gz`). */
function repoWal(fx: Fixture): Map<string, { file: string; sha1: string }> {
  const out = new Map<string, { file: string; sha1: string }>();
  const walk = (dir: string) => {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      const m = /^(.+)-([0-9a-f]{40})(\.(gz|lz4|zst))?$/.exec(e.name);
      if (m) out.set(m[1], { file: p, sha1: m[2] });
    }
  };
  walk(path.join(fx.repoDir, 'archive', fx.stanza));
  return out;
}

/** Writes WAL and switches `n` times; the names of the segments completed, in order. */
async function burst(c: Cluster, n: number, rowsPerSegment = 2000): Promise<string[]> {
  await query(c, 'create table if not exists burst (id serial, payload text)');
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    await query(c, `insert into burst (payload) select md5(g::text) from generate_series(1, ${rowsPerSegment}) g`);
    names.push(await switchWal(c));
  }
  return names;
}

const clientRequests = (entries: LogEntry[], op: 'push' | 'get') => entries.filter((e) => e.msg === `archive-${op} request from the client`);

describe('WAL archiving at production rate (archive-async, spool, queue-max, prefetch)', () => {
  const fixture = useFixture({ agent1Args: ASYNC, agent2Args: ['--log-level', 'debug'] });
  const step = scenario();
  const s: { label?: string; shipped?: string[]; outage?: string[]; restored?: Cluster; lastRows?: number; targetLsn?: string; openSegment?: string } = {};

  const outDir = (fx: Fixture) => path.join(fx.agent1Spool, 'archive', fx.stanza, 'out');
  const setArchiveCommand = async (fx: Fixture, command: string) => {
    await query(fx.cluster1, `alter system set archive_command = '${command.replace(/'/g, "''")}'`);
    await query(fx.cluster1, 'select pg_reload_conf()');
  };

  step('stanza-create and a full backup with the agent in async mode', async () => {
    const fx = fixture();
    expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'stanza-create');
    expectSuccess(await fx.repoctl(['backup', '--stanza', 'main', '--type', 'full', '--start-fast'], { timeoutMs: 200_000 }), 'backup');
    s.label = fs.readdirSync(path.join(fx.repoDir, 'backup', 'main')).filter((n) => /^\d{8}-\d{6}F$/.test(n)).sort().pop();
    expect(s.label).toBeDefined();
  });

  step('the agent ships ready segments before PostgreSQL asks; archive_command then answers from the spool', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    const [{ v: archiveCommand }] = await query<{ v: string }>(c, "select current_setting('archive_command') as v");
    // PostgreSQL stops calling archive_command: segments pile up as .ready, as when the archiver lags
    await setArchiveCommand(fx, '');
    const mark = fx.agent1.mark();
    const names = await burst(c, 12);
    await waitUntil('the agent to mark every segment durable', () => names.every((n) => fs.existsSync(path.join(outDir(fx), `${n}.ok`))), { timeoutMs: 90_000 });
    // durable before PostgreSQL asked, with the content PostgreSQL wrote
    const repo = repoWal(fx);
    for (const n of names) expect(repo.get(n)?.sha1, n).toBe(sha1(path.join(c.dir, 'pg_wal', n)));

    // the shell answers from the mark alone: no socket, and a node that would fail
    const sh = await archiveShPath();
    const alone = ['push', '--socket', path.join(fx.work, 'no-agent.sock'), '--spool-path', fx.agent1Spool, '--stanza', 'main', '--node', '/bin/false'];
    expectSuccess(await runArchiveSh([...alone, `pg_wal/${names[0]}`], c.dir), `${sh} push of a marked segment`);
    // never a false 0: a segment without a mark goes to the (failing) client
    const unmarked = await runArchiveSh([...alone, 'pg_wal/0000000100000000000000FE'], c.dir);
    expect(unmarked.code, unmarked.stderr).not.toBe(0);

    await setArchiveCommand(fx, archiveCommand);
    await waitForArchived(c, names[names.length - 1]);
    expect(clientRequests(fx.agent1.logs.slice(mark), 'push'), 'archive-push requests that reached the Node client').toEqual([]);
    // PostgreSQL marked them done: their marks are gone
    await waitUntil('the marks of archived segments to be removed', () => names.every((n) => !fs.existsSync(path.join(outDir(fx), `${n}.ok`))), { timeoutMs: 30_000 });
    s.shipped = names;
  }, 180_000);

  step('compress-type none: the segments travel lz4-compressed (compress-level-network) and are stored as PostgreSQL wrote them', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    await fx.restartAgent1([...ASYNC, '--compress-type', 'none']);
    const names = await burst(c, 2);
    await waitForArchived(c, names[names.length - 1]);
    const repo = repoWal(fx);
    for (const n of names) {
      const stored = repo.get(n)!;
      expect(path.basename(stored.file), 'no codec extension').toBe(`${n}-${stored.sha1}`);
      expect(fs.readFileSync(stored.file).equals(fs.readFileSync(path.join(c.dir, 'pg_wal', n))), `${n} stored byte for byte`).toBe(true);
    }
    await fx.restartAgent1(ASYNC);
  });

  step('server down mid-burst: the agent retries with back-off and catches up with nothing lost', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    const mark = fx.agent1.mark();
    const before = await burst(c, 3);
    await fx.stopServer();
    const during = await burst(c, 5);
    await fx.agent1.waitForLog((e) => e.msg === 'cannot archive WAL ahead of PostgreSQL; retrying', 60_000, mark);
    const [stat] = await query<{ failed: number }>(c, 'select failed_count::int as failed from pg_stat_archiver');
    expect(stat.failed, 'PostgreSQL was told the truth: archiving failed while the server was down').toBeGreaterThan(0);
    await fx.startServer();
    await fx.agent1.waitForLog('archiving works again', 90_000, mark);
    // one more segment wakes PostgreSQL's archiver, which had gone to sleep after its retries
    const after = await burst(c, 2);
    await waitForArchived(c, after[after.length - 1], 120_000);
    const repo = repoWal(fx);
    for (const n of [...before, ...during, ...after]) {
      const local = path.join(c.dir, 'pg_wal', n);
      expect(repo.get(n)?.sha1, `${n} in the repository with the right checksum`).toBe(sha1(local));
    }
    await query(c, 'create table if not exists marker (note text)');
    await query(c, "insert into marker values ('last write before the restore')");
    [s.lastRows] = (await query<{ n: number }>(c, 'select count(*)::int as n from burst')).map((r) => r.n);
    // recovery will stop here, in the segment still being written (so it is not archived and
    // has no .done): promotion then archives its first part as .partial
    const [target] = await query<{ lsn: string; seg: string }>(c, 'select pg_current_wal_lsn()::text as lsn, pg_walfile_name(pg_current_wal_lsn()) as seg');
    await query(c, "insert into marker values ('after the recovery target')");
    s.targetLsn = target.lsn;
    s.openSegment = target.seg;
    s.outage = during;
  }, 240_000);

  step('a segment of another PostgreSQL version is refused, naming both versions', async () => {
    const fx = fixture();
    const seg = s.shipped![0];
    const dir = await fx.newDir('pg16');
    const file = path.join(dir, seg.replace(/^00000001/, '0000000A'));
    const bytes = fs.readFileSync(path.join(fx.cluster1.dir, 'pg_wal', s.outage![0]));
    bytes.writeUInt16LE(0xd113, 0); // PostgreSQL 16's XLOG_PAGE_MAGIC
    fs.writeFileSync(file, bytes);
    await chownToPostgres(file);
    const msg = expectRefused(await fx.archivePush(file), 'archive-push of a PostgreSQL 16 segment into a 15 stanza');
    expect(msg).toMatch(/PostgreSQL 16/);
    expect(msg).toMatch(/PostgreSQL 15/);
    expect(repoWal(fx).has(path.basename(file))).toBe(false);
  });

  step('a restore replays it all, taking most segments from the prefetch spool; it promotes and archives .history and .partial (sync mode, without Node)', async () => {
    const fx = fixture();
    const res = await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', fx.restoreDir], { timeoutMs: 200_000 });
    expectSuccess(res, 'restore');
    const conf = fs.readFileSync(path.join(fx.restoreDir, 'postgresql.auto.conf'), 'utf8');
    expect(conf).toContain('pgrepo-archive get');
    const mark = fx.agent2!.mark();
    const restored = clusterAt({ dir: fx.restoreDir, port: fx.restorePort, socketDir: fx.socketDir, name: 'restored' });
    // the WAL not archived yet, as it would be found in pg_wal on a standby or a rescued primary
    const open = path.join(fx.restoreDir, 'pg_wal', s.openSegment!);
    fs.copyFileSync(path.join(fx.cluster1.dir, 'pg_wal', s.openSegment!), open);
    await chownToPostgres(open);
    fx.clusters.push(restored);
    // it archives, through agent db2 in sync mode, what it writes after promotion
    const sh = await archiveShPath();
    const archiveCommand = `${sh} push --socket ${fx.agent2Socket} --spool-path ${fx.agent2Spool} --stanza main --node ${nodePath} %p`;
    await startCluster(restored, {
      settings: {
        archive_mode: 'on', archive_command: archiveCommand,
        recovery_target_lsn: s.targetLsn!, recovery_target_inclusive: 'off', recovery_target_action: 'promote',
      },
    });
    await waitUntil('the restored cluster to finish recovery', async () => (await query<{ r: boolean }>(restored, 'select pg_is_in_recovery() as r'))[0].r === false, { timeoutMs: 180_000 });
    expect((await query<{ note: string }>(restored, 'select note from marker')).map((r) => r.note)).toEqual(['last write before the restore']);
    expect((await query<{ n: number }>(restored, 'select count(*)::int as n from burst'))[0].n).toBe(s.lastRows);

    const replayed = fs.readFileSync(restored.logFile, 'utf8').match(/restored log file "[0-9A-F]{24}" from archive/g) ?? [];
    expect(replayed.length).toBeGreaterThan(s.shipped!.length);
    // the first segment (and a few history-file probes) start Node; the rest come from the spool
    const viaClient = clientRequests(fx.agent2!.logs.slice(mark), 'get');
    expect(viaClient.length, `requests that started Node: ${viaClient.map((e) => e.wal).join(' ')}, of ${replayed.length} segments`).toBeLessThan(replayed.length / 3);
    s.restored = restored;

    // promotion wrote timeline 2's history file and archived the old timeline's last segment as .partial
    const [tl] = await query<{ tl: string }>(restored, "select lpad(to_hex(timeline_id), 8, '0') as tl from pg_control_checkpoint()");
    expect(tl.tl).toBe('00000002');
    await query(restored, 'checkpoint');
    await waitUntil('00000002.history and a .partial segment in the repository', () => {
      const repo = repoWal(fx);
      return repo.has('00000002.history') && [...repo.keys()].some((n) => n.endsWith('.partial'));
    }, { timeoutMs: 60_000 });
    // agent db2 is in sync mode: the shell asked it through the spool, and Node was never started for it
    const agent2Logs = fx.agent2!.logs.slice(mark);
    expect(clientRequests(agent2Logs, 'push')).toEqual([]);
    expect(agent2Logs.filter((e) => e.msg === 'archive-push request from the shell').map((e) => e.wal)).toEqual(expect.arrayContaining(['00000002.history']));
  }, 300_000);

  step('.history, .partial and .backup files come back byte for byte through pgrepo-archive get', async () => {
    const fx = fixture();
    const repo = repoWal(fx);
    const partial = [...repo.keys()].find((n) => n.endsWith('.partial'))!;
    const backup = [...repo.keys()].find((n) => n.endsWith('.backup'))!;
    expect(backup, 'the backup history file of the full backup').toBeDefined();
    const sources: Record<string, string | undefined> = {
      '00000002.history': path.join(fx.restoreDir, 'pg_wal', '00000002.history'),
      [partial]: path.join(fx.restoreDir, 'pg_wal', partial),
      [backup]: undefined, // removed from pg_wal by checkpoints: checked against the SHA-1 in its name
    };
    const dir = await fx.newDir('get-special');
    for (const [name, source] of Object.entries(sources)) {
      const dest = path.join(dir, `got-${name}`);
      const res = await runArchiveSh(['get', '--socket', fx.agent1Socket, '--spool-path', fx.agent1Spool, '--stanza', 'main', '--node', nodePath, name, dest], dir);
      expectSuccess(res, `pgrepo-archive get ${name}`);
      expect(sha1(dest), name).toBe(repo.get(name)!.sha1);
      if (source && fs.existsSync(source)) expect(sha1(dest), `${name} equals the cluster's own`).toBe(sha1(source));
    }
    expect(fs.readFileSync(path.join(dir, 'got-00000002.history'), 'utf8')).toMatch(/^1\t[0-9A-F]+\/[0-9A-F]+/);
    expect(fs.readFileSync(path.join(dir, `got-${backup}`), 'utf8')).toMatch(/^START WAL LOCATION: .*\nSTOP WAL LOCATION: /);
    expect(fs.statSync(path.join(dir, `got-${partial}`)).size).toBe(SEG);
    // a name the archive does not have: exit 1, the end of recovery
    const missing = await runArchiveSh(['get', '--socket', fx.agent1Socket, '--spool-path', fx.agent1Spool, '--stanza', 'main', '--node', nodePath, '00000099.history', path.join(dir, 'nothing')], dir);
    expect(missing.code).toBe(1);
  }, 120_000);

  step('archive-push-queue-max: with the server gone, the queue is dropped, PostgreSQL goes on, and info shows the gap', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    await fx.restartAgent1([...ASYNC, '--archive-push-queue-max', `${3 * SEG}`]);
    const mark = fx.agent1.mark();
    await fx.stopServer();
    // the fourth ready segment takes the queue over 3 segments: the whole queue is dropped
    const names = await burst(c, 4);
    await fx.agent1.waitForLog((e) => (e.level ?? 0) >= 50 && /dropped/.test(String(e.msg)), 60_000, mark);
    // PostgreSQL was told they are archived, though the server is down: its disk is saved
    await waitForArchived(c, names[names.length - 1], 120_000);
    const dropLogs = fx.agent1.findLogs((e) => (e.level ?? 0) >= 50 && /dropped/.test(String(e.msg)), mark);
    const dropped = dropLogs.flatMap((e) => e.wal as string[]).sort();
    expect(dropped).toEqual(names);
    expect(String(dropLogs[0].msg)).toMatch(/archive-push-queue-max/);

    await fx.startServer();
    await fx.agent1.waitForLog('dropped WAL recorded in the repository', 60_000, mark);
    // archiving goes on after the gap
    const [next] = await burst(c, 1);
    await waitForArchived(c, next, 120_000);
    const json = await fx.repoctl(['info', '--stanza', 'main', '--output', 'json']);
    expectSuccess(json, 'info --output json');
    const [info] = JSON.parse(json.stdout);
    expect(info['archive-dropped'].count).toBe(dropped.length);
    const gapped = new Set<string>();
    for (const g of info['archive-gap'] as { first: string; last: string; dropped: boolean }[]) {
      if (!g.dropped) continue;
      for (const n of dropped) if (n >= g.first && n <= g.last) gapped.add(n);
    }
    expect([...gapped].sort()).toEqual([...dropped].sort());
    const repo = repoWal(fx);
    for (const n of dropped) expect(repo.has(n), `${n} is not in the repository`).toBe(false);
    const backup = (info.backup as { label: string; 'wal-gap'?: string }[]).find((b) => b.label === s.label)!;
    expect(backup['wal-gap'], 'the backup is marked: recovery from it stops at the gap').toBe(dropped[0]);
    const text = await fx.repoctl(['info', '--stanza', 'main']);
    expect(text.stdout).toMatch(/wal dropped by archive-push-queue-max: \d+ file/);
    expect(text.stdout).toMatch(/wal gap \(15-1\): .*dropped by archive-push-queue-max/);
    expect(text.stdout).toMatch(/recovery from this backup stops before/);

    // verify reads the whole repository and fails on the gap, saying where it came from
    const verify = await fx.repoctl(['verify', '--stanza', 'main'], { timeoutMs: 200_000 });
    expect(verify.code, verify.stdout + verify.stderr).not.toBe(0);
    expect(verify.stdout).toContain(`missing WAL ${dropped[0]}-${dropped[dropped.length - 1]} (dropped by the agent for archive-push-queue-max`);
  }, 300_000);
});
