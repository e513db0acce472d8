import fs from 'node:fs';
import v8 from 'node:v8';
import { MessageChannel, type MessagePort, type WorkerOptions } from 'node:worker_threads';

/**
 * Where a process's memory goes, thread by thread (a diagnostic: on at log level debug). Each
 * worker thread samples its own V8 heap between tasks and keeps its largest; the pools ask for
 * it before they end their threads, and the job logs every thread's peak with the process's.
 */
export interface ThreadMemory {
  thread: string;
  /** MiB of V8 heap pages resident (all spaces) */
  heapMb: number;
  /** MiB of live objects in them */
  heapUsedMb: number;
  /** MiB of memory V8 allocated with malloc for itself (not Buffers) */
  mallocedMb: number;
  /** MiB of ArrayBuffers (Buffers) this thread's heap points to */
  arrayBuffersMb: number;
}

const mb = (n: number) => Math.round((n / 1048576) * 10) / 10;

export function threadMemory(thread: string): ThreadMemory {
  const h = v8.getHeapStatistics();
  return { thread, heapMb: mb(h.total_physical_size), heapUsedMb: mb(h.used_heap_size), mallocedMb: mb(h.malloced_memory), arrayBuffersMb: mb(process.memoryUsage().arrayBuffers) };
}

/** The largest of each figure seen. */
function larger(a: ThreadMemory | undefined, b: ThreadMemory): ThreadMemory {
  if (!a) return b;
  return { thread: a.thread, heapMb: Math.max(a.heapMb, b.heapMb), heapUsedMb: Math.max(a.heapUsedMb, b.heapUsedMb),
    mallocedMb: Math.max(a.mallocedMb, b.mallocedMb), arrayBuffersMb: Math.max(a.arrayBuffersMb, b.arrayBuffersMb) };
}

/**
 * V8 lets the old generation grow to up to 4 times what survived the last full collection
 * before it collects again. The agent's main thread promotes much short-lived data (messages
 * and frames in flight): on 100,000 small tables 70 MB lived, yet 245 MB of heap stood between
 * collections. 1.5 times keeps the heap near what lives, for a few more collections that cost
 * less than the memory (measured: same CPU and wall). Read by V8 at every collection, so setting
 * it once the process runs takes effect (and covers `node main.js` as much as the bin).
 */
export function limitHeapGrowth(percent = 50): void {
  v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}

let enabled = false;
const reports: ThreadMemory[] = [];

/** Switches the reports on (the agent does at log level debug). */
export function reportThreadMemory(on: boolean): void {
  enabled = on;
}

const SAMPLE_MS = 50;

/**
 * What a pool passes to `new Worker` (merged into its options) and calls before it ends the
 * thread; nothing when the reports are off.
 */
export function memoryProbe(thread: string): { options: Pick<WorkerOptions, 'workerData' | 'transferList'>; collect: () => Promise<void> } | null {
  if (!enabled) return null;
  const { port1, port2 } = new MessageChannel();
  port1.unref();
  return {
    options: { workerData: { memoryPort: port2, thread }, transferList: [port2] },
    collect: () => new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1000);
      port1.once('message', (m: ThreadMemory) => {
        reports.push(m);
        clearTimeout(timer);
        port1.close();
        resolve();
      });
      port1.postMessage('report');
    }),
  };
}

/** In a worker thread: samples its heap and answers the probe (see memoryProbe). */
export function serveMemoryProbe(data: unknown): void {
  const port = (data as { memoryPort?: MessagePort } | undefined)?.memoryPort;
  if (!port) return;
  const thread = (data as { thread: string }).thread;
  let peak: ThreadMemory | undefined;
  const timer = setInterval(() => (peak = larger(peak, threadMemory(thread))), SAMPLE_MS);
  timer.unref();
  port.on('message', () => port.postMessage(larger(peak, threadMemory(thread))));
  port.unref();
}

function statusKb(field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/**
 * Watches a job's memory (when the reports are on): the main thread's at the highest RSS seen;
 * `end` returns it with every worker thread's peak, and the process's peak RSS (VmHWM).
 */
export function watchJobMemory(): { end: () => Record<string, unknown> } | null {
  if (!enabled) return null;
  reports.length = 0;
  let peakRss = 0;
  let atPeak: (ThreadMemory & { ms: number; spacesMb: Record<string, number> }) | undefined;
  const started = Date.now();
  let mainPeak: ThreadMemory | undefined;
  const timer = setInterval(() => {
    const rss = process.memoryUsage.rss();
    const now = threadMemory('main');
    mainPeak = larger(mainPeak, now);
    if (rss > peakRss) {
      peakRss = rss;
      atPeak = { ...now, ms: Date.now() - started,
        spacesMb: Object.fromEntries(v8.getHeapSpaceStatistics().map((sp) => [sp.space_name, mb(sp.physical_space_size)])) };
    }
  }, SAMPLE_MS);
  timer.unref();
  return {
    end: () => {
      clearInterval(timer);
      const threads = [mainPeak, ...reports.splice(0)].filter((t) => t !== undefined);
      return { vmHwmMb: mb(statusKb('VmHWM') * 1048576), sampledPeakRssMb: mb(peakRss), mainAtPeak: atPeak, threadPeaks: threads,
        heapsMb: Math.round(threads.reduce((n, t) => n + t.heapMb, 0) * 10) / 10 };
    },
  };
}
