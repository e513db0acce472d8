/**
 * WAL archiving against pgBackRest, in one run (`npm run bench:wal`, bench/README.md): start-up
 * costs, one archive-push call on a real 16 MiB segment per codec, the drain rate of a backlog,
 * the archive lag under pgbench load, and recovery replay through archive-get. pgrepo sync and
 * async (archive-async, the shell entry point answering from the spool) against pgBackRest sync
 * and async. Not a test: run by vitest only to reuse the harness (real PostgreSQL, real server
 * and agents over mutual TLS). Every call is timed as PostgreSQL runs it: `sh -c "<command>"`.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, it } from 'vitest';
import { COMPRESS_TYPES } from '../shared/stream/compress';
import { parseSegmentName, segmentAt, segmentOrdinal, segmentsBetween } from '../shared/wal';
import { makeCerts, type CertSet } from '../test/harness/certs';
import { writeResultsSection } from './results';
import { ensurePgbackrest, ownedDir } from './setup';
import { runCleanups } from '../test/harness/cleanup';
import { clusterAt, freePort, initCluster, pgBindir, postmasterPid, query, startCluster, stopCluster, switchWal, type Cluster } from '../test/harness/pg';
import { archiveShPath, nodePath, programPath, repoctl, startAgent, startServer, type Proc, type RepoctlConnection } from '../test/harness/processes';
import { chownToPostgres, describeRun, run, runOk, sleep, waitUntil } from '../test/harness/system';

const env = process.env;
const BENCH_DIR = env.PGREPO_WAL_BENCH_DIR ?? '/var/tmp/pgrepo-bench-wal';
const CALLS = Number(env.BENCH_CALLS ?? 11);
const ASYNC_ROUNDS = Number(env.BENCH_ASYNC_ROUNDS ?? 3);
const BACKLOG = Number(env.BENCH_BACKLOG ?? 200);
const DRAIN_RUNS = Number(env.BENCH_DRAIN_RUNS ?? 3);
const LOAD_SECONDS = Number(env.BENCH_LOAD_SECONDS ?? 30);
const REPLAY = Number(env.BENCH_REPLAY_SEGMENTS ?? 300);
const PROCESS_MAX = Number(env.BENCH_PROCESS_MAX ?? 2);
const parseCodecs = (s: string) => s.split(',').map((c) => { const [type, level] = c.split(':'); return { type, level: Number(level ?? 0) }; })
  .filter((c) => (COMPRESS_TYPES as readonly string[]).includes(c.type));
const CODECS = parseCodecs(env.BENCH_CODECS ?? 'gz:6,lz4:1,zst:3,none:0');
const DRAIN_CODECS = parseCodecs(env.BENCH_DRAIN_CODECS ?? 'gz:6,zst:3');
const PHASES = new Set((env.BENCH_PHASES ?? 'calls,drain,lag,replay').split(','));
const FIGURES = env.BENCH_WAL_FIGURES ?? `${BENCH_DIR}-figures.json`;
const STANZA = 'bench';
const SEG = 16 * 1024 * 1024;
const MiB = 1024 * 1024;

type Codec = { type: string; level: number };
const codecName = (c: Codec) => (c.type === 'none' ? 'none' : `${c.type}-${c.level}`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const ms = (us: number) => (us / 1000).toFixed(1);

// ---- set-up ------------------------------------------------------------------------------

async function asPostgres(cmd: string, args: string[], timeoutMs = 600_000): Promise<string> {
  return (await runOk(cmd, args, { asPostgres: true, timeoutMs, cwd: BENCH_DIR })).stdout;
}

/** A file the postgres user writes, with the content given. */
async function writeOwned(file: string, text: string): Promise<void> {
  await fsp.writeFile(file, text);
  await chownToPostgres(file);
}

const TIMER = `#!/bin/bash
# each line of $1 is a command; run it as PostgreSQL does (sh -c) and print "<exit code> <microseconds>"
while IFS= read -r line; do
  s=$EPOCHREALTIME
  sh -c "$line" >/dev/null 2>>"$2"
  rc=$?
  e=$EPOCHREALTIME
  echo "$rc $(( 10#\${e/./} - 10#\${s/./} ))"
done < "$1"
`;

/** Runs each command with `sh -c` in `cwd` as postgres, timing each from bash (no fork to read the clock). */
async function timeCalls(commands: string[], cwd: string): Promise<number[]> {
  const list = path.join(BENCH_DIR, 'calls.txt');
  const errors = path.join(BENCH_DIR, 'calls.err');
  await writeOwned(list, `${commands.join('\n')}\n`);
  await writeOwned(errors, '');
  const res = await run('bash', [path.join(BENCH_DIR, 'timer.sh'), list, errors], { asPostgres: true, timeoutMs: 3_600_000, cwd });
  const lines = res.stdout.trim().split('\n').map((l) => l.split(' ').map(Number));
  const failed = lines.filter(([rc]) => rc !== 0);
  if (res.code !== 0 || failed.length || lines.length !== commands.length) {
    throw new Error(`timed calls failed (${failed.length} of ${commands.length}): ${commands[0]}\n${fs.readFileSync(errors, 'utf8').slice(-2000)}`);
  }
  return lines.map(([, us]) => us);
}

interface Bench {
  certs: CertSet;
  server: string;
  serverPid: number;
  conn: RepoctlConnection;
  cluster: Cluster;
  sockDir: string;
  agents: Map<string, Proc>;
}

