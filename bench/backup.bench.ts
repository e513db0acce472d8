/**
 * pgrepo against pgBackRest on the same cluster, in one run: full backup and restore per codec
 * and process-max, wall time, MiB/s, CPU time, repository size, peak RSS, and the ratio
 * pgrepo/pgBackRest. Not a test: `npm run bench:backup` (bench/README.md). Run by vitest only
 * to reuse the test harness (real PostgreSQL, real server and agents over mTLS).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { makeCerts, type CertSet } from '../test/harness/certs';
import { runCleanups } from '../test/harness/cleanup';
import { clusterAt, freePort, initCluster, pgBindir, query, startCluster, stopCluster, type Cluster } from '../test/harness/pg';
import { archiveCommandFor, repoctl, startAgent, startServer, type Proc, type RepoctlConnection } from '../test/harness/processes';
import { chownToPostgres, describeRun, run, runOk } from '../test/harness/system';
import { writeResultsSection } from './results';
import { ensurePgbackrest, ownedDir } from './setup';

const env = process.env;
const BENCH_DIR = env.PGREPO_BENCH_DIR ?? '/var/tmp/pgrepo-bench';
const BLOB_MIB = Number(env.BENCH_BLOB_MIB ?? 950); // one poorly compressible relation file of about this size
const PGBENCH_SCALE = Number(env.BENCH_PGBENCH_SCALE ?? 20); // plus ordinary, compressible data (scale 1 ≈ 15 MiB)
const CODECS = (env.BENCH_CODECS ?? 'gz:6,lz4:1,zst:3').split(',').map((c) => { const [type, level] = c.split(':'); return { type, level: Number(level) }; });
const PROCESS = (env.BENCH_PROCESS_MAX ?? '1,2').split(',').map(Number);
const RSS_PROCESS = (env.BENCH_RSS_PROCESS_MAX ?? '1,2,4').split(',').map(Number);
const RUNS = Number(env.BENCH_RUNS ?? 1);
const STANZA = 'bench';
const MiB = 1024 * 1024;

interface Sample {
  wall: number;
  cpu: number;
  repoBytes: number;
  rss: number;
}

interface Row {
  what: string;
  codec: string;
  p: number;
  pgrepo: Sample;
  pgbackrest?: Sample;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
function medianSample(samples: Sample[]): Sample {
  return { wall: median(samples.map((s) => s.wall)), cpu: median(samples.map((s) => s.cpu)), repoBytes: median(samples.map((s) => s.repoBytes)), rss: Math.max(...samples.map((s) => s.rss)) };
}

// ---- process accounting ------------------------------------------------------------------

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime
}

function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** Resets VmHWM so the next peakRss is this run's (Linux: write 5 to clear_refs). */
function resetPeak(pid: number): void {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
  } catch {
    // not permitted: the peak then covers the agent's whole life
  }
}

/** CPU seconds per thread name (main thread "node", codec workers, libuv's pool), for "where the time goes". */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const key = tid === String(pid) ? 'main' : name;
      out.set(key, (out.get(key) ?? 0) + (Number(fields[11]) + Number(fields[12])) / CLK_TCK);
    } catch {
      // a thread that ended meanwhile
    }
  }
  return out;
}

async function measured<T>(what: string, procs: Proc[], work: () => Promise<T>): Promise<{ result: T; wall: number; cpu: number; rss: number[] }> {
  const pids = procs.map((p) => p.child.pid!);
  for (const pid of pids) resetPeak(pid);
  const cpu0 = pids.map(cpuSeconds);
  const threads0 = pids.map(threadCpu);
  const t0 = process.hrtime.bigint();
  const result = await work();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = pids.reduce((n, pid, i) => n + cpuSeconds(pid) - cpu0[i], 0);
  const detail = pids.map((pid, i) => {
    const t1 = threadCpu(pid);
    const parts = [...t1].map(([k, v]) => [k, v - (threads0[i].get(k) ?? 0)] as const).filter(([, v]) => v >= 0.05);
    // codec workers end with the job: their time is in the process's total but no longer in any thread
    const ended = cpuSeconds(pid) - cpu0[i] - parts.reduce((n, [, v]) => n + v, 0);
    return `${procs[i].name}: ${parts.map(([k, v]) => `${k === 'node' ? 'other threads' : k} ${v.toFixed(1)}`).join(', ')}, ended threads (codec workers) ${ended.toFixed(1)}`;
  });
  console.log(`[bench] ${what}: ${wall.toFixed(1)} s wall, CPU s by thread: ${detail.join('; ')}`);
  return { result, wall, cpu, rss: pids.map(peakRss) };
}

