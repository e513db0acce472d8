/**
 * One cluster of the verify benchmark (`npm run bench:verify`, bench/verify.bench.ts; a smoke run
 * in test/e2e/bench-smoke-verify.test.ts): a full backup with each tool, then repoctl verify and
 * pgbackrest verify at each process-max, taking turns.
 */
import fs from 'node:fs';
import { expect } from 'vitest';
import { freePort } from '../test/harness/pg';
import { startTools, type Codec } from './backup-matrix';
import type { BenchCluster } from './clusters';
import { du, measured, median } from './measure';

const MiB = 2 ** 20;
const STANZA = 'bench';

export interface VerifyRow {
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

export interface VerifyBenchOptions {
  /** scratch directory for both repositories; emptied first, removed at the end */
  workDir: string;
  bench: BenchCluster;
  codec: Codec;
  processMax: number[];
  runs: number;
}

/** One cluster (stopped; left stopped): a backup with each tool, then `runs` rounds of both verifies at every process-max. */
export async function runVerifyBench(o: VerifyBenchOptions): Promise<{ rows: VerifyRow[]; description: string }> {
  const { bench, codec: CODEC } = o;
  const name = bench.kind.name;
  // the server's Prometheus metrics: how long its event loop was blocked while verify ran
  const metricsPort = await freePort();
  const tools = await startTools(o.workDir, bench, ['--metrics-listen', `127.0.0.1:${metricsPort}`]);
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
    const rows: VerifyRow[] = [];
    const pgrepoRepo = du(`${tools.work}/repo-pgrepo`);
    const brRepo = du(`${tools.work}/repo-pgbackrest`);
    for (let run = 0; run < o.runs; run++) {
      for (const [i, p] of o.processMax.entries()) {
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

/** The markdown table: per cluster and process-max, both tools' medians and the ratios. */
export function verifyTable(rows: VerifyRow[], processMax: number[]): string {
  const f = (n: number, d = 1) => n.toFixed(d);
  const lines = ['| cluster | process-max | runs | pgrepo s | pgrepo MiB/s (repository) | pgrepo CPU s | server event loop blocked at most, ms | pgBackRest s | pgBackRest MiB/s (repository) | pgBackRest CPU s | wall ratio pgrepo/pgBackRest | CPU ratio | pgrepo speed-up over p1 |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|'];
  for (const cluster of [...new Set(rows.map((r) => r.cluster))]) {
    const of = (tool: VerifyRow['tool'], p: number) => rows.filter((r) => r.cluster === cluster && r.tool === tool && r.p === p);
    const wall1 = median(of('pgrepo', Math.min(...processMax)).map((r) => r.wall));
    for (const p of processMax) {
      const a = of('pgrepo', p);
      const b = of('pgBackRest', p);
      const [aw, ac, bw, bc] = [median(a.map((r) => r.wall)), median(a.map((r) => r.cpu)), median(b.map((r) => r.wall)), median(b.map((r) => r.cpu))];
      lines.push(`| ${cluster} | ${p} | ${a.length} | ${f(aw)} | ${f(a[0].repoBytes / MiB / aw, 0)} | ${f(ac)} | ${f(Math.max(...a.map((r) => r.lag ?? NaN)) * 1000, 0)} | ${f(bw)} | ${f(b[0].repoBytes / MiB / bw, 0)} | ${f(bc)} | **${f(aw / bw, 2)}** | ${f(ac / bc, 2)} | ${f(wall1 / aw, 2)} |`);
    }
  }
  return lines.join('\n');
}