/** (Re)starts the named agent with these flags (its own socket and spool). */
async function agent(b: Bench, name: string, pgPath: string, extra: string[]): Promise<{ socket: string; spool: string }> {
  const socket = path.join(b.sockDir, `${name}.sock`);
  const spool = path.join(BENCH_DIR, `spool-${name}`);
  await b.agents.get(name)?.stop();
  const proc = await startAgent({
    identity: 'db1', server: b.server, certs: b.certs, stanza: STANZA, pgPath, pgPort: b.cluster.port, pgSocketPath: b.sockDir, socket, spoolPath: spool,
    extraArgs: extra, logFile: path.join(BENCH_DIR, `agent-${name}.log`),
  });
  b.agents.set(name, proc);
  return { socket, spool };
}

const pgrepoFlags = (c: Codec) => ['--compress-type', c.type, '--compress-level', String(c.level)];
const pgbrFlags = (c: Codec) => `--compress-type=${c.type}${c.type === 'none' ? '' : ` --compress-level=${c.level}`}`;

async function pgrepoPushCommand(socket: string, spool: string): Promise<string> {
  return `${await archiveShPath()} push --socket ${socket} --spool-path ${spool} --stanza ${STANZA} --node ${nodePath} %p`;
}

const pgbrConfig = (name: string) => path.join(BENCH_DIR, `pgbackrest-${name}.conf`);

async function writePgbrConfig(name: string, pgPath: string, cluster: Cluster): Promise<void> {
  await writeOwned(pgbrConfig(name), [
    '[global]',
    `repo1-path=${path.join(BENCH_DIR, 'repo-pgbackrest')}`,
    `spool-path=${path.join(BENCH_DIR, `pgbr-spool-${name}`)}`,
    `lock-path=${path.join(BENCH_DIR, `pgbr-lock-${name}`)}`,
    `log-path=${path.join(BENCH_DIR, 'pgbr-log')}`,
    'log-level-console=warn',
    'log-level-stderr=warn',
    'log-level-file=off',
    'start-fast=y',
    `[${STANZA}]`,
    `pg1-path=${pgPath}`,
    `pg1-port=${cluster.port}`,
    `pg1-socket-path=${cluster.socketDir}`,
    '',
  ].join('\n'));
}

const pgbrPush = (config: string, c: Codec, async: boolean) =>
  `pgbackrest --config=${pgbrConfig(config)} --stanza=${STANZA} ${pgbrFlags(c)}${async ? ` --archive-async --process-max=${PROCESS_MAX}` : ''} archive-push %p`;

async function setArchiveCommand(c: Cluster, command: string): Promise<void> {
  await query(c, `alter system set archive_command = '${command.replace(/'/g, "''")}'`);
  await query(c, 'select pg_reload_conf()');
}

async function lastArchived(c: Cluster): Promise<string> {
  const [r] = await query<{ w: string | null }>(c, 'select last_archived_wal as w from pg_stat_archiver');
  return (r.w ?? '').slice(0, 24);
}

async function waitArchived(c: Cluster, segment: string, timeoutMs = 1_800_000): Promise<void> {
  await waitUntil(`archiving of ${segment}`, async () => (await lastArchived(c)) >= segment, { timeoutMs, intervalMs: 50 });
}

const currentSegment = async (c: Cluster) => (await query<{ s: string }>(c, 'select pg_walfile_name(pg_current_wal_lsn()) as s'))[0].s;

/**
 * Writes WAL until `n` more segments are complete and returns their names: with `pgbench -i`
 * (pgbench's tables loaded again and again: realistic rows and indexes, and fast, where the
 * TPC-B run writes only a few MiB/s of WAL on a small machine) or bulk inserts.
 */
async function makeWal(c: Cluster, n: number, how: 'pgbench' | 'insert'): Promise<string[]> {
  const first = await currentSegment(c);
  const goal = segmentAt(parseSegmentName(first).timeline, segmentOrdinal(first, SEG) + n, SEG);
  while ((await currentSegment(c)) < goal) {
    if (how === 'pgbench') {
      await asPostgres(path.join(pgBindir(), 'pgbench'), ['-i', '-q', '-s', '10', '-h', c.socketDir, '-p', String(c.port), '-U', 'postgres', 'postgres'], 3_600_000);
    } else {
      await query(c, 'create table if not exists walgen (id bigint, a text, b text)');
      await query(c, `insert into walgen select g, md5(g::text) || md5((g * 7)::text), repeat(chr(65 + (g % 26)), 40) from generate_series(1, 50000) g`);
    }
  }
  const last = await switchWal(c);
  return segmentsBetween(first, last, SEG);
}

const CLK_TCK = 100; // Linux's USER_HZ

/** The command lines of a process's children (from /proc). */
function childProcesses(pid: number): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== pid) continue;
      found.push(fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ').trim());
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/**
 * User + system CPU seconds of a process so far (/proc/PID/stat), its threads included; with
 * `children`, also those of its children that have exited and been waited for.
 */
function cpuSeconds(pid: number, children = false): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const own = Number(fields[11]) + Number(fields[12]);
  return (children ? own + Number(fields[13]) + Number(fields[14]) : own) / CLK_TCK;
}

// ---- the phases --------------------------------------------------------------------------

