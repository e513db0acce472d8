/**
 * repoctl verify against pgbackrest verify: one full backup of a bench cluster with each tool
 * (same codec, level and bundling), then both verify commands at each process-max, taking turns.
 * Not a test: `npm run bench:verify` (bench/README.md). Writes the section `verify` of bench/RESULTS.md.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { runCleanups } from '../test/harness/cleanup';
import { codecName, startTools, type Codec } from './backup-matrix';
import { CLUSTER_NAMES, clusterKind, DEFAULT_SIZES, ensureCluster, type ClusterName } from './clusters';
import { du, loadAverage, measured, median } from './measure';
import { writeResultsSection } from './results';
import { ownedDir } from './setup';
import { freePort } from '../test/harness/pg';

const env = process.env;
const BENCH_DIR = env.PGREPO_BENCH_DIR ?? '/var/tmp/pgrepo-bench';
const list = (v: string | undefined, dflt: string) => (v ?? dflt).split(',').map((x) => x.trim()).filter(Boolean);
const CLUSTERS = list(env.BENCH_CLUSTERS, 'random,pgbench') as ClusterName[];
for (const c of CLUSTERS) if (!CLUSTER_NAMES.includes(c)) throw new Error(`BENCH_CLUSTERS: unknown cluster ${c} (one of ${CLUSTER_NAMES.join(', ')})`);
const DEFAULT_SET = CLUSTERS.join(',') === 'random,pgbench';
const [codecType, codecLevel] = (env.BENCH_CODEC ?? 'zst:3').split(':');
const CODEC: Codec = { type: codecType, level: Number(codecLevel ?? 0) };
const PROCESS_MAX = list(env.BENCH_PROCESS_MAX, '1,2,4').map(Number);
const RUNS = Number(env.BENCH_RUNS ?? 3);
const KNOBS = ['PGREPO_BENCH_DIR', 'BENCH_CLUSTERS', 'BENCH_CODEC', 'BENCH_PROCESS_MAX', 'BENCH_RUNS'];
const MiB = 2 ** 20;
const STANZA = 'bench';

interface Row {
  cluster: string;
  p: number;
  tool: 'pgrepo' | 'pgBackRest';
  wall: number;
  cpu: number;
  /** bytes of original data the verify read (the backup's files; WAL not counted) */
  dataBytes: number;
  repoBytes: number;
  /** pgrepo: the longest the server's event loop was blocked during the verify (seconds) */
  lag?: number;
}

interface VerifyJson { ok: boolean; bytes_checked: number; bytes_read: number; files_checked: number }

/** One cluster: a backup with each tool, then `RUNS` rounds of verify at every process-max. */
async function benchCluster(name: ClusterName): Promise<{ rows: Row[]; description: string }> {
  const socketDir = await ownedDir(path.join(BENCH_DIR, 'sock'));
  const bench = await ensureCluster(BENCH_DIR, clusterKind(name, DEFAULT_SIZES), socketDir);
  // the server's Prometheus metrics: how long its event loop was blocked while verify ran
  const metricsPort = await freePort();
  const tools = await startTools(path.join(BENCH_DIR, 'run-verify'), bench, ['--metrics-listen', `127.0.0.1:${metricsPort}`]);
  const loopLagMax = async () => {
    const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    return Number(/^pgrepo_server_nodejs_eventloop_lag_max_seconds (\S+)/m.exec(text)?.[1] ?? NaN);
  };
  const { ctl, br, server, agent1, agent2 } = tools;
  const codecArgs = CODEC.type === 'none' ? [] : [CODEC.level];
  try {
    await ctl(['backup', '--stanza', STANZA, '--type', 'full', '--start-fast', '--compress-type', CODEC.type, ...codecArgs.flatMap((l) => ['--compress-level', String(l)]),
      '--process-max', '2', '--archive-timeout', '600', ...(bench.kind.bundle ? ['--bundle'] : [])]);
    await br(['backup', '--type=full', `--compress-type=${CODEC.type}`, ...codecArgs.map((l) => `--compress-level=${l}`), '--process-max=2']);
    // verify reads the repository alone: the agents idle, the cluster stays up (its WAL is archived)
    await agent2.stop();
    await loopLagMax();
    await new Promise((r) => setTimeout(r, 3000));
    console.log(`[bench] with nothing to do, the server's event loop was late by at most ${((await loopLagMax()) * 1000).toFixed(0)} ms in 3 s`);
    const rows: Row[] = [];
    const pgrepoRepo = du(path.join(tools.work, 'repo-pgrepo'));
    const brRepo = du(path.join(tools.work, 'repo-pgbackrest'));
    for (let run = 0; run < RUNS; run++) {
      for (const [i, p] of PROCESS_MAX.entries()) {
        const pgrepo = async () => {
          await loopLagMax(); // each scrape starts the next maximum afresh
          const m = await measured(`pgrepo verify p${p}`, [server.proc], () => ctl<VerifyJson>(['verify', '--stanza', STANZA, '--process-max', String(p)]));
          expect(m.result.ok).toBe(true);
          const lag = await loopLagMax();
          console.log(`[bench] pgrepo verify p${p}: the server's event loop was blocked at most ${(lag * 1000).toFixed(0)} ms`);
          rows.push({ cluster: name, p, tool: 'pgrepo', wall: m.wall, cpu: m.cpu, dataBytes: m.result.bytes_checked, repoBytes: pgrepoRepo, lag });
        };
        const pgbackrest = async () => {
          const t = await br(['verify', `--process-max=${p}`, '--output=text', '--verbose']);
          // what it checked, in its own words
          if (run === 0) console.log(`[bench] pgbackrest verify p${p} says: ${t.stdout.replace(/\s+/g, ' ').slice(0, 600)}`);
          rows.push({ cluster: name, p, tool: 'pgBackRest', wall: t.wall, cpu: t.cpu, dataBytes: 0, repoBytes: brRepo });
        };
        // taking turns, so neither always meets the warmer page cache
        for (const f of (run + i) % 2 === 0 ? [pgrepo, pgbackrest] : [pgbackrest, pgrepo]) await f();
      }
    }
    await agent1.stop();
    return { rows, description: tools.description };
  } finally {
    await tools.stop();
    fs.rmSync(tools.work, { recursive: true, force: true });
  }
}

