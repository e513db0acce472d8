/**
 * Where the agent's memory goes during one backup and one restore per process-max (not a test:
 * `npm run bench:memory`, bench/README.md). Samples /proc/PID/smaps of the agent every 100 ms and
 * keeps the breakdown at the highest RSS: V8 heap pages, glibc malloc arenas, thread stacks, the
 * main malloc heap, code. With PGREPO_AGENT_MEMORY_LOG set, the agent also logs each thread's V8
 * heap at the end of a job (agent/memory-report.ts).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, it } from 'vitest';
import { runCleanups } from '../test/harness/cleanup';
import { STANZA, withTools } from './backup-matrix';
import { clusterKind, DEFAULT_SIZES, ensureCluster, type ClusterName } from './clusters';
import { loadAverage } from './measure';
import { ownedDir } from './setup';
import { smapsBreakdown, type Breakdown } from './smaps';

const env = process.env;
const BENCH_DIR = env.PGREPO_BENCH_DIR ?? '/var/tmp/pgrepo-bench';
const CLUSTER = (env.BENCH_CLUSTERS ?? 'small-tables') as ClusterName;
const PROCESS_MAX = (env.BENCH_RSS_PROCESS_MAX ?? '1,2,4').split(',').map(Number).filter((p) => p > 0);
const RESTORE = (env.BENCH_RESTORE ?? '1') !== '0';
const CODEC = (env.BENCH_CODEC ?? 'zst:3').split(':');

const MiB = 1024 * 1024;

/** Samples a process's smaps until stopped; returns the breakdown at its highest RSS. */
function sampler(pid: number): { stop: () => Promise<Breakdown> } {
  let peak: Breakdown | null = null;
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const b = smapsBreakdown(fs.readFileSync(`/proc/${pid}/smaps`, 'utf8'), fs.readdirSync(`/proc/${pid}/task`).length);
        if (!peak || b.rss > peak.rss) peak = b;
      } catch {
        // the process ended
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return { stop: async () => { running = false; await loop; return peak!; } };
}

function vmHwm(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

function resetHwm(pid: number): void {
  fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

function cpu(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

const line = (what: string, p: number, wall: number, cpuS: number, hwm: number, b: Breakdown) =>
  `| ${what} | ${p} | ${wall.toFixed(1)} | ${cpuS.toFixed(1)} | ${(hwm / MiB).toFixed(0)} | ${(b.rss / MiB).toFixed(0)} | ${Object.entries(b.parts).map(([k, v]) => `${k} ${(v / MiB).toFixed(0)}`).join(', ')} | ${b.threads} |`;

it(`${CLUSTER}: agent memory per process-max`, async () => {
  const socketDir = await ownedDir(path.join(BENCH_DIR, 'sock'));
  const kind = clusterKind(CLUSTER, DEFAULT_SIZES);
  const bench = await ensureCluster(BENCH_DIR, kind, socketDir);
  const out: string[] = [`load ${loadAverage()} at the start`, '| what | p | wall s | agent CPU s | VmHWM MiB | sampled peak RSS MiB | at the peak (MiB) | threads |', '|---|---|---|---|---|---|---|---|'];
  await withTools(path.join(BENCH_DIR, 'run-memory'), bench, async (t) => {
    for (const p of PROCESS_MAX) {
      for (const [what, agent, work] of [
        ['backup', t.agent1, () => t.ctl(['backup', '--stanza', STANZA, '--type', 'full', '--start-fast', '--compress-type', CODEC[0], ...(CODEC[1] ? ['--compress-level', CODEC[1]] : []),
          '--process-max', String(p), '--archive-timeout', '600', '--repo-retention-full', '1', ...(kind.bundle ? ['--bundle'] : [])])],
        ...(RESTORE ? [['restore', t.agent2, async () => {
          await fsp.rm(t.pgrepoTarget, { recursive: true, force: true });
          await t.ctl(['restore', '--stanza', STANZA, '--host', 'db2', '--pg-path', t.pgrepoTarget, '--process-max', String(p)]);
          await fsp.rm(t.pgrepoTarget, { recursive: true, force: true });
        }] as const] : []),
      ] as const) {
        const pid = agent.child.pid!;
        resetHwm(pid);
        const c0 = cpu(pid);
        const s = sampler(pid);
        const t0 = Date.now();
        await work();
        const wall = (Date.now() - t0) / 1000;
        const b = await s.stop();
        out.push(line(what, p, wall, cpu(pid) - c0, vmHwm(pid), b));
        console.log(out.at(-1));
      }
    }
    out.push(`load ${loadAverage()} at the end`);
    console.log(out.join('\n'));
    fs.writeFileSync(path.join(BENCH_DIR, `memory-${CLUSTER}.md`), out.join('\n') + '\n');
  });
}, 3_600_000);

afterAll(async () => {
  await runCleanups();
});