interface CallRow { codec: string; pgrepoSync: number; pgbrSync: number; pgrepoAsync: number; pgbrAsync: number }

/** A PGDATA with only what archive-push reads: global/pg_control and pg_wal/archive_status. */
async function fakePgdata(b: Bench, name: string): Promise<string> {
  const dir = await ownedDir(path.join(BENCH_DIR, `fake-${name}`));
  await ownedDir(path.join(dir, 'global'));
  await ownedDir(path.join(dir, 'pg_wal'));
  await ownedDir(path.join(dir, 'pg_wal', 'archive_status'));
  await fsp.copyFile(path.join(b.cluster.dir, 'global', 'pg_control'), path.join(dir, 'global', 'pg_control'));
  await chownToPostgres(path.join(dir, 'global', 'pg_control'));
  return dir;
}

/**
 * PostgreSQL fsyncs a segment before it marks it ready; a copy left dirty in the page cache would
 * be written back while the calls are timed, a disturbance no archive_command meets.
 */
async function fsyncFile(file: string): Promise<void> {
  const h = await fsp.open(file, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

let timeline = 0x100;
/** Copies of the real segments under fresh names (a timeline of their own), so every push is a first push. */
async function placeSegments(pgdata: string, templates: string[], ready: boolean): Promise<string[]> {
  const tl = (timeline++).toString(16).toUpperCase().padStart(8, '0');
  const names: string[] = [];
  for (let i = 0; i < templates.length; i++) {
    const name = `${tl}00000000${(i + 1).toString(16).toUpperCase().padStart(8, '0')}`;
    const file = path.join(pgdata, 'pg_wal', name);
    await fsp.copyFile(templates[i], file);
    await chownToPostgres(file);
    await fsyncFile(file);
    if (ready) await writeOwned(path.join(pgdata, 'pg_wal', 'archive_status', `${name}.ready`), '');
    names.push(name);
  }
  return names;
}

async function waitForFiles(files: string[], what: string): Promise<void> {
  await waitUntil(what, () => files.every((f) => fs.existsSync(f)), { timeoutMs: 600_000, intervalMs: 50 });
}

/**
 * An async call costs a few milliseconds, where a neighbour's burst of work on this shared machine
 * shows as much: each shipped segment is asked for ASYNC_ROUNDS times (its mark stays while its
 * .ready does, in both tools), and the median is taken over all of those calls.
 */
const again = (names: string[]) => Array.from({ length: ASYNC_ROUNDS }, () => names).flat();

async function oneCallPhase(b: Bench, templates: string[]): Promise<{ rows: CallRow[]; startup: Record<string, number> }> {
  const rows: CallRow[] = [];
  const startup: Record<string, number> = {};
  const fakeSync = await fakePgdata(b, 'pgrepo-sync');
  const fakeAsync = await fakePgdata(b, 'pgrepo-async');
  const fakePgbr = await fakePgdata(b, 'pgbackrest');
  await writePgbrConfig('fake', fakePgbr, b.cluster);
  const sh = await archiveShPath();
  for (const codec of CODECS) {
    const label = codecName(codec);
    // pgrepo sync: every call starts the Node client, which hands the segment to the agent
    const s = await agent(b, 'fake-sync', fakeSync, pgrepoFlags(codec));
    let names = await placeSegments(fakeSync, templates, false);
    const pgrepoSync = median(await timeCalls(names.map((n) => (`${sh} push --socket ${s.socket} --spool-path ${s.spool} --stanza ${STANZA} --node ${nodePath} pg_wal/${n}`)), fakeSync));

    // pgrepo async: the agent has shipped the segment before PostgreSQL asks
    const a = await agent(b, 'fake-async', fakeAsync, [...pgrepoFlags(codec), '--archive-async', '--process-max', String(PROCESS_MAX)]);
    names = await placeSegments(fakeAsync, templates, true);
    await waitForFiles(names.map((n) => path.join(a.spool, 'archive', STANZA, 'out', `${n}.ok`)), 'pgrepo to ship the segments');
    const pgrepoAsync = median(await timeCalls(again(names).map((n) => `${sh} push --socket ${a.socket} --spool-path ${a.spool} --stanza ${STANZA} --node ${nodePath} pg_wal/${n}`), fakeAsync));
    if (!startup.node) {
      startup.node = median(await timeCalls(Array(CALLS).fill(`${nodePath} -e 0`), fakeAsync));
      // the Node client's round trip to the agent for a segment the agent already has
      const main = await programPath('agent');
      startup.client = median(await timeCalls(names.map((n) => `${nodePath} ${main} archive-push --socket ${a.socket} pg_wal/${n}`), fakeAsync));
      startup.sh = pgrepoAsync;
    }
    for (const n of names) await fsp.rm(path.join(fakeAsync, 'pg_wal', 'archive_status', `${n}.ready`));

    // pgBackRest sync
    names = await placeSegments(fakePgbr, templates, false);
    const pgbrSync = median(await timeCalls(names.map((n) => pgbrPush('fake', codec, false).replace('%p', `pg_wal/${n}`)), fakePgbr));

    // pgBackRest async: the first call starts its async process, which pushes every ready segment
    names = await placeSegments(fakePgbr, [templates[0], ...templates], true);
    await timeCalls([pgbrPush('fake', codec, true).replace('%p', `pg_wal/${names[0]}`)], fakePgbr);
    const rest = names.slice(1);
    await waitForFiles(rest.map((n) => path.join(BENCH_DIR, 'pgbr-spool-fake', 'archive', STANZA, 'out', `${n}.ok`)), 'pgBackRest to push the segments');
    const pgbrAsync = median(await timeCalls(again(rest).map((n) => pgbrPush('fake', codec, true).replace('%p', `pg_wal/${n}`)), fakePgbr));
    for (const n of names) await fsp.rm(path.join(fakePgbr, 'pg_wal', 'archive_status', `${n}.ready`), { force: true });
    if (!startup.pgbrAsync) startup.pgbrAsync = pgbrAsync;

    rows.push({ codec: label, pgrepoSync, pgbrSync, pgrepoAsync, pgbrAsync });
    console.log(`[bench] one call, ${label}: pgrepo sync ${ms(pgrepoSync)} ms, pgBackRest sync ${ms(pgbrSync)} ms, pgrepo async ${ms(pgrepoAsync)} ms, pgBackRest async ${ms(pgbrAsync)} ms`);
  }
  await b.agents.get('fake-sync')?.stop();
  await b.agents.get('fake-async')?.stop();
  return { rows, startup };
}

interface Tool {
  name: string;
  /** starts what the set-up needs and returns its archive_command */
  setup: (codec: Codec) => Promise<string>;
  /** stops what would archive while PostgreSQL's archiving is paused (pgrepo's async agent reads ahead by itself); setup starts it again */
  pause?: () => Promise<void>;
}

/** The archive_command of each of the four set-ups for the real cluster. */
function tools(b: Bench): Tool[] {
  const pgrepo = (extra: string[]) => async (codec: Codec) => {
    const a = await agent(b, 'real', b.cluster.dir, [...pgrepoFlags(codec), ...extra]);
    return pgrepoPushCommand(a.socket, a.spool);
  };
  // pgrepo's agent is stopped while pgBackRest archives: an async one would ship the same
  // ready segments at the same time, and take cores from pgBackRest
  const pgbr = (async: boolean) => async (codec: Codec) => {
    await b.agents.get('real')?.stop();
    return pgbrPush('real', codec, async);
  };
  return [
    { name: 'pgrepo sync', setup: pgrepo([]) },
    { name: 'pgBackRest sync', setup: pgbr(false) },
    { name: 'pgrepo async', setup: pgrepo(['--archive-async', '--process-max', String(PROCESS_MAX)]), pause: async () => b.agents.get('real')?.stop() },
    { name: 'pgBackRest async', setup: pgbr(true) },
  ];
}

interface DrainRow { codec: string; rates: Record<string, number>; cpu: Record<string, string>; runs: number; backlog: number; run?: string }

/** One drain: pause archiving, build a backlog, resume, and time until PostgreSQL has archived it all. */
async function drainOnce(b: Bench, tool: Tool, codec: Codec): Promise<{ rate: number; cpu: string }> {
  let command = await tool.setup(codec);
  // whatever is pending goes first, untimed
  await setArchiveCommand(b.cluster, command);
  await waitArchived(b.cluster, await switchWal(b.cluster));
  await setArchiveCommand(b.cluster, '');
  await tool.pause?.();
  await query(b.cluster, 'checkpoint');
  const backlog = await makeWal(b.cluster, BACKLOG, 'pgbench');
  // the drain starts when archiving resumes: for an agent stopped meanwhile, when it starts
  // reading ahead again (its 'agent started' line; Node's own start-up is not archiving time)
  let t0 = Date.now();
  if (tool.pause) {
    command = await tool.setup(codec);
    t0 = Date.parse(String((await b.agents.get('real')!.waitForLog('agent started', 60_000)).time));
  }
  const pids = tool.name.startsWith('pgrepo') ? [b.agents.get('real')!.child.pid!, b.serverPid] : [];
  const cpu0 = pids.map((p) => cpuSeconds(p));
  await setArchiveCommand(b.cluster, command);
  await waitArchived(b.cluster, backlog[backlog.length - 1]);
  const seconds = (Date.now() - t0) / 1000;
  const perSegment = (i: number) => ((cpuSeconds(pids[i]) - cpu0[i]) * 1000 / backlog.length).toFixed(0);
  const cpu = pids.length ? `agent ${perSegment(0)} ms, server ${perSegment(1)} ms` : '';
  console.log(`[bench] drain of ${backlog.length} segments, ${codecName(codec)}, ${tool.name}: ${seconds.toFixed(1)} s, ${(backlog.length / seconds).toFixed(1)} segments/s${cpu ? ` (CPU per segment: ${cpu})` : ''}`);
  return { rate: backlog.length / seconds, cpu };
}

async function drainPhase(b: Bench): Promise<DrainRow[]> {
  const rows: DrainRow[] = [];
  for (const codec of DRAIN_CODECS) {
    const runs = new Map<string, { rate: number; cpu: string }[]>();
    // the tools take turns, run after run, so that each meets the same weather on a shared machine
    for (let run = 0; run < DRAIN_RUNS; run++) {
      for (const tool of tools(b)) runs.set(tool.name, [...(runs.get(tool.name) ?? []), await drainOnce(b, tool, codec)]);
    }
    const rates: Record<string, number> = {};
    const cpu: Record<string, string> = {};
    for (const [name, rs] of runs) {
      const mid = [...rs].sort((x, y) => x.rate - y.rate)[Math.floor(rs.length / 2)];
      rates[name] = mid.rate;
      cpu[name] = mid.cpu;
    }
    rows.push({ codec: codecName(codec), rates, cpu, runs: DRAIN_RUNS, backlog: BACKLOG });
  }
  return rows;
}

interface LagRow { tool: string; tps: number; walMiBs: number; maxLagMiB: number; meanLagMiB: number }

const lsnBytes = (lsn: string) => { const [hi, lo] = lsn.split('/'); return Number(BigInt(`0x${hi}`) * 2n ** 32n + BigInt(`0x${lo}`)); };
const segmentEnd = (name: string) => (Number(BigInt(`0x${name.slice(8, 16)}`) * 256n + BigInt(`0x${name.slice(16, 24)}`)) + 1) * SEG;

async function lagPhase(b: Bench): Promise<LagRow[]> {
  const rows: LagRow[] = [];
  const codec = DRAIN_CODECS[0];
  for (const tool of tools(b)) {
    await setArchiveCommand(b.cluster, await tool.setup(codec));
    await waitArchived(b.cluster, await switchWal(b.cluster));
    const [start] = await query<{ l: string }>(b.cluster, 'select pg_current_wal_lsn()::text as l');
    const lags: number[] = [];
    const bench = run(path.join(pgBindir(), 'pgbench'), ['-n', '-c', '4', '-j', '2', '-T', String(LOAD_SECONDS), '-h', b.cluster.socketDir, '-p', String(b.cluster.port), '-U', 'postgres', 'postgres'],
      { asPostgres: true, timeoutMs: (LOAD_SECONDS + 120) * 1000 });
    let done = false;
    bench.then(() => { done = true; }, () => { done = true; });
    while (!done) {
      const [r] = await query<{ l: string; w: string | null }>(b.cluster, 'select pg_current_wal_lsn()::text as l, last_archived_wal as w from pg_stat_archiver');
      if (r.w && /^[0-9A-F]{24}$/.test(r.w)) lags.push(Math.max(0, lsnBytes(r.l) - segmentEnd(r.w)));
      await sleep(500);
    }
    const res = await bench;
    const [end] = await query<{ l: string }>(b.cluster, 'select pg_current_wal_lsn()::text as l');
    const tps = Number(/tps = ([\d.]+)/.exec(res.stdout)?.[1] ?? 0);
    const row = {
      tool: tool.name, tps, walMiBs: (lsnBytes(end.l) - lsnBytes(start.l)) / MiB / LOAD_SECONDS,
      maxLagMiB: Math.max(0, ...lags) / MiB, meanLagMiB: lags.reduce((x, y) => x + y, 0) / Math.max(1, lags.length) / MiB,
    };
    console.log(`[bench] lag under pgbench, ${tool.name}: ${row.tps.toFixed(0)} tps, ${row.walMiBs.toFixed(1)} MiB/s WAL, lag max ${row.maxLagMiB.toFixed(1)} MiB, mean ${row.meanLagMiB.toFixed(1)} MiB`);
    rows.push(row);
  }
  return rows;
}

/** `cpu`: CPU per segment, where the time went */
interface ReplayRow { what: string; segments: number; seconds: number; viaNode?: number; cpu: string }

async function replayPhase(b: Bench): Promise<ReplayRow[]> {
  const codec = DRAIN_CODECS[0];
  // archive into both repositories at once, each in its fast mode
  const a = await agent(b, 'real', b.cluster.dir, [...pgrepoFlags(codec), '--archive-async', '--process-max', String(PROCESS_MAX)]);
  await setArchiveCommand(b.cluster, `${(await pgrepoPushCommand(a.socket, a.spool)).replace(' %p', ' "%p"')} && ${pgbrPush('real', codec, true)}`);
  await waitArchived(b.cluster, await switchWal(b.cluster));
  const base = path.join(BENCH_DIR, 'base');
  await fsp.rm(base, { recursive: true, force: true });
  await asPostgres(path.join(pgBindir(), 'pg_basebackup'), ['-D', base, '-X', 'none', '-c', 'fast', '-h', b.cluster.socketDir, '-p', String(b.cluster.port), '-U', 'postgres']);
  const segments = await makeWal(b.cluster, REPLAY, 'insert');
  await waitArchived(b.cluster, segments[segments.length - 1]);
  // every recovery must end with exactly these rows: a recovery that stopped early is a failure, not a fast run
  const [{ n: expectedRows }] = await query<{ n: number }>(b.cluster, 'select count(*)::int as n from walgen');
  console.log(`[bench] ${segments.length} segments archived in both repositories for the replay`);

  const restoreDir = path.join(BENCH_DIR, 'replay');
  const sh = await archiveShPath();
  const setups: { what: string; command: () => Promise<string>; agentName?: string }[] = [
    { what: `pgrepo, prefetch (archive-get-queue-max 128MiB, process-max ${PROCESS_MAX})`, agentName: 'restore', command: async () => {
      const r = await agent(b, 'restore', restoreDir, ['--process-max', String(PROCESS_MAX), '--log-level', 'debug']);
      return `${sh} get --socket ${r.socket} --spool-path ${r.spool} --stanza ${STANZA} --node ${nodePath} %f "%p"`;
    } },
    { what: 'pgrepo, no prefetch (archive-get-queue-max 0)', agentName: 'restore', command: async () => {
      const r = await agent(b, 'restore', restoreDir, ['--archive-get-queue-max', '0', '--log-level', 'debug']);
      return `${sh} get --socket ${r.socket} --spool-path ${r.spool} --stanza ${STANZA} --node ${nodePath} %f "%p"`;
    } },
    { what: `pgBackRest async (archive-get-queue-max 128MiB, process-max ${PROCESS_MAX})`, command: async () => `pgbackrest --config=${pgbrConfig('real')} --stanza=${STANZA} --pg1-path=${restoreDir} --archive-async --process-max=${PROCESS_MAX} archive-get %f "%p"` },
    { what: 'pgBackRest sync', command: async () => `pgbackrest --config=${pgbrConfig('real')} --stanza=${STANZA} --pg1-path=${restoreDir} archive-get %f "%p"` },
  ];
  const rows: ReplayRow[] = [];
  for (const setup of setups) {
    await fsp.rm(restoreDir, { recursive: true, force: true });
    await asPostgres('cp', ['-a', base, restoreDir]);
    await writeOwned(path.join(restoreDir, 'recovery.signal'), '');
    const command = await setup.command();
    const c = clusterAt({ dir: restoreDir, port: await freePort(), socketDir: b.sockDir, name: 'replay' });
    await fsp.rm(c.logFile, { force: true });
    const mark = setup.agentName ? b.agents.get(setup.agentName)!.mark() : 0;
    const pids = setup.agentName ? [b.agents.get(setup.agentName)!.child.pid!, b.serverPid] : [];
    const cpu0 = pids.map((p) => cpuSeconds(p));
    const t0 = process.hrtime.bigint();
    await startCluster(c, { settings: { archive_mode: 'off', restore_command: command, recovery_target_action: 'promote', shared_buffers: '256MB' }, timeoutMs: 1_800_000 });
    await waitUntil('recovery to finish', async () => (await query<{ r: boolean }>(c, 'select pg_is_in_recovery() as r'))[0].r === false, { timeoutMs: 3_600_000, intervalMs: 50 });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    // once the startup process (replay, and the restore_command it ran) has exited and been
    // waited for, its CPU is in the postmaster's children's
    const postmaster = postmasterPid(c)!;
    await waitUntil('the startup process to exit', () => !childProcesses(postmaster).some((cmd) => cmd.startsWith('postgres: startup')), { timeoutMs: 60_000, intervalMs: 20 });
    const pgCpu = cpuSeconds(postmaster, true);
    const toolCpu = pids.map((p, i) => cpuSeconds(p) - cpu0[i]);
    const [{ n: got }] = await query<{ n: number }>(c, 'select count(*)::int as n from walgen');
    await stopCluster(c, 'immediate');
    const log = fs.readFileSync(c.logFile, 'utf8');
    await fsp.copyFile(c.logFile, path.join(BENCH_DIR, `replay-${rows.length + 1}.log`));
    if (got !== expectedRows) throw new Error(`${setup.what}: recovery ended with ${got} rows of ${expectedRows}: it stopped before the end of the archive (log: ${path.join(BENCH_DIR, `replay-${rows.length + 1}.log`)})`);
    const replayed = (log.match(/restored log file "[0-9A-F]{24}" from archive/g) ?? []).length;
    const viaNode = setup.agentName ? b.agents.get(setup.agentName)!.findLogs('archive-get request from the client', mark).length : undefined;
    const perSegment = (cpuS: number) => `${(cpuS * 1000 / Math.max(1, replayed)).toFixed(0)} ms`;
    const cpu = [`PostgreSQL (replay and restore_command) ${perSegment(pgCpu)}`, ...(pids.length ? [`agent ${perSegment(toolCpu[0])}`, `server ${perSegment(toolCpu[1])}`] : [])].join(', ');
    rows.push({ what: setup.what, segments: replayed, seconds, viaNode, cpu });
    console.log(`[bench] replay, ${setup.what}: ${replayed} segments in ${seconds.toFixed(1)} s (${(replayed / seconds).toFixed(1)}/s)${viaNode === undefined ? '' : `, ${viaNode} requests started Node`} (CPU per segment: ${cpu})`);
  }
  await fsp.rm(restoreDir, { recursive: true, force: true });
  return rows;
}

// ---- the report --------------------------------------------------------------------------

/**
 * The figures of every phase, kept across runs (BENCH_WAL_FIGURES, beside the bench directory,
 * which each run empties): a run replaces the phases it measured (the drain codec by codec), so
 * a full table can be measured in several runs short enough to hold the machine-wide lock for.
 */
interface Figures {
  versions?: string;
  calls?: { rows: CallRow[]; startup: Record<string, number>; run: string };
  drain?: Record<string, DrainRow>;
  lag?: { rows: LagRow[]; run: string; seconds: number; codec: string };
  replay?: { rows: ReplayRow[]; run: string; segments: number; codec: string };
}

function loadFigures(): Figures {
  if (env.BENCH_WAL_FRESH === '1' || !fs.existsSync(FIGURES)) return {};
  return JSON.parse(fs.readFileSync(FIGURES, 'utf8')) as Figures;
}

/** When and under what load a phase ran: the 1-minute load average at its start and end. */
async function measured<T>(what: () => Promise<T>): Promise<{ value: T; run: string }> {
  const start = os.loadavg()[0];
  const value = await what();
  return { value, run: `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, load average ${start.toFixed(1)} at the start, ${os.loadavg()[0].toFixed(1)} at the end` };
}

function report(f: Figures): string {
  const ratio = (a: number, b: number) => (b ? (a / b).toFixed(2) : '-');
  const o = { calls: f.calls?.rows ?? [], startup: f.calls?.startup ?? {}, drain: Object.values(f.drain ?? {}), lag: f.lag?.rows ?? [], replay: f.replay?.rows ?? [] };
  const lines = [
    `## WAL archiving: pgrepo vs pgBackRest (npm run bench:wal)`,
    '',
    f.versions ?? '',
    'The machine is shared: within a phase the tools take turns, row by row, to meet the same conditions; each phase says when it ran and the load average.',
    '',
  ];
  if (o.calls.length) lines.push(...[
    `### Start-up (ms, median of ${CALLS} calls, of ${CALLS * ASYNC_ROUNDS} for the shell and pgBackRest async; each run as PostgreSQL runs it: sh -c)`,
    '',
    '| what | ms |',
    '|---|---:|',
    `| \`node -e 0\` | ${ms(o.startup.node)} |`,
    `| Node client (\`pgrepo-agent archive-push\`), round trip to the agent for a segment it already has | ${ms(o.startup.client)} |`,
    `| \`pgrepo-archive push\`, segment already shipped (shell, from the spool) | ${ms(o.startup.sh)} |`,
    `| \`pgbackrest archive-push\` async, segment already pushed | ${ms(o.startup.pgbrAsync)} |`,
    '',
    `### One archive-push call on a real 16 MiB segment (ms, median of ${CALLS} calls, each on a segment of its own; async: ${CALLS * ASYNC_ROUNDS} calls, each shipped segment asked ${ASYNC_ROUNDS} times; ratio = pgrepo / pgBackRest, below 1 = pgrepo faster)`,
    '',
    '| codec | pgrepo sync | pgBackRest sync | ratio | pgrepo async | pgBackRest async | ratio |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...o.calls.map((r) => `| ${r.codec} | ${ms(r.pgrepoSync)} | ${ms(r.pgbrSync)} | ${ratio(r.pgrepoSync, r.pgbrSync)} | ${ms(r.pgrepoAsync)} | ${ms(r.pgbrAsync)} | ${ratio(r.pgrepoAsync, r.pgbrAsync)} |`),
    '',
    `Async: the call for a segment the agent (pgBackRest: its async process) has already pushed; at ${ms(o.startup.sh)} ms a call, PostgreSQL's serial archive_command keeps up with ${Math.floor(1e6 / o.startup.sh)} segments/s.`,
    '',
    `Measured ${f.calls!.run}.`,
    '',
  ]);
  if (o.drain.length) lines.push(...[
    `### Drain of a backlog written by pgbench -i (segments/s, median of the runs taken in turns; process-max ${PROCESS_MAX} in async mode; ratio = pgrepo / pgBackRest, above 1 = pgrepo faster)`,
    '',
    '| codec | pgrepo sync | pgBackRest sync | ratio | pgrepo async | pgBackRest async | ratio |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...o.drain.map((r) => {
      const g = (k: string) => r.rates[k];
      return `| ${r.codec} | ${g('pgrepo sync').toFixed(1)} | ${g('pgBackRest sync').toFixed(1)} | ${ratio(g('pgrepo sync'), g('pgBackRest sync'))} | ${g('pgrepo async').toFixed(1)} | ${g('pgBackRest async').toFixed(1)} | ${ratio(g('pgrepo async'), g('pgBackRest async'))} |`;
    }),
    '',
    'CPU per segment of the median pgrepo runs (the repository server runs on the same 2 cores here; pgBackRest writes to a local directory):',
    '',
    ...o.drain.map((r) => `- ${r.codec}: sync ${r.cpu['pgrepo sync']}; async ${r.cpu['pgrepo async']}`),
    '',
    ...o.drain.map((r) => `- ${r.codec}: median of ${r.runs} run${r.runs === 1 ? '' : 's'} of a ${r.backlog}-segment backlog per set-up, measured ${r.run}.`),
    '',
  ]);
  if (o.lag.length) lines.push(...[
    `### Archive lag under pgbench load (${f.lag?.seconds} s, pgbench -c 4 -j 2, ${f.lag?.codec}; lag = current WAL position minus the end of the last archived segment, sampled every 0.5 s; under 16 MiB nothing complete waits: it is the segment being written)`,
    '',
    '| set-up | tps | WAL MiB/s | max lag MiB | mean lag MiB |',
    '|---|---:|---:|---:|---:|',
    ...o.lag.map((r) => `| ${r.tool} | ${r.tps.toFixed(0)} | ${r.walMiBs.toFixed(1)} | ${r.maxLagMiB.toFixed(1)} | ${r.meanLagMiB.toFixed(1)} |`),
    '',
    `Measured ${f.lag?.run}.`,
    '',
  ]);
  if (o.replay.length) lines.push(...[
    `### Recovery replay through restore_command (${f.replay?.segments} segments of bulk inserts, ${f.replay?.codec}; time from pg_ctl start to the end of recovery)`,
    '',
    '| archive-get | segments | seconds | segments/s | requests that started Node |',
    '|---|---:|---:|---:|---:|',
    ...o.replay.map((r) => `| ${r.what} | ${r.segments} | ${r.seconds.toFixed(1)} | ${(r.segments / r.seconds).toFixed(1)} | ${r.viaNode ?? '-'} |`),
    '',
    'CPU per segment replayed (PostgreSQL: its startup process, which replays, and the restore_command processes it ran, pgBackRest sync\'s included; pgBackRest async\'s fetching runs in a process of its own that is not counted):',
    '',
    ...o.replay.map((r) => `- ${r.what}: ${r.cpu}`),
    '',
    `Measured ${f.replay?.run}.`,
    '',
  ]);
  const prefetch = o.replay[0];
  const pgbrAsync = o.replay.find((r) => r.what.startsWith('pgBackRest async'));
  if (prefetch && pgbrAsync) lines.push(`Replay ratio pgrepo prefetch / pgBackRest async (segments/s): ${ratio(prefetch.segments / prefetch.seconds, pgbrAsync.segments / pgbrAsync.seconds)}.`, '');
  return lines.join('\n');
}

