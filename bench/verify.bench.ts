/**
 * repoctl verify against pgbackrest verify: one full backup of a bench cluster with each tool
 * (same codec, level and bundling), then both verify commands at each process-max, taking turns.
 * Not a test: `npm run bench:verify` (bench/README.md); the work per cluster is in verify-run.ts.
 * Writes the section `verify` of bench/RESULTS.md.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { afterAll, it } from 'vitest';
import { runCleanups } from '../test/harness/cleanup';
import { codecName, type Codec } from './backup-matrix';
import { CLUSTER_NAMES, clusterKind, DEFAULT_SIZES, ensureCluster, type ClusterName } from './clusters';
import { loadAverage } from './measure';
import { writeResultsSection } from './results';
import { ownedDir } from './setup';
import { runVerifyBench, verifyTable, type VerifyRow } from './verify-run';

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

it('repoctl verify vs pgbackrest verify at each process-max', async () => {
  await ownedDir(BENCH_DIR);
  const loadStart = loadAverage();
  const date = new Date().toISOString().slice(0, 16).replace('T', ' ');
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', '.', ':!bench/RESULTS.md'], { encoding: 'utf8' }).trim() ? ' (with uncommitted changes)' : '';
  const rows: VerifyRow[] = [];
  const described: string[] = [];
  for (const name of CLUSTERS) {
    const socketDir = await ownedDir(path.join(BENCH_DIR, 'sock'));
    const bench = await ensureCluster(BENCH_DIR, clusterKind(name, DEFAULT_SIZES), socketDir);
    const r = await runVerifyBench({ workDir: path.join(BENCH_DIR, 'run-verify'), bench, codec: CODEC, processMax: PROCESS_MAX, runs: RUNS });
    rows.push(...r.rows);
    described.push(`\`${name}\`: ${r.description}`);
  }
  const command = [...KNOBS.filter((v) => env[v]).map((v) => `${v}=${env[v]}`), 'npm run bench:verify'].join(' ');
  const text = [
    `## Verify${DEFAULT_SET ? '' : ` on ${CLUSTERS.join(', ')}`}: repoctl verify against pgbackrest verify (${codecName(CODEC)})`, '',
    `${date}, commit ${commit}${dirty}: \`${command}\`; load average (1 min) ${loadStart.toFixed(1)} at the start, ${loadAverage().toFixed(1)} at the end.`, '',
    `One full backup per tool (${codecName(CODEC)}, process-max 2), then each tool's verify of the whole stanza, taking turns. pgrepo reads every backup file and WAL segment, checks the stored bytes' size and SHA-1, decompresses and checks the original's size and SHA-1; pgBackRest 2.45 reads every file and checks the stored bytes' size and SHA-1 (\`rck\` in its manifest) without decompressing backup files. MiB/s: the tool's repository size over wall time. pgrepo CPU: the server process, all threads; pgBackRest CPU: all its processes (/usr/bin/time). Medians of the runs. Ratios below 1: pgrepo faster / cheaper.`, '',
    ...described.map((d) => `Cluster ${d}.`), '',
    verifyTable(rows, PROCESS_MAX),
  ].join('\n');
  console.log(text);
  // the default clusters have the section `verify`; other sets their own, so one run does not replace another's figures
  writeResultsSection(DEFAULT_SET ? 'verify' : `verify-${CLUSTERS.join('-')}`, text);
}, 4 * 3_600_000);

afterAll(async () => {
  await runCleanups();
}, 120_000);