/** `/usr/bin/time -f` of a command run as postgres: wall, user+sys (children included), peak RSS of the largest process. */
async function timed(cmd: string, args: string[]): Promise<{ wall: number; cpu: number; rss: number; stdout: string }> {
  const res = await run('/usr/bin/time', ['-f', 'BENCHTIME %e %U %S %M', cmd, ...args], { asPostgres: true, timeoutMs: 3_600_000 });
  if (res.code !== 0) throw new Error(describeRun(cmd, args, res));
  const m = /BENCHTIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(res.stderr);
  if (!m) throw new Error(`no timing from /usr/bin/time: ${res.stderr}`);
  return { wall: Number(m[1]), cpu: Number(m[2]) + Number(m[3]), rss: Number(m[4]) * 1024, stdout: res.stdout };
}

// ---- set-up ------------------------------------------------------------------------------

async function ensureTools(): Promise<void> {
  if (!fs.existsSync('/usr/bin/time')) await runOk('apt-get', ['install', '-y', '-qq', 'time'], { timeoutMs: 600_000 });
  await ensurePgbackrest();
}

/**
 * The cluster, built once and kept in BENCH_DIR (regenerated when its parameters change): one
 * table whose TOAST relation holds BLOB_MIB of random bytes (stored uncompressed, so its file
 * is ~BLOB_MIB), and pgbench tables at PGBENCH_SCALE.
 */
async function benchCluster(socketDir: string): Promise<Cluster> {
  const dir = path.join(BENCH_DIR, 'pg');
  const marker = path.join(BENCH_DIR, 'pg.ready');
  const params = JSON.stringify({ BLOB_MIB, PGBENCH_SCALE, v: 1 });
  const port = await freePort();
  if (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === params) {
    const c = clusterAt({ dir, port, socketDir, name: 'bench' });
    await setConf(c, { port, unix_socket_directories: socketDir });
    return c;
  }
  await fsp.rm(dir, { recursive: true, force: true });
  console.log(`[bench] generating the cluster in ${dir}: ${BLOB_MIB} MiB of random bytea + pgbench scale ${PGBENCH_SCALE} (once; reused while its parameters stay the same)`);
  const c = await initCluster({ dir, port, socketDir, name: 'bench', archiveMode: true, archiveCommand: '/bin/true', settings: { max_wal_size: '4GB', shared_buffers: '128MB' } });
  await startCluster(c, { timeoutMs: 120_000 });
  await query(c, 'create extension if not exists pgcrypto');
  await query(c, 'create table blob (id int, b bytea)');
  await query(c, 'alter table blob alter column b set storage external');
  const rows = Math.ceil((BLOB_MIB * MiB) / 8000);
  for (let done = 0; done < rows; done += 20000) {
    await query(c, `insert into blob select g, (select string_agg(gen_random_bytes(1000), ''::bytea) from generate_series(1, 8) where g > 0)
                    from generate_series($1::int, $2::int) g`, [done + 1, Math.min(rows, done + 20000)]);
  }
  await runOk(path.join(pgBindir(), 'pgbench'), ['-i', '-q', '-s', String(PGBENCH_SCALE), '-h', socketDir, '-p', String(port), '-U', 'postgres', 'postgres'], { asPostgres: true, timeoutMs: 1_800_000 });
  await query(c, 'checkpoint');
  await stopCluster(c);
  fs.writeFileSync(marker, params);
  return c;
}

