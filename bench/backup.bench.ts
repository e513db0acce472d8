/**
 * pgrepo against pgBackRest on three clusters (pgbench, poorly compressible random data, 100,000
 * small tables), full backup and restore per codec and process-max, pg_basebackup for reference.
 * Not a test: `npm run bench` (bench/README.md). Run by vitest only to reuse the test harness
 * (real PostgreSQL, real server and agents over mTLS). Each cluster writes its own section of
 * bench/RESULTS.md; rows measured by separate runs (e.g. one codec at a time) are merged there.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { runCleanups } from '../test/harness/cleanup';
import { pgBindir } from '../test/harness/pg';
import { run } from '../test/harness/system';
import { formatTable, runMatrix, type MatrixResult, type ResultRow, type RowSpec } from './backup-matrix';
import { CLUSTER_NAMES, clusterKind, DEFAULT_SIZES, ensureCluster, type ClusterName, type ClusterSizes } from './clusters';
import { loadAverage } from './measure';
import { writeResultsSection } from './results';
import { ownedDir } from './setup';

const env = process.env;
const BENCH_DIR = env.PGREPO_BENCH_DIR ?? '/var/tmp/pgrepo-bench';
const list = (v: string | undefined, dflt: string) => (v ?? dflt).split(',').map((x) => x.trim()).filter(Boolean);
const codec = (c: string) => {
  const [type, level] = c.split(':');
  return { type, level: Number(level ?? 0) };
};

const CLUSTERS = list(env.BENCH_CLUSTERS, 'pgbench,random,small-tables') as ClusterName[];
for (const c of CLUSTERS) if (!CLUSTER_NAMES.includes(c)) throw new Error(`BENCH_CLUSTERS: unknown cluster ${c} (one of ${CLUSTER_NAMES.join(', ')})`);
const SIZES: ClusterSizes = {
  pgbenchScale: Number(env.BENCH_SCALE ?? DEFAULT_SIZES.pgbenchScale),
  randomMib: Number(env.BENCH_RANDOM_MIB ?? DEFAULT_SIZES.randomMib),
  smallTables: Number(env.BENCH_SMALL_TABLES ?? DEFAULT_SIZES.smallTables),
  mixedBlobMib: Number(env.BENCH_BLOB_MIB ?? DEFAULT_SIZES.mixedBlobMib),
  mixedPgbenchScale: Number(env.BENCH_PGBENCH_SCALE ?? DEFAULT_SIZES.mixedPgbenchScale),
};
/** BENCH_ROWS (codec:level@process-max); or, when BENCH_CODECS or BENCH_PROCESS_MAX is given, their cross product */
function rows(): RowSpec[] {
  if (env.BENCH_CODECS || env.BENCH_PROCESS_MAX) {
    const ps = list(env.BENCH_PROCESS_MAX, '1,2').map(Number);
    return list(env.BENCH_CODECS, 'gz:6,lz4:1,zst:3,none').flatMap((c) => ps.map((p) => ({ codec: codec(c), p })));
  }
  return list(env.BENCH_ROWS, 'gz:6@1,gz:6@2,lz4:1@2,zst:3@2,none@2').map((r) => {
    const [c, p] = r.split('@');
    return { codec: codec(c), p: Number(p ?? 2) };
  });
}
const ROWS = rows();
const RSS_PROCESS = list(env.BENCH_RSS_PROCESS_MAX, '1,2,4').map(Number).filter((p) => p > 0);
const RUNS = Number(env.BENCH_RUNS ?? 3);
const BASEBACKUP = (env.BENCH_BASEBACKUP ?? '1') !== '0';
const VERIFY = (env.BENCH_VERIFY ?? '1') !== '0';
const GENERATE_ONLY = env.BENCH_GENERATE_ONLY === '1';
const KNOBS = ['PGREPO_BENCH_DIR', 'BENCH_CLUSTERS', 'BENCH_ROWS', 'BENCH_CODECS', 'BENCH_PROCESS_MAX', 'BENCH_RSS_PROCESS_MAX', 'BENCH_RUNS', 'BENCH_BASEBACKUP', 'BENCH_VERIFY',
  'BENCH_SCALE', 'BENCH_RANDOM_MIB', 'BENCH_SMALL_TABLES', 'BENCH_BLOB_MIB', 'BENCH_PGBENCH_SCALE', 'MALLOC_MMAP_THRESHOLD_'];

const commandLine = () => [...KNOBS.filter((v) => env[v]).map((v) => `${v}=${env[v]}`), `npm run ${env.npm_lifecycle_event ?? 'bench'}`].join(' ');

/** What one invocation measured on one cluster, kept beside the cluster so later runs of other rows merge with it. */
interface Stored {
  title: string;
  description: string;
  dataBytes: number;
  generationSeconds: number;
  runs: Array<{ tag: string; date: string; commit: string; command: string; loadStart: number; loadEnd: number; verified: string[] }>;
  rows: Array<ResultRow & { tag: string }>;
}

