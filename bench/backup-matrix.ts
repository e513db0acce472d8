/**
 * One cluster, one run of the backup benchmark: pgrepo (server + agents over mTLS on loopback)
 * against pgBackRest (repository on local disk) with the same codec, level, process-max and
 * bundling, taking turns row by row; pg_basebackup -Ft -z as a reference. Used by
 * bench/backup.bench.ts (`npm run bench`) and, on tiny clusters, by the smoke test in `npm test`.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { makeCerts } from '../test/harness/certs';
import { clusterAt, freePort, pgBindir, query, startCluster, stopCluster, type Cluster } from '../test/harness/pg';
import { archiveCommandFor, repoctl, startAgent, startServer, type Proc, type RepoctlConnection, type ServerHandle } from '../test/harness/processes';
import { chownToPostgres, describeRun, runOk, waitUntil } from '../test/harness/system';
import { describeCluster, type BenchCluster } from './clusters';
import { du, measured, medianSample, timed, type Sample } from './measure';
import { ensurePgbackrest, ownedDir } from './setup';

export const STANZA = 'bench';

export interface Codec {
  type: string;
  level: number;
}

export interface RowSpec {
  codec: Codec;
  p: number;
}

export const codecName = (c: Codec): string => (c.type === 'none' ? 'none' : `${c.type}-${c.level}`);

export interface MatrixOptions {
  /** scratch directory for repositories and restores; emptied first */
  workDir: string;
  bench: BenchCluster;
  /** rows where both tools run */
  rows: RowSpec[];
  /** pgrepo alone also runs zst-3 at these process-max (for the agent's peak RSS), once */
  rssProcessMax: number[];
  runs: number;
  basebackup: boolean;
  /** start each tool's first restore and compare its data with the original's */
  verify: boolean;
}

export type Tool = 'pgrepo' | 'pgbackrest' | 'pg_basebackup';

export interface ResultRow {
  what: 'backup' | 'restore';
  codec: string;
  p: number;
  /** medians per tool; pgBackRest missing on the pgrepo-only rows */
  samples: Partial<Record<Tool, Sample>>;
  /** runs the medians are of */
  n: number;
}

export interface MatrixResult {
  rows: ResultRow[];
  /** bytes to back up (PGDATA without pg_wal) */
  dataBytes: number;
  description: string;
  /** which tool's restore was started and matched the original */
  verified: Tool[];
  bundle: boolean;
}

/** pgrepo-only rows: zst-3 at each process-max of `rss` not already a compared row. */
export function rssRows(rows: RowSpec[], rss: number[]): RowSpec[] {
  return rss.filter((p) => !rows.some((r) => r.codec.type === 'zst' && r.codec.level === 3 && r.p === p)).map((p) => ({ codec: { type: 'zst', level: 3 }, p }));
}

async function setConf(c: Cluster, settings: Record<string, string | number>): Promise<void> {
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${typeof v === 'number' ? v : `'${v}'`}`);
  await fsp.appendFile(path.join(c.dir, 'postgresql.conf'), `${lines.join('\n')}\n`);
}

/** Starts a restored copy (archiving off, recovery up to consistency), compares its fingerprint, stops it. */
async function verifyRestore(tool: Tool, dir: string, socketDir: string, expected: string, fingerprint: (c: Cluster) => Promise<string>): Promise<void> {
  const c = clusterAt({ dir, port: await freePort(), socketDir, name: `restored-${tool}` });
  fs.writeFileSync(c.logFile, '');
  await chownToPostgres(c.logFile);
  await startCluster(c, { settings: { archive_mode: 'off', recovery_target: 'immediate', recovery_target_action: 'promote' }, timeoutMs: 600_000 });
  try {
    await waitUntil(`${tool}'s restored cluster to finish recovery`, async () => (await query<{ r: boolean }>(c, 'select pg_is_in_recovery() as r'))[0].r === false, { timeoutMs: 600_000, intervalMs: 300 });
    const got = await fingerprint(c);
    if (got !== expected) throw new Error(`${tool}'s restore differs from the original: fingerprint ${got}, expected ${expected}`);
    console.log(`[bench] ${tool}'s restore verified: the restored cluster started and its data matches (${got})`);
  } finally {
    await stopCluster(c, 'immediate');
  }
}