async function setConf(c: Cluster, settings: Record<string, string | number>): Promise<void> {
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${typeof v === 'number' ? v : `'${v}'`}`);
  await fsp.appendFile(path.join(c.dir, 'postgresql.conf'), `${lines.join('\n')}\n`);
}

async function relationFiles(c: Cluster): Promise<string> {
  const [r] = await query<{ f: string; s: string }>(c, `select pg_relation_filepath(reltoastrelid) as f, pg_size_pretty(pg_relation_size(reltoastrelid)) as s from pg_class where relname = 'blob'`);
  const [t] = await query<{ s: string }>(c, 'select pg_size_pretty(pg_database_size(current_database())) as s');
  return `toast file ${r.f} ${r.s}, database ${t.s}`;
}

function du(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
}

// ---- the run -----------------------------------------------------------------------------

it('pgrepo vs pgBackRest: full backup and restore', async () => {
  await ensureTools();
  await ownedDir(BENCH_DIR);
  const work = await ownedDir(path.join(BENCH_DIR, 'run'));
  await fsp.rm(work, { recursive: true, force: true });
  await ownedDir(work);
  const socketDir = await ownedDir(path.join(work, 'sock'));
  const cluster = await benchCluster(socketDir);

  const certs: CertSet = await makeCerts();
  const pgrepoRepo = await ownedDir(path.join(work, 'repo-pgrepo'));
  const server = await startServer({ repoPath: pgrepoRepo, certs, auth: ['db1=agent:bench', 'db2=agent:bench', 'ops=admin'] });
  const agentSocket = path.join(socketDir, 'agent1.sock');
  const restoreRoot = await ownedDir(path.join(work, 'restore'));
  const pgrepoTarget = path.join(restoreRoot, 'pgrepo');

  // archive_command feeds both tools: each backup waits for its own WAL archive as it would in production
  const brConf = path.join(await ownedDir(path.join(work, 'pgbackrest')), 'pgbackrest.conf');
  const brRepo = await ownedDir(path.join(work, 'repo-pgbackrest'));
  fs.writeFileSync(brConf, [
    '[global]', `repo1-path=${brRepo}`, `log-path=${path.dirname(brConf)}`, `lock-path=${path.dirname(brConf)}`, 'log-level-console=warn', 'log-level-file=off',
    'start-fast=y', 'repo1-retention-full=1', 'archive-async=n', 'archive-timeout=600',
    `[${STANZA}]`, `pg1-path=${cluster.dir}`, `pg1-port=${cluster.port}`, `pg1-socket-path=${socketDir}`, 'pg1-user=postgres', '',
  ].join('\n'));
  await chownToPostgres(brConf);
  await setConf(cluster, { archive_command: '/bin/true' });
  await startCluster(cluster, { timeoutMs: 120_000 });
  console.log(`[bench] ${await relationFiles(cluster)}`);

  const agentBase = { server: server.address, certs, stanza: STANZA, pgSocketPath: socketDir };
  const agent1 = await startAgent({ ...agentBase, identity: 'db1', pgPath: cluster.dir, pgPort: cluster.port, socket: agentSocket });
  const agent2 = await startAgent({ ...agentBase, identity: 'db2', pgPath: pgrepoTarget, pgPort: await freePort(), socket: path.join(socketDir, 'agent2.sock') });
  const conn: RepoctlConnection = { server: server.address, ca: certs.ca, client: certs.client('ops') };
  const ctl = async (args: string[]) => {
    const res = await repoctl(conn, [...args, '--output', 'json'], 3_600_000);
    if (res.code !== 0) throw new Error(describeRun('repoctl', args, res));
    return JSON.parse(res.stdout) as { label: string; bytes: number; repo_bytes: number };
  };
  const br = (args: string[]) => timed('pgbackrest', [`--config=${brConf}`, `--stanza=${STANZA}`, ...args]);

  await ctl(['stanza-create', '--stanza', STANZA]);
  await br(['stanza-create']);
  // only now: a segment pgBackRest refused before its stanza existed would make PostgreSQL's archiver pause a minute
  await query(cluster, `alter system set archive_command = '${await archiveCommandFor(agentSocket)} && pgbackrest --config=${brConf} --stanza=${STANZA} archive-push %p'`);
  await query(cluster, 'select pg_reload_conf()');
  const dataBytes = du(cluster.dir) - du(path.join(cluster.dir, 'pg_wal'));

  const rows: Row[] = [];
  const add = (what: string, codec: string, p: number, tool: 'pgrepo' | 'pgbackrest', s: Sample) => {
    let row = rows.find((r) => r.what === what && r.codec === codec && r.p === p);
    if (!row) rows.push((row = { what, codec, p, pgrepo: s }));
    row[tool] = s;
  };
  const samples = new Map<string, Sample[]>();
  const record = (key: string, s: Sample) => samples.set(key, [...(samples.get(key) ?? []), s]);

  for (let runNo = 0; runNo < RUNS; runNo++) {
    for (const { type, level } of CODECS) {
      for (const p of [...new Set([...PROCESS, ...RSS_PROCESS])]) {
        const codec = `${type}-${level}`;
        const compare = PROCESS.includes(p);
        console.log(`[bench] run ${runNo + 1}/${RUNS} ${codec} process-max ${p}`);
        // pgrepo backup, then pgBackRest's, then each restores its own
        const b = await measured(`pgrepo backup ${codec} p${p}`, [agent1, server.proc], () => ctl(['backup', '--stanza', STANZA, '--type', 'full', '--start-fast', '--compress-type', type, '--compress-level', String(level), '--process-max', String(p), '--archive-timeout', '600']));
        record(`backup|${codec}|${p}|pgrepo`, { wall: b.wall, cpu: b.cpu, repoBytes: b.result.repo_bytes, rss: b.rss[0] });
        if (compare) {
          const t = await br(['backup', '--type=full', `--compress-type=${type}`, `--compress-level=${level}`, `--process-max=${p}`]);
          const info = JSON.parse((await br(['info', '--output=json'])).stdout) as Array<{ backup: Array<{ info: { repository: { delta: number } } }> }>;
          record(`backup|${codec}|${p}|pgbackrest`, { wall: t.wall, cpu: t.cpu, repoBytes: info[0].backup.at(-1)!.info.repository.delta, rss: t.rss });
        }
        await fsp.rm(pgrepoTarget, { recursive: true, force: true });
        const r = await measured(`pgrepo restore ${codec} p${p}`, [agent2, server.proc], () => ctl(['restore', '--stanza', STANZA, '--host', 'db2', '--pg-path', pgrepoTarget, '--process-max', String(p)]));
        record(`restore|${codec}|${p}|pgrepo`, { wall: r.wall, cpu: r.cpu, repoBytes: b.result.repo_bytes, rss: r.rss[0] });
        await fsp.rm(pgrepoTarget, { recursive: true, force: true });
        // the previous backups' files are not needed any more (expire is not what is measured)
        for (const label of fs.readdirSync(path.join(pgrepoRepo, 'backup', STANZA))) {
          if (/^\d{8}-\d{6}F$/.test(label) && label !== b.result.label) await fsp.rm(path.join(pgrepoRepo, 'backup', STANZA, label), { recursive: true, force: true });
        }
        if (compare) {
          const target = await ownedDir(path.join(restoreRoot, 'pgbackrest'));
          const t = await br(['restore', `--pg1-path=${target}`, `--process-max=${p}`]);
          record(`restore|${codec}|${p}|pgbackrest`, { wall: t.wall, cpu: t.cpu, repoBytes: 0, rss: t.rss });
          await fsp.rm(target, { recursive: true, force: true });
        }
      }
    }
  }
  for (const [key, s] of samples) {
    const [what, codec, p, tool] = key.split('|');
    add(what, codec, Number(p), tool as 'pgrepo' | 'pgbackrest', medianSample(s));
  }

  const table = formatTable(rows, dataBytes);
  console.log(table);
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const brVersion = (await run('pgbackrest', ['version'])).stdout.trim();
  const results = [
    '# Benchmark results', '',
    `${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores (${cpu}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}, ${brVersion}, PostgreSQL 15.`,
    `Cluster: ${await relationFiles(cluster)}; ${(dataBytes / MiB).toFixed(0)} MiB to back up. Median of ${RUNS} run(s).`,
    `Command: \`${commandLine()}\``, '',
    table, '',
  ].join('\n');
  writeResultsSection('backup', results);
  expect(rows.length).toBeGreaterThan(0);
}, 4 * 3_600_000);