// ---- the run -----------------------------------------------------------------------------

afterAll(() => runCleanups(), 600_000);

it('WAL archiving: pgrepo vs pgBackRest', async () => {
  await ensurePgbackrest();
  // a cluster left running by an interrupted run goes first
  if (fs.existsSync(path.join(BENCH_DIR, 'pg', 'postmaster.pid'))) await stopCluster(clusterAt({ dir: path.join(BENCH_DIR, 'pg'), port: 0, socketDir: '' }), 'immediate');
  await fsp.rm(BENCH_DIR, { recursive: true, force: true, maxRetries: 5 });
  await ownedDir(BENCH_DIR);
  await writeOwned(path.join(BENCH_DIR, 'timer.sh'), TIMER);
  const sockDir = await ownedDir(path.join(BENCH_DIR, 'sock'));
  const certs = await makeCerts();
  const serverProc = await startServer({ repoPath: await ownedDir(path.join(BENCH_DIR, 'repo-pgrepo')), certs, auth: ['db1=agent:bench', 'ops=admin'], logFile: path.join(BENCH_DIR, 'server.log') });
  const cluster = await initCluster({
    name: 'bench', dir: path.join(BENCH_DIR, 'pg'), port: await freePort(), socketDir: sockDir, archiveMode: true, archiveCommand: '',
    settings: { max_wal_size: '16GB', shared_buffers: '256MB', checkpoint_timeout: '1h' },
  });
  await startCluster(cluster);
  const b: Bench = { certs, server: serverProc.address, serverPid: serverProc.proc.child.pid!, conn: { server: serverProc.address, ca: certs.ca, client: certs.client('ops') }, cluster, sockDir, agents: new Map() };
  await asPostgres(path.join(pgBindir(), 'pgbench'), ['-i', '-q', '-s', '10', '-h', sockDir, '-p', String(cluster.port), '-U', 'postgres', 'postgres']);

  await agent(b, 'real', cluster.dir, []);
  const created = await repoctl(b.conn, ['stanza-create', '--stanza', STANZA]);
  if (created.code !== 0) throw new Error(describeRun('repoctl stanza-create', [], created));
  await writePgbrConfig('real', cluster.dir, cluster);
  await asPostgres('pgbackrest', [`--config=${pgbrConfig('real')}`, `--stanza=${STANZA}`, 'stanza-create']);

  // real segments for the single calls (pgbench content), kept as templates
  const templates = await ownedDir(path.join(BENCH_DIR, 'segments'));
  const made = await makeWal(cluster, CALLS, 'pgbench');
  const files: string[] = [];
  for (const name of made.slice(0, CALLS)) {
    const f = path.join(templates, name);
    await fsp.copyFile(path.join(cluster.dir, 'pg_wal', name), f);
    await chownToPostgres(f);
    files.push(f);
  }

  const versions = [
    `Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 1024 ** 3)} GiB; ${new Date().toISOString().slice(0, 10)}.`,
    `PostgreSQL ${(await query<{ v: string }>(cluster, "select current_setting('server_version') as v"))[0].v}, ${(await asPostgres('pgbackrest', ['version'])).trim()}, Node ${process.version}, pgrepo ${JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).version}.`,
    `Repositories on local disk (${BENCH_DIR}); pgrepo over mutual TLS on loopback.`,
  ].join('\n');

  const figures = loadFigures();
  figures.versions = versions;
  if (PHASES.has('calls')) {
    const { value, run } = await measured(() => oneCallPhase(b, files));
    figures.calls = { ...value, run };
  }
  if (PHASES.has('drain')) {
    const { value, run } = await measured(() => drainPhase(b));
    for (const row of value) figures.drain = { ...figures.drain, [row.codec]: { ...row, run } };
  }
  if (PHASES.has('lag')) {
    const { value, run } = await measured(() => lagPhase(b));
    figures.lag = { rows: value, run, seconds: LOAD_SECONDS, codec: codecName(DRAIN_CODECS[0]) };
  }
  if (PHASES.has('replay')) {
    const { value, run } = await measured(() => replayPhase(b));
    figures.replay = { rows: value, run, segments: REPLAY, codec: codecName(DRAIN_CODECS[0]) };
  }
  fs.writeFileSync(FIGURES, JSON.stringify(figures, null, 1));
  const section = report(figures);
  console.log(`\n${section}`);
  writeResultsSection('wal', section);
}, 4 * 3_600_000);