/** Both tools ready on a running cluster: pgrepo's server and two agents, pgBackRest's config, both stanzas, archive_command to both. */
export interface Tools {
  server: ServerHandle;
  /** the agent of the cluster backed up */
  agent1: Proc;
  /** the agent restores go to (pgrepoTarget) */
  agent2: Proc;
  work: string;
  socketDir: string;
  restoreRoot: string;
  pgrepoTarget: string;
  /** repoctl ... --output json, failing on a non-zero exit */
  ctl: <T = { label: string; bytes: number; repo_bytes: number }>(args: string[]) => Promise<T>;
  /** pgbackrest --config --stanza ..., timed */
  br: (args: string[]) => ReturnType<typeof timed>;
  description: string;
  /** the cluster's fingerprint */
  expected: string;
  /** bytes to back up (PGDATA without pg_wal) */
  dataBytes: number;
  /** stops the server and the cluster (the agents stop with the server's caller) */
  stop(): Promise<void>;
}

/** Starts the cluster (stopped) and both tools on it, in an emptied `workDir`; `serverArgs` go to pgrepo-server. */
export async function startTools(workDir: string, bench: BenchCluster, serverArgs: string[] = []): Promise<Tools> {
  if (!fs.existsSync('/usr/bin/time')) await runOk('apt-get', ['install', '-y', '-qq', 'time'], { timeoutMs: 600_000 });
  await ensurePgbackrest();
  const { kind, cluster } = bench;
  await fsp.rm(workDir, { recursive: true, force: true });
  const work = await ownedDir(workDir);
  const socketDir = cluster.socketDir;
  const certs = await makeCerts();
  const pgrepoRepo = await ownedDir(path.join(work, 'repo-pgrepo'));
  const server = await startServer({ repoPath: pgrepoRepo, certs, auth: ['db1=agent:bench', 'db2=agent:bench', 'ops=admin'], logFile: path.join(work, 'server.log'), extraArgs: serverArgs });
  const agentSocket = path.join(socketDir, 'agent1.sock');
  const restoreRoot = await ownedDir(path.join(work, 'restore'));
  const pgrepoTarget = path.join(restoreRoot, 'pgrepo');

  const brDir = await ownedDir(path.join(work, 'pgbackrest'));
  const brConf = path.join(brDir, 'pgbackrest.conf');
  const brRepo = await ownedDir(path.join(work, 'repo-pgbackrest'));
  fs.writeFileSync(brConf, [
    '[global]', `repo1-path=${brRepo}`, `log-path=${brDir}`, `lock-path=${brDir}`, 'log-level-console=warn', 'log-level-file=off',
    'start-fast=y', 'repo1-retention-full=1', 'archive-async=n', 'archive-timeout=600', ...(kind.bundle ? ['repo1-bundle=y'] : []),
    `[${STANZA}]`, `pg1-path=${cluster.dir}`, `pg1-port=${cluster.port}`, `pg1-socket-path=${socketDir}`, 'pg1-user=postgres', '',
  ].join('\n'));
  await chownToPostgres(brConf);
  // the last run's ALTER SYSTEM archive_command points at sockets and configs that are gone: start from none
  const autoConf = path.join(cluster.dir, 'postgresql.auto.conf');
  fs.writeFileSync(autoConf, '# Do not edit this file manually!\n# It will be overwritten by the ALTER SYSTEM command.\n');
  await chownToPostgres(autoConf);
  const stop = async () => {
    await server.proc.stop();
    await stopCluster(cluster);
  };
  await startCluster(cluster, { timeoutMs: 600_000 });
  try {
    const description = (await describeCluster(cluster)).text;
    const expected = await kind.fingerprint(cluster);
    console.log(`[bench] ${kind.name}: ${description}`);

    const agentBase = { server: server.address, certs, stanza: STANZA, pgSocketPath: socketDir, logLevel: process.env.BENCH_AGENT_LOG_LEVEL };
    const agent1 = await startAgent({ ...agentBase, identity: 'db1', pgPath: cluster.dir, pgPort: cluster.port, socket: agentSocket, logFile: path.join(work, 'agent1.log') });
    const agent2 = await startAgent({ ...agentBase, identity: 'db2', pgPath: pgrepoTarget, pgPort: await freePort(), socket: path.join(socketDir, 'agent2.sock'), logFile: path.join(work, 'agent2.log') });
    const conn: RepoctlConnection = { server: server.address, ca: certs.ca, client: certs.client('ops') };
    const ctl = async <T>(args: string[]) => {
      const res = await repoctl(conn, [...args, '--output', 'json'], 3_600_000);
      if (res.code !== 0) throw new Error(describeRun('repoctl', args, res));
      return JSON.parse(res.stdout) as T;
    };
    const br = (args: string[]) => timed('pgbackrest', [`--config=${brConf}`, `--stanza=${STANZA}`, ...args]);

    await ctl(['stanza-create', '--stanza', STANZA]);
    await br(['stanza-create']);
    // only now: a segment pgBackRest refused before its stanza existed would make PostgreSQL's archiver pause a minute
    await query(cluster, `alter system set archive_command = '${await archiveCommandFor(agentSocket)} && pgbackrest --config=${brConf} --stanza=${STANZA} archive-push %p'`);
    await query(cluster, 'select pg_reload_conf()');
    const dataBytes = du(cluster.dir) - du(path.join(cluster.dir, 'pg_wal'));
    return { server, agent1, agent2, work, socketDir, restoreRoot, pgrepoTarget, ctl, br, description, expected, dataBytes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Starts the tools (startTools), runs `body` with them, and stops the agents, the server and the cluster however it ends. */
export async function withTools<T>(workDir: string, bench: BenchCluster, body: (t: Tools) => Promise<T>): Promise<T> {
  const t = await startTools(workDir, bench);
  try {
    return await body(t);
  } finally {
    await t.agent1.stop();
    await t.agent2.stop();
    await t.stop();
  }
}

/** Runs the matrix on a cluster that is stopped; leaves it stopped. */
export async function runMatrix(o: MatrixOptions): Promise<MatrixResult> {
  const { kind, cluster } = o.bench;
  const t = await startTools(o.workDir, o.bench);
  const { server, agent1, agent2, work, socketDir, restoreRoot, pgrepoTarget, ctl, br, description, expected, dataBytes } = t;
  try {
    const samples = new Map<string, Sample[]>();
    const record = (what: string, codec: string, p: number, tool: Tool, s: Sample) => {
      const key = `${what}|${codec}|${p}|${tool}`;
      samples.set(key, [...(samples.get(key) ?? []), s]);
    };
    const verified = new Set<Tool>();
    const verify = async (tool: Tool, dir: string) => {
      if (!o.verify || verified.has(tool)) return;
      await verifyRestore(tool, dir, socketDir, expected, kind.fingerprint);
      verified.add(tool);
    };

    /*
     * Both tools' restores of a row start from the same state of memory: no dirty pages of the
     * other's (flushed first), and neither inherits the page cache the other's removed restore just
     * freed. The first restore's files are kept until the second is done: on this VM, memory freed
     * for more than a few seconds goes back to the host, and a page touched afresh cost ~2 s of
     * kernel CPU per GB; a restore right after the other's removal got warm pages, and whoever went
     * first in a row paid for both.
     */
    const settle = () => runOk('sync', []);
    const removeRestores = async () => {
      await fsp.rm(pgrepoTarget, { recursive: true, force: true });
      await fsp.rm(path.join(restoreRoot, 'pgbackrest'), { recursive: true, force: true });
    };
    const pgrepoRow = async (codec: Codec, p: number) => {
      const name = codecName(codec);
      const b = await measured(`pgrepo backup ${name} p${p}`, [agent1, server.proc], () => ctl(['backup', '--stanza', STANZA, '--type', 'full', '--start-fast',
        '--compress-type', codec.type, ...(codec.type === 'none' ? [] : ['--compress-level', String(codec.level)]), '--process-max', String(p),
        '--archive-timeout', '600', '--repo-retention-full', '1', ...(kind.bundle ? ['--bundle'] : [])]));
      record('backup', name, p, 'pgrepo', { wall: b.wall, cpu: b.cpu, repoBytes: b.result.repo_bytes, rss: b.rss[0] });
      return async () => {
        await fsp.rm(pgrepoTarget, { recursive: true, force: true });
        await settle();
        const r = await measured(`pgrepo restore ${name} p${p}`, [agent2, server.proc], () => ctl(['restore', '--stanza', STANZA, '--host', 'db2', '--pg-path', pgrepoTarget, '--process-max', String(p)]));
        record('restore', name, p, 'pgrepo', { wall: r.wall, cpu: r.cpu, repoBytes: 0, rss: r.rss[0] });
        await verify('pgrepo', pgrepoTarget);
      };
    };
    const pgbackrestRow = async (codec: Codec, p: number) => {
      const name = codecName(codec);
      const t = await br(['backup', '--type=full', `--compress-type=${codec.type}`, ...(codec.type === 'none' ? [] : [`--compress-level=${codec.level}`]), `--process-max=${p}`]);
      const info = JSON.parse((await br(['info', '--output=json'])).stdout) as Array<{ backup: Array<{ info: { repository: { delta: number } } }> }>;
      record('backup', name, p, 'pgbackrest', { wall: t.wall, cpu: t.cpu, repoBytes: info[0].backup.at(-1)!.info.repository.delta, rss: t.rss });
      return async () => {
        const target = path.join(restoreRoot, 'pgbackrest');
        await fsp.rm(target, { recursive: true, force: true });
        await ownedDir(target);
        await settle();
        const r = await br(['restore', `--pg1-path=${target}`, `--process-max=${p}`]);
        record('restore', name, p, 'pgbackrest', { wall: r.wall, cpu: r.cpu, repoBytes: 0, rss: r.rss });
        await verify('pgbackrest', target);
      };
    };
    const basebackup = async () => {
      const dir = path.join(work, 'basebackup');
      const target = path.join(restoreRoot, 'basebackup');
      await fsp.rm(dir, { recursive: true, force: true });
      await fsp.rm(target, { recursive: true, force: true });
      await ownedDir(restoreRoot);
      const b = await timed(path.join(pgBindir(), 'pg_basebackup'), ['-D', dir, '-Ft', '-z', '-X', 'stream', '-c', 'fast', '-h', socketDir, '-p', String(cluster.port), '-U', 'postgres']);
      record('backup', 'gz-6', 1, 'pg_basebackup', { wall: b.wall, cpu: b.cpu, repoBytes: du(dir), rss: b.rss });
      const r = await timed('sh', ['-c', `mkdir -m 700 ${target} && tar -xzf ${dir}/base.tar.gz -C ${target} && tar -xzf ${dir}/pg_wal.tar.gz -C ${target}/pg_wal`]);
      record('restore', 'gz-6', 1, 'pg_basebackup', { wall: r.wall, cpu: r.cpu, repoBytes: 0, rss: r.rss });
      await verify('pg_basebackup', target);
      await fsp.rm(target, { recursive: true, force: true });
      await fsp.rm(dir, { recursive: true, force: true });
    };

    for (let run = 0; run < o.runs; run++) {
      for (const [i, row] of o.rows.entries()) {
        console.log(`[bench] ${kind.name}: run ${run + 1}/${o.runs} ${codecName(row.codec)} process-max ${row.p}`);
        // taking turns: who goes first changes from row to row, so neither always meets a warm or a cold cache
        const pgrepoFirst = (run + i) % 2 === 0;
        if (pgrepoFirst) {
          const restoreA = await pgrepoRow(row.codec, row.p);
          const restoreB = await pgbackrestRow(row.codec, row.p);
          await restoreA();
          await restoreB();
        } else {
          const restoreB = await pgbackrestRow(row.codec, row.p);
          const restoreA = await pgrepoRow(row.codec, row.p);
          await restoreB();
          await restoreA();
        }
        await removeRestores();
      }
      if (run === 0) {
        for (const row of rssRows(o.rows, o.rssProcessMax)) {
          console.log(`[bench] ${kind.name}: pgrepo alone, ${codecName(row.codec)} process-max ${row.p} (agent peak RSS)`);
          await (await pgrepoRow(row.codec, row.p))();
          await removeRestores();
        }
      }
      if (o.basebackup) await basebackup();
    }
    await agent1.stop();
    await agent2.stop();

    const rows: ResultRow[] = [];
    for (const [key, s] of samples) {
      const [what, codec, p, tool] = key.split('|') as ['backup' | 'restore', string, string, Tool];
      let row = rows.find((r) => r.what === what && r.codec === codec && r.p === Number(p) && (tool === 'pg_basebackup') === ('pg_basebackup' in r.samples));
      if (!row) rows.push((row = { what, codec, p: Number(p), samples: {}, n: s.length }));
      row.samples[tool] = medianSample(s);
    }
    return { rows, dataBytes, description, verified: [...verified], bundle: kind.bundle };
  } finally {
    await t.stop();
  }
}

const MiB = 1024 * 1024;

/** The markdown table of a run: per row both tools' wall, MiB/s, CPU, repository size, peak RSS, and the ratios. */
export function formatTable(rows: ResultRow[], dataBytes: number, tags: Map<ResultRow, string> = new Map()): string {
  const f = (n: number, d = 1) => n.toFixed(d);
  const rate = (s: Sample) => f(dataBytes / MiB / s.wall, 0);
  const cells = (s: Sample | undefined, backup: boolean) => (s ? [f(s.wall), rate(s), f(s.cpu), backup ? f(s.repoBytes / MiB, 0) : '', f(s.rss / MiB, 0)] : ['', '', '', '', '']);
  const lines = [
    '| what | codec | p | runs | pgrepo s | pgrepo MiB/s | pgrepo CPU s | pgrepo repo MiB | agent peak RSS MiB | pgBackRest s | pgBackRest MiB/s | pgBackRest CPU s | pgBackRest repo MiB | pgBackRest peak RSS MiB | wall ratio pgrepo/pgBackRest | CPU ratio |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const order = (r: ResultRow) => (r.what === 'backup' ? 0 : 1) * 1000 + r.p;
  for (const r of rows.filter((x) => !x.samples.pg_basebackup).sort((a, b) => order(a) - order(b) || a.codec.localeCompare(b.codec))) {
    const a = r.samples.pgrepo;
    const b = r.samples.pgbackrest;
    const backup = r.what === 'backup';
    const ratio = a && b ? [`**${f(a.wall / b.wall, 2)}**`, f(a.cpu / b.cpu, 2)] : ['', ''];
    lines.push(`| ${r.what} | ${r.codec} | ${r.p} | ${r.n}${tags.get(r) ?? ''} | ${[...cells(a, backup), ...cells(b, backup), ...ratio].join(' | ')} |`);
  }
  const ref = rows.filter((x) => x.samples.pg_basebackup);
  if (ref.length) {
    lines.push('', 'Reference, pg_basebackup -Ft -z -X stream (one process, gzip at zlib\'s default level 6; restore = tar -xzf of base and pg_wal; CPU is the client\'s only):', '',
      '| what | runs | s | MiB/s | CPU s | size MiB | peak RSS MiB |', '|---|---|---|---|---|---|---|');
    for (const r of ref) {
      const s = r.samples.pg_basebackup!;
      lines.push(`| ${r.what === 'backup' ? 'pg_basebackup -Ft -z' : 'tar -xzf'} | ${r.n}${tags.get(r) ?? ''} | ${f(s.wall)} | ${rate(s)} | ${f(s.cpu)} | ${r.what === 'backup' ? f(s.repoBytes / MiB, 0) : ''} | ${f(s.rss / MiB, 0)} |`);
    }
  }
  return lines.join('\n');
}