afterAll(async () => {
  await runCleanups();
}, 120_000);

function commandLine(): string {
  const vars = ['PGREPO_BENCH_DIR', 'BENCH_BLOB_MIB', 'BENCH_PGBENCH_SCALE', 'BENCH_CODECS', 'BENCH_PROCESS_MAX', 'BENCH_RSS_PROCESS_MAX', 'BENCH_RUNS'].filter((v) => env[v]).map((v) => `${v}=${env[v]}`);
  return [...vars, 'npm run bench:backup'].join(' ');
}

function formatTable(rows: Row[], dataBytes: number): string {
  const f = (n: number, d = 1) => n.toFixed(d);
  const rate = (s: Sample) => f(dataBytes / MiB / s.wall, 0);
  const lines = [
    '| what | codec | p | pgrepo s | pgrepo MiB/s | pgrepo CPU s | pgrepo repo MiB | agent peak RSS MiB | pgBackRest s | pgBackRest MiB/s | pgBackRest CPU s | pgBackRest repo MiB | pgBackRest peak RSS MiB | wall ratio pgrepo/pgBackRest |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows.sort((a, b) => (a.what === b.what ? 0 : a.what === 'backup' ? -1 : 1))) {
    const b = r.pgbackrest;
    lines.push(`| ${r.what} | ${r.codec} | ${r.p} | ${f(r.pgrepo.wall)} | ${rate(r.pgrepo)} | ${f(r.pgrepo.cpu)} | ${r.what === 'backup' ? f(r.pgrepo.repoBytes / MiB, 0) : ''} | ${f(r.pgrepo.rss / MiB, 0)} | `
      + (b ? `${f(b.wall)} | ${rate(b)} | ${f(b.cpu)} | ${r.what === 'backup' ? f(b.repoBytes / MiB, 0) : ''} | ${f(b.rss / MiB, 0)} | **${f(r.pgrepo.wall / b.wall, 2)}** |` : '| | | | | |'));
  }
  return lines.join('\n');
}
