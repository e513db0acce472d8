/**
 * verify --process-max N: N threads read, decompress and hash the stored files, while the
 * server's own thread only hands out work and collects verdicts (it stays free for backups and
 * WAL arriving meanwhile). Work goes out largest first, each large file to one thread and small
 * files in batches (one message per batch, not per file); a thread left without work near the
 * end is lent to one still reading a large file and decodes frames for it.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import { workerScriptPath } from '../../shared/stream/codec-pool';
import type { StoredSums, SumsRequest } from './stored-sums';
import type { FromWorker, ToWorker } from './sums-protocol';

/** Stored files smaller than this go out in batches. */
const BATCH_FILE_BYTES = 1024 * 1024;
/** A batch holds at most this many stored bytes, and at most BATCH_FILES files. */
const BATCH_BYTES = 8 * 1024 * 1024;
const BATCH_FILES = 1000;
/** A file at least this large (stored) is worth lending an idle thread to. */
const HELP_BYTES = 16 * 1024 * 1024;

export interface SumsJob {
  req: SumsRequest;
  /** stored bytes (for ordering, batching and progress) */
  bytes: number;
}

interface Batch<J> {
  id: number;
  jobs: J[];
  bytes: number;
}

interface Thread<J> {
  worker: Worker;
  /** the batch it reads, or (lent) the thread it helps */
  batch?: Batch<J>;
  helping?: Thread<J>;
  helpers: number;
}

/** Largest first; small files in batches of neighbours (the files of one bundle together). */
export function batches<J extends SumsJob>(jobs: J[]): Batch<J>[] {
  const out: Batch<J>[] = [];
  const small = jobs.filter((j) => j.bytes < BATCH_FILE_BYTES)
    .sort((a, b) => a.req.path.localeCompare(b.req.path) || (a.req.range?.start ?? 0) - (b.req.range?.start ?? 0));
  for (const j of jobs) if (j.bytes >= BATCH_FILE_BYTES) out.push({ id: 0, jobs: [j], bytes: j.bytes });
  let current: Batch<J> | undefined;
  for (const j of small) {
    if (!current || current.bytes + j.bytes > BATCH_BYTES || current.jobs.length >= BATCH_FILES) out.push((current = { id: 0, jobs: [], bytes: 0 }));
    current.jobs.push(j);
    current.bytes += j.bytes;
  }
  out.sort((a, b) => b.bytes - a.bytes);
  out.forEach((b, i) => (b.id = i + 1));
  return out;
}

/**
 * Sums every job on `size` threads; `done` is called on the server's thread as each batch
 * finishes. Stops handing out work once `cancelled()`; the threads end with the call.
 */
export async function sumAll<J extends SumsJob>(jobs: J[], size: number, done: (jobs: J[], sums: StoredSums[]) => void, cancelled: () => boolean): Promise<void> {
  const queue = batches(jobs);
  if (queue.length === 0) return;
  const script = workerScriptPath(__dirname, 'sums-worker.js');
  const threads: Thread<J>[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let running = 0;
      const send = (t: Thread<J>, m: ToWorker, transfer: Transferable[] = []) => t.worker.postMessage(m, transfer as never);
      const next = (t: Thread<J>) => {
        const batch = cancelled() ? undefined : queue.shift();
        if (batch) {
          t.batch = batch;
          running++;
          send(t, { kind: 'sums', id: batch.id, files: batch.jobs.map((j) => j.req) });
          return;
        }
        if (running === 0) {
          resolve();
          return;
        }
        // nothing left to start: help the thread with the largest file that has the fewest helpers
        const owner = threads.filter((o) => o.batch && o.batch.jobs.length === 1 && o.batch.bytes >= HELP_BYTES)
          .sort((a, b) => a.helpers - b.helpers || b.batch!.bytes - a.batch!.bytes)[0];
        if (!owner) return;
        const { port1, port2 } = new MessageChannel();
        owner.helpers++;
        t.helping = owner;
        send(owner, { kind: 'help', port: port1 }, [port1]);
        send(t, { kind: 'assist', port: port2 }, [port2]);
      };
      const onMessage = (t: Thread<J>, m: FromWorker) => {
        if (m.kind === 'assisted') {
          t.helping!.helpers--;
          t.helping = undefined;
        } else {
          const batch = t.batch!;
          t.batch = undefined;
          running--;
          try {
            done(batch.jobs, m.sums);
          } catch (err) {
            reject(err);
            return;
          }
        }
        if (!t.batch && !t.helping) next(t);
      };
      for (let i = 0; i < Math.max(1, size); i++) {
        // the threads hold little on the JavaScript heap (file data lives in buffers outside it)
        const worker = new Worker(script, { resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 32 } });
        const t: Thread<J> = { worker, helpers: 0 };
        threads.push(t);
        worker.on('message', (m: FromWorker) => onMessage(t, m));
        worker.on('error', reject);
        worker.on('exit', (code) => reject(new Error(`a verify thread exited (code ${code})`)));
      }
      for (const t of threads) next(t);
    });
  } finally {
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }
}
