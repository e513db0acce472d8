import { Worker } from 'node:worker_threads';
import { UserError } from '../../shared/errors';
import type { TlsFiles } from '../../shared/tls';
import { memoryProbe } from '../../shared/thread-memory';
import { workerScript } from '../../shared/worker-script';
import { writeLockMemory } from './write-lock';
import type { ManifestFile__Output } from '../../shared/generated/pgrepo/v1/ManifestFile';

export interface FetchWorkerData {
  server: string;
  tls: TlsFiles;
  /** the workers' lock around writes of parts of one file (write-lock.ts) */
  writeLock: SharedArrayBuffer;
}

/** A file to fetch, where to write it, and whether to fsync it on its own (pg_control). */
export interface FetchFile {
  file: ManifestFile__Output;
  dest: string;
  durable: boolean;
}

/** One file (GetBackupFile), or small files fetched many to a call (GetBackupFiles, `batch`). */
export interface FetchTask {
  id: number;
  stanza: string;
  label: string;
  batch: boolean;
  files: FetchFile[];
  /** one part of one large file, written at its offset (split.ts); part 0 also begins the file's SHA-1, in order */
  part?: { index: number; parts: number };
  /**
   * the parts of the one file are all written: carry its SHA-1 on in order from where part 0's
   * ended (on the worker that received part 0) to the end of the file, check it and the stored
   * bytes' count, finish it
   */
  verify?: { stored: number };
}

/** Where the original bytes of a part went: `size` bytes from `offset`. */
export interface PartWritten {
  offset: number;
  size: number;
}

export interface FetchReply {
  id: number;
  error?: { message: string; code: string };
  /** of a part: the stored bytes it received */
  stored?: number;
  /** of a part: where its original bytes were written */
  written?: PartWritten;
  /** the stored bytes are not in frames the worker can cut (a file written without frame lengths): fetch them another way */
  unframed?: boolean;
}

/** What a task did, and on which worker (a file's verify must run where its part 0 ran). */
export interface FetchResult {
  worker: number;
  stored: number;
  written?: PartWritten;
}

/** Asks a worker to wait for the files it flushes to disk in the background; its reply says whether all made it. */
export interface FlushRequest {
  id: number;
  flush: true;
}

/** A task the worker could not do because its stored bytes are not delimited frames: the caller reads it the ordinary way. */
export class UnframedFiles extends Error {}

/**
 * A fetch worker's V8 heap. A small young generation: the received messages' memory is freed by
 * the next scavenge, not held until a full collection. A bounded old generation: what a worker
 * keeps is a few MB (its tasks' manifest entries, a hash per file in parts), but without a bound
 * V8 lets the old generation fill with promoted garbage up to its default first limit before it
 * collects: each worker's heap reached 30-50 MB restoring 100,000 small files. The bound makes
 * V8 start its limits lower; it is far above what a worker holds.
 */
const FETCH_WORKER_HEAP = { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 64 };

interface Slot {
  index: number;
  worker: Worker;
  busy: number;
  probe: ReturnType<typeof memoryProbe>;
}

/**
 * --process-max restore worker threads (fetch-worker.ts), each with its own channel to the
 * repository server, that restore whole files. Tasks go to the worker with the fewest in flight;
 * a worker runs several at once (a small file is mostly round trip).
 */
export class RestoreFetchPool {
  private readonly slots: Slot[] = [];
  private readonly pending = new Map<number, { slot: Slot; resolve: (r: FetchResult) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private broken?: Error;

  constructor(size: number, connection: Omit<FetchWorkerData, 'writeLock'>) {
    const script = workerScript(__dirname, 'fetch-worker.js');
    const workerData: FetchWorkerData = { ...connection, writeLock: writeLockMemory() };
    for (let i = 0; i < Math.max(1, size); i++) {
      const probe = memoryProbe('restore fetch');
      const worker = new Worker(script, { resourceLimits: FETCH_WORKER_HEAP, ...probe?.options, workerData: { ...probe?.options.workerData, ...workerData } });
      const slot: Slot = { index: i, worker, busy: 0, probe };
      worker.on('message', (reply: FetchReply) => this.settle(reply));
      worker.on('error', (err) => this.fail(new UserError(`a restore worker thread failed: ${err.message}`)));
      worker.on('exit', (code) => this.fail(new UserError(`a restore worker thread exited (code ${code})`)));
      this.slots.push(slot);
    }
  }

  get size(): number {
    return this.slots.length;
  }

  /**
   * Tasks to keep in flight: two per worker, so one's round trip overlaps the other's work. More
   * would only queue on the worker's connection, holding what it has received and not yet read.
   */
  get inFlight(): number {
    return 2 * this.slots.length;
  }

  /**
   * Restores the task's files on worker `on`, or on the least busy; rejects with the worker's
   * error (UserError), or UnframedFiles.
   */
  run(task: Omit<FetchTask, 'id'>, on?: number): Promise<FetchResult> {
    const slot = on === undefined ? this.slots.reduce((a, b) => (b.busy < a.busy ? b : a)) : this.slots[on];
    return this.post(slot, (id) => ({ ...task, id }) satisfies FetchTask);
  }

  /**
   * Waits until every file the workers flush to disk in the background (large files, fsynced as
   * soon as each is written, so the disk works while the rest arrives) is durable; rejects with
   * the first failure.
   */
  async flush(): Promise<void> {
    await Promise.all(this.slots.map((slot) => this.post(slot, (id) => ({ id, flush: true }) satisfies FlushRequest)));
  }

  private post(slot: Slot, message: (id: number) => FetchTask | FlushRequest): Promise<FetchResult> {
    if (this.broken) return Promise.reject(this.broken);
    const id = this.nextId++;
    slot.busy++;
    return new Promise<FetchResult>((resolve, reject) => {
      this.pending.set(id, { slot, resolve, reject });
      slot.worker.postMessage(message(id));
    });
  }

  async close(): Promise<void> {
    this.broken ??= new UserError('the restore workers were stopped');
    await Promise.all(this.slots.map((s) => s.probe?.collect()));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  private settle(reply: FetchReply): void {
    const p = this.pending.get(reply.id);
    if (!p) return;
    this.pending.delete(reply.id);
    p.slot.busy--;
    if (reply.unframed) p.reject(new UnframedFiles(reply.error?.message));
    else if (reply.error) p.reject(new UserError(reply.error.message, reply.error.code || undefined));
    else p.resolve({ worker: p.slot.index, stored: reply.stored ?? 0, written: reply.written });
  }

  private fail(err: Error): void {
    if (this.broken) return;
    this.broken = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