function merge(file: string, fresh: Omit<Stored, 'runs' | 'rows'>, result: MatrixResult, runInfo: Omit<Stored['runs'][number], 'tag'>): Stored {
  let old: Stored | undefined;
  try {
    old = JSON.parse(fs.readFileSync(file, 'utf8')) as Stored;
  } catch {
    old = undefined;
  }
  const same = (a: ResultRow, b: ResultRow) => a.what === b.what && a.codec === b.codec && a.p === b.p && !!a.samples.pg_basebackup === !!b.samples.pg_basebackup;
  // rows from a cluster generated otherwise are not comparable: start over (its size in bytes moves a little with every start)
  const keep = old && old.title === fresh.title && String(old.generationSeconds ?? NaN) === String(fresh.generationSeconds) ? old.rows.filter((r) => !result.rows.some((n) => same(r, n))) : [];
  const runs = (old && keep.length ? old.runs : []).filter((r) => keep.some((k) => k.tag === r.tag));
  const tag = String.fromCharCode(Math.min(122, Math.max(96, ...runs.map((r) => r.tag.charCodeAt(0))) + 1));
  return { ...fresh, runs: [...runs, { tag, ...runInfo }], rows: [...keep, ...result.rows.map((r) => ({ ...r, tag }))] };
}

function machine(brVersion: string, pgVersion: string): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${os.cpus().length} cores (${cpu}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, node ${process.version}, ${brVersion}, ${pgVersion}; both repositories on the same local disk as PGDATA, pgrepo over mutual TLS on loopback.`;
}

function render(name: ClusterName, s: Stored, machineLine: string): string {
  const tags = new Map<ResultRow, string>(s.rows.map((r) => [r, s.runs.length > 1 ? ` [${r.tag}]` : '']));
  const gen = Number.isFinite(s.generationSeconds) ? `generated in ${s.generationSeconds.toFixed(0)} s` : 'generation time not recorded';
  return [
    `## Backup and restore, cluster \`${name}\`: ${s.title}`, '',
    `Machine: ${machineLine}`, '',
    `Cluster: ${s.description}; ${(s.dataBytes / 2 ** 20).toFixed(0)} MiB to back up (PGDATA without pg_wal); ${gen}.${name === 'small-tables' ? ' Both tools bundle small files here: pgrepo `--bundle`, pgBackRest `repo1-bundle=y` (default limits: 2 MiB files, 20 MiB bundles).' : ''}`, '',
    'Full backups with retention 1 (each tool expires its previous backup in the timed run), restore into an empty directory. Medians of the runs; peak RSS is the largest seen. pgrepo CPU = agent + server, all threads; pgBackRest CPU = all its processes (/usr/bin/time). Ratios below 1: pgrepo faster / cheaper.', '',
    ...s.runs.map((r) => `${s.runs.length > 1 ? `[${r.tag}] ` : ''}${r.date}, commit ${r.commit}: \`${r.command}\`; load average (1 min) ${r.loadStart.toFixed(1)} at the start, ${r.loadEnd.toFixed(1)} at the end; restores verified (started, data compared): ${r.verified.join(', ') || 'none'}.`),
    '',
    formatTable(s.rows, s.dataBytes, tags),
  ].join('\n');
}

for (const name of CLUSTERS) {
  it(`${name}: pgrepo vs pgBackRest, full backup and restore`, async () => {
    await ownedDir(BENCH_DIR);
    const store = path.join(await ownedDir(path.join(BENCH_DIR, 'results')), `${name}.json`);
    let stored: Stored;
    if (RUNS === 0) {
      // BENCH_RUNS=0: only rewrite the section from the figures kept
      stored = JSON.parse(fs.readFileSync(store, 'utf8')) as Stored;
    } else {
      const socketDir = await ownedDir(path.join(BENCH_DIR, 'sock'));
      const kind = clusterKind(name, SIZES);
      const bench = await ensureCluster(BENCH_DIR, kind, socketDir);
      console.log(`[bench] cluster ${name}: ${bench.reused ? 'reused' : 'generated'}, generation took ${bench.generationSeconds.toFixed(0)} s`);
      if (GENERATE_ONLY) return;

      const loadStart = loadAverage();
      const date = new Date().toISOString().slice(0, 16).replace('T', ' ');
      // the code measured is what was built when the run started
      const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
      const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', '.', ':!bench/RESULTS.md'], { encoding: 'utf8' }).trim() ? ' (with uncommitted changes)' : '';
      const result = await runMatrix({ workDir: path.join(BENCH_DIR, 'run'), bench, rows: ROWS, rssProcessMax: RSS_PROCESS, runs: RUNS, basebackup: BASEBACKUP, verify: VERIFY });
      expect(result.rows.length).toBeGreaterThan(0);
      stored = merge(store, { title: kind.title, description: result.description, dataBytes: result.dataBytes, generationSeconds: bench.generationSeconds }, result,
        { date, commit: commit + dirty, command: commandLine(), loadStart, loadEnd: loadAverage(), verified: result.verified });
      fs.writeFileSync(store, JSON.stringify(stored, null, 1));
    }
    const brVersion = (await run('pgbackrest', ['version'])).stdout.trim();
    const pgVersion = (await run(path.join(pgBindir(), 'postgres'), ['--version'])).stdout.trim().replace(/^postgres \(PostgreSQL\)/, 'PostgreSQL');
    const text = render(name, stored, machine(brVersion, pgVersion));
    console.log(text);
    writeResultsSection(`backup-${name}`, text);
  }, 8 * 3_600_000);
}

afterAll(async () => {
  await runCleanups();
}, 120_000);
