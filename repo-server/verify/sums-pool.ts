/**
 * verify --process-max N: N threads read, decompress and hash the stored files, while the
 * server's own thread only hands out work and collects verdicts (it stays free for backups and
 * WAL arriving meanwhile). Work goes out largest first, each large file to one thread and small
 * files in batches (one message per batch, not per file); a thread left without work near the
 * end is lent to one still reading a large file and decodes frames for it.
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import { workerScript } from '../../shared/worker-script';
import type { StoredSums, SumsRequest } from './stored-sums';
import type { FromWorker, ToWorker } from './sums-protocol';

/** Stored files smaller than this go out in batches. */
const BATCH_FILE_BYTES = 1024 * 1024;
/** A batch holds at most this many stored bytes, and at most BATCH_FILES files. */
const BATCH_BYTES = 8 * 1024 * 1024;
const BATCH_FILES = 1000;
/** A file at least this large (stored) is worth lending an idle thread to, or splitting. */
const HELP_BYTES = 16 * 1024 * 1024;

export interface SumsJob {
  req: SumsRequest;
  /** stored bytes (for ordering, batching and progress) */
  bytes: number;
}

interface Item<J> {
  job: J;
  part?: SumsRequest['part'];
}

export interface Batch<J> {
  id: number;
  items: Item<J>[];
  bytes: number;
  /** one large file whose frames an idle thread can decode */
  helpable: boolean;
}

/**
 * Largest first; small files in batches of neighbours (the files of one bundle together). With
 * several threads, a file too large to balance whole (more than half a thread's share) goes out
 * as two halves: the stored bytes' hash, and the decoding and hash of the original.
 */
export function batches<J extends SumsJob>(jobs: J[], threads: number): Batch<J>[] {
  const out: Batch<J>[] = [];
  const total = jobs.reduce((n, j) => n + j.bytes, 0);
  const single = (j: J, part?: Item<J>['part']) => out.push({ id: 0, items: [{ job: j, part }], bytes: j.bytes, helpable: j.bytes >= HELP_BYTES && j.req.compressType !== 'none' && part !== 'stored' });
  for (const j of jobs.filter((x) => x.bytes >= BATCH_FILE_BYTES)) {
    if (threads > 1 && j.bytes >= HELP_BYTES && j.bytes > total / (2 * threads) && j.req.compressType !== 'none') {
      single(j, 'original');
      single(j, 'stored');
    } else {
      single(j);
    }
  }
  // neighbours together: grouped by file (a Map keeps first-seen order), by offset within one
  const byPath = new Map<string, J[]>();
  for (const j of jobs) {
    if (j.bytes >= BATCH_FILE_BYTES) continue;
    const group = byPath.get(j.req.path);
    if (group) group.push(j);
    else byPath.set(j.req.path, [j]);
  }
  const small = [...byPath.values()].flatMap((g) => (g.length > 1 ? g.sort((a, b) => (a.req.range?.start ?? 0) - (b.req.range?.start ?? 0)) : g));
  let current: Batch<J> | undefined;
  for (const j of small) {
    if (!current || current.bytes + j.bytes > BATCH_BYTES || current.items.length >= BATCH_FILES) out.push((current = { id: 0, items: [], bytes: 0, helpable: false }));
    current.items.push({ job: j });
    current.bytes += j.bytes;
  }
  out.sort((a, b) => b.bytes - a.bytes); // stable: a file's 'original' half goes out before its 'stored' half
  out.forEach((b, i) => (b.id = i + 1));
  return out;
}

interface Thread<J> {
  worker: Worker;
  /** the batch it reads, or (lent) the thread it helps */
  batch?: Batch<J>;
  helping?: Thread<J>;
  helpers: number;
}

/** The halves of split files, joined once both are back. */
class Halves<J> {
  private readonly first = new Map<J, StoredSums>();

  /** The whole file's sums once `part`'s other half is in too; undefined until then. */
  join(job: J, part: 'stored' | 'original', sums: StoredSums): StoredSums | undefined {
    const other = this.first.get(job);
    if (!other) {
      this.first.set(job, sums);
      return undefined;
    }
    this.first.delete(job);
    const [stored, original] = part === 'stored' ? [sums, other] : [other, sums];
    return {
      storedSize: stored.storedSize, storedChecksum: stored.storedChecksum,
      originalSize: original.originalSize, originalChecksum: original.originalChecksum, head: original.head,
      error: original.error ?? stored.error,
    };
  }
}

/**
 * Sums every job on `size` threads; `done` is called on the server's thread as each batch
 * finishes. Stops handing out work once `cancelled()`; the threads end with the call.
 */
export async function sumAll<J extends SumsJob>(jobs: J[], size: number, done: (jobs: J[], sums: StoredSums[]) => void, cancelled: () => boolean): Promise<void> {
  const queue = batches(jobs, size);
  const halves = new Halves<J>();
  if (queue.length === 0) return;
  const script = workerScript(__dirname, 'sums-worker.js');
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
          send(t, { kind: 'sums', id: batch.id, files: batch.items.map((i) => ({ ...i.job.req, part: i.part })) });
          return;
        }
        if (running === 0) {
          resolve();
          return;
        }
        // nothing left to start: help the thread with the largest file that has the fewest helpers
        const owner = threads.filter((o) => o.batch?.helpable)
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
        } else if (m.kind === 'sums') {
          const batch = t.batch!;
          t.batch = undefined;
          running--;
          const finished: J[] = [];
          const sums: StoredSums[] = [];
          batch.items.forEach((item, i) => {
            const whole = item.part ? halves.join(item.job, item.part, m.sums[i]) : m.sums[i];
            if (whole) {
              finished.push(item.job);
              sums.push(whole);
            }
          });
          try {
            if (finished.length) done(finished, sums);
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
