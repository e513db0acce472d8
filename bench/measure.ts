/**
 * How the benchmark measures a run: wall time, CPU seconds (all threads, from /proc for our own
 * daemons, from /usr/bin/time for the other tools' processes and their children) and peak RSS.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type { Proc } from '../test/harness/processes';
import { describeRun, run } from '../test/harness/system';

export interface Sample {
  wall: number;
  cpu: number;
  repoBytes: number;
  rss: number;
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Median wall, CPU and size of several runs; RSS is the largest seen. */
export function medianSample(samples: Sample[]): Sample {
  return { wall: median(samples.map((s) => s.wall)), cpu: median(samples.map((s) => s.cpu)), repoBytes: median(samples.map((s) => s.repoBytes)), rss: Math.max(...samples.map((s) => s.rss)) };
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

function statTimes(file: string): number {
  const stat = fs.readFileSync(file, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime
}

function cpuSeconds(pid: number): number {
  return statTimes(`/proc/${pid}/stat`);
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

/** CPU seconds per thread name (main thread, codec workers, libuv's pool), for "where the time goes". */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const key = tid === String(pid) ? 'main' : name;
      out.set(key, (out.get(key) ?? 0) + statTimes(`/proc/${pid}/task/${tid}/stat`));
    } catch {
      // a thread that ended meanwhile
    }
  }
  return out;
}

/**
 * Runs `work` and measures our daemons `procs` meanwhile: wall, their CPU seconds and each one's
 * peak RSS; logs CPU per thread.
 */
export async function measured<T>(what: string, procs: Proc[], work: () => Promise<T>): Promise<{ result: T; wall: number; cpu: number; rss: number[] }> {
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
export async function timed(cmd: string, args: string[]): Promise<{ wall: number; cpu: number; rss: number; stdout: string }> {
  const res = await run('/usr/bin/time', ['-f', 'BENCHTIME %e %U %S %M', cmd, ...args], { asPostgres: true, timeoutMs: 3_600_000 });
  if (res.code !== 0) throw new Error(describeRun(cmd, args, res));
  const m = /BENCHTIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(res.stderr);
  if (!m) throw new Error(`no timing from /usr/bin/time: ${res.stderr}`);
  console.log(`[bench] ${cmd} ${args.find((a) => !a.startsWith('-')) ?? ''}: ${m[1]} s wall, ${(Number(m[2]) + Number(m[3])).toFixed(1)} CPU s`);
  return { wall: Number(m[1]), cpu: Number(m[2]) + Number(m[3]), rss: Number(m[4]) * 1024, stdout: res.stdout };
}

/** Bytes under a directory (du -sb). */
export function du(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
}

/** The 1-minute load average now. */
export function loadAverage(): number {
  return Number(fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}
