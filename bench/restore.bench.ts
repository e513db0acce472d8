/**
 * Restores only, for working on the restore path (not a test: `npm run bench:restore`,
 * bench/README.md): one full backup with each tool of one cached cluster, then BENCH_RUNS rounds of
 * one restore each, the tools taking turns who goes first, each restore on the same footing as in
 * `npm run bench` (the other's files kept until both are done, dirty pages flushed first, and
 * BENCH_COOL_SECONDS, default 15, between rounds: on this VM memory freed for a few seconds goes
 * back to the host, and a restore right after the last round's removal would get warm pages where
 * the other tool got cold ones). With BENCH_PERF=DIR, `perf record -a -g` runs around each pgrepo
 * restore (DIR/restore-N.perf).
 */
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, it } from 'vitest';
import { runCleanups } from '../test/harness/cleanup';
import { runOk } from '../test/harness/system';
import { codecName, STANZA, withTools } from './backup-matrix';
import { clusterKind, DEFAULT_SIZES, ensureCluster, type ClusterName } from './clusters';
import { loadAverage, measured, median } from './measure';
import { ownedDir } from './setup';

const env = process.env;
const BENCH_DIR = env.PGREPO_BENCH_DIR ?? '/var/tmp/pgrepo-bench';
const CLUSTER = (env.BENCH_CLUSTERS ?? 'random') as ClusterName;
const [TYPE, LEVEL] = (env.BENCH_CODEC ?? 'lz4:1').split(':');
const P = Number(env.BENCH_PROCESS_MAX ?? 2);
const RUNS = Number(env.BENCH_RUNS ?? 3);
const PERF = env.BENCH_PERF;
const COOL_SECONDS = Number(env.BENCH_COOL_SECONDS ?? 15);

/** Runs `work` under `perf record -a -g` into `file`. */
async function perfRecorded<T>(file: string, work: () => Promise<T>): Promise<T> {
  const perf = spawn('/usr/bin/perf', ['record', '-q', '-F', '999', '-a', '-g', '-o', file], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  try {
    return await work();
  } finally {
    const exited = new Promise((r) => perf.on('exit', r));
    perf.kill('SIGINT');
    await exited;
  }
}

it(`${CLUSTER}: restores, pgrepo against pgBackRest`, async () => {
  const socketDir = await ownedDir(path.join(BENCH_DIR, 'sock'));
  const bench = await ensureCluster(BENCH_DIR, clusterKind(CLUSTER, DEFAULT_SIZES), socketDir);
  const codec = { type: TYPE, level: Number(LEVEL ?? 0) };
  const name = `${codecName(codec)} p${P}`;
  const level = TYPE === 'none' ? [] : [LEVEL];
  const rows: string[] = [];
  const figures = { pgrepo: [] as Array<[number, number]>, pgbackrest: [] as Array<[number, number]> };
  await withTools(path.join(BENCH_DIR, 'run-restore'), bench, async (t) => {
    const brTarget = path.join(t.restoreRoot, 'pgbackrest');
    await t.ctl(['backup', '--stanza', STANZA, '--type', 'full', '--start-fast', '--compress-type', TYPE, ...level.flatMap((l) => ['--compress-level', l]),
      '--process-max', String(P), '--archive-timeout', '600']);
    await t.br(['backup', '--type=full', `--compress-type=${TYPE}`, ...level.map((l) => `--compress-level=${l}`), `--process-max=${P}`]);
    const pgrepo = async (run: number) => {
      await runOk('sync', []);
      const go = () => measured(`pgrepo restore ${name}`, [t.agent2, t.server.proc], () => t.ctl(['restore', '--stanza', STANZA, '--host', 'db2', '--pg-path', t.pgrepoTarget, '--process-max', String(P)]));
      const r = PERF ? await perfRecorded(path.join(PERF, `restore-${run}.perf`), go) : await go();
      figures.pgrepo.push([r.wall, r.cpu]);
      console.log(`[bench] pgrepo restore ${name}: agent peak RSS ${(r.rss[0] / 2 ** 20).toFixed(0)} MiB`);
    };
    const pgbackrest = async () => {
      await ownedDir(brTarget);
      await runOk('sync', []);
      const r = await t.br(['restore', `--pg1-path=${brTarget}`, `--process-max=${P}`]);
      figures.pgbackrest.push([r.wall, r.cpu]);
    };
    for (let run = 0; run < RUNS; run++) {
      const load = loadAverage();
      if (run % 2 === 0) {
        await pgrepo(run);
        await pgbackrest();
      } else {
        await pgbackrest();
        await pgrepo(run);
      }
      const [a, b] = [figures.pgrepo.at(-1)!, figures.pgbackrest.at(-1)!];
      rows.push(`| ${run + 1} | ${a[0].toFixed(2)} | ${a[1].toFixed(1)} | ${b[0].toFixed(2)} | ${b[1].toFixed(1)} | ${(a[0] / b[0]).toFixed(2)} | ${load} |`);
      console.log(rows.at(-1));
      await fsp.rm(t.pgrepoTarget, { recursive: true, force: true });
      await fsp.rm(brTarget, { recursive: true, force: true });
      if (run + 1 < RUNS) await new Promise((r) => setTimeout(r, COOL_SECONDS * 1000));
    }
    const med = (xs: Array<[number, number]>, i: number) => median(xs.map((x) => x[i]));
    rows.push(`| median | ${med(figures.pgrepo, 0).toFixed(2)} | ${med(figures.pgrepo, 1).toFixed(1)} | ${med(figures.pgbackrest, 0).toFixed(2)} | ${med(figures.pgbackrest, 1).toFixed(1)} | `
      + `${(med(figures.pgrepo, 0) / med(figures.pgbackrest, 0)).toFixed(2)} | ${loadAverage()} |`);
    console.log([`${CLUSTER} restore ${name}`, '| run | pgrepo s | pgrepo CPU s | pgBackRest s | pgBackRest CPU s | wall ratio | load (1 min) at the start |', '|---|---|---|---|---|---|---|', ...rows].join('\n'));
  });
}, 3_600_000);

afterAll(async () => {
  await runCleanups();
});