function table(rows: Row[]): string {
  const f = (n: number, d = 1) => n.toFixed(d);
  const lines = ['| cluster | process-max | runs | pgrepo s | pgrepo MiB/s (repository) | pgrepo CPU s | server event loop blocked at most, ms | pgBackRest s | pgBackRest MiB/s (repository) | pgBackRest CPU s | wall ratio pgrepo/pgBackRest | CPU ratio | pgrepo speed-up over p1 |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|'];
  for (const cluster of [...new Set(rows.map((r) => r.cluster))]) {
    const of = (tool: Row['tool'], p: number) => rows.filter((r) => r.cluster === cluster && r.tool === tool && r.p === p);
    const wall1 = median(of('pgrepo', Math.min(...PROCESS_MAX)).map((r) => r.wall));
    for (const p of PROCESS_MAX) {
      const a = of('pgrepo', p);
      const b = of('pgBackRest', p);
      const [aw, ac, bw, bc] = [median(a.map((r) => r.wall)), median(a.map((r) => r.cpu)), median(b.map((r) => r.wall)), median(b.map((r) => r.cpu))];
      lines.push(`| ${cluster} | ${p} | ${a.length} | ${f(aw)} | ${f(a[0].repoBytes / MiB / aw, 0)} | ${f(ac)} | ${f(Math.max(...a.map((r) => r.lag ?? NaN)) * 1000, 0)} | ${f(bw)} | ${f(b[0].repoBytes / MiB / bw, 0)} | ${f(bc)} | **${f(aw / bw, 2)}** | ${f(ac / bc, 2)} | ${f(wall1 / aw, 2)} |`);
    }
  }
  return lines.join('\n');
}

it('repoctl verify vs pgbackrest verify at each process-max', async () => {
  await ownedDir(BENCH_DIR);
  const loadStart = loadAverage();
  const date = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', '.', ':!bench/RESULTS.md'], { encoding: 'utf8' }).trim() ? ' (with uncommitted changes)' : '';
  const rows: Row[] = [];
  const described: string[] = [];
  for (const name of CLUSTERS) {
    const r = await benchCluster(name);
    rows.push(...r.rows);
    described.push(`\`${name}\`: ${r.description}`);
  }
  const command = [...KNOBS.filter((v) => env[v]).map((v) => `${v}=${env[v]}`), 'npm run bench:verify'].join(' ');
  const text = [
    `## Verify${DEFAULT_SET ? '' : ` on ${CLUSTERS.join(', ')}`}: repoctl verify against pgbackrest verify (${codecName(CODEC)})`, '',
    `${date}, commit ${commit}${dirty}: \`${command}\`; load average (1 min) ${loadStart.toFixed(1)} at the start, ${loadAverage().toFixed(1)} at the end.`, '',
    `One full backup per tool (${codecName(CODEC)}, process-max 2), then each tool's verify of the whole stanza, taking turns. pgrepo reads every backup file and WAL segment, checks the stored bytes' size and SHA-1, decompresses and checks the original's size and SHA-1; pgBackRest 2.45 reads every file and checks the stored bytes' size and SHA-1 (\`rck\` in its manifest) without decompressing backup files. MiB/s: the tool's repository size over wall time. pgrepo CPU: the server process, all threads; pgBackRest CPU: all its processes (/usr/bin/time). Medians of the runs. Ratios below 1: pgrepo faster / cheaper.`, '',
    ...described.map((d) => `Cluster ${d}.`), '',
    table(rows),
  ].join('\n');
  console.log(text);
  // the default clusters have the section `verify`; other sets their own, so one run does not replace another's figures
  writeResultsSection(DEFAULT_SET ? 'verify' : `verify-${CLUSTERS.join('-')}`, text);
}, 4 * 3_600_000);

afterAll(async () => {
  await runCleanups();
}, 120_000);
