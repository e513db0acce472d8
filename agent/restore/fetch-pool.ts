import { Worker } from 'node:worker_threads';
import { UserError } from '../../shared/errors';
import type { TlsFiles } from '../../shared/tls';
import { memoryProbe } from '../../shared/thread-memory';
import { workerScript } from '../../shared/worker-script';
import type { ManifestFile__Output } from '../../shared/generated/pgrepo/v1/ManifestFile';

export interface FetchWorkerData {
  server: string;
  tls: TlsFiles;
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
  /** one part of one large file, written at its offset (split.ts) */
  part?: { index: number; parts: number };
  /** the parts of the one file are all written: take its SHA-1 in order, check it and the stored bytes' count, finish it */
  verify?: { stored: number };
}

export interface FetchReply {
  id: number;
  error?: { message: string; code: string };
  /** of a part: the stored bytes it received */
  stored?: number;
  /** the stored bytes are not in frames the worker can cut (a file written without frame lengths): fetch them another way */
  unframed?: boolean;
}

/** A task the worker could not do because its stored bytes are not delimited frames: the caller reads it the ordinary way. */
export class UnframedFiles extends Error {}

interface Slot {
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
  private readonly pending = new Map<number, { slot: Slot; resolve: (stored: number) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private broken?: Error;

  constructor(size: number, connection: FetchWorkerData) {
    const script = workerScript(__dirname, 'fetch-worker.js');
    for (let i = 0; i < Math.max(1, size); i++) {
      // a small young generation: the received messages' memory is freed by the next scavenge, not held until a full collection
      const probe = memoryProbe('restore fetch');
      const worker = new Worker(script, { resourceLimits: { maxYoungGenerationSizeMb: 4 }, ...probe?.options, workerData: { ...probe?.options.workerData, ...connection } });
      const slot: Slot = { worker, busy: 0, probe };
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

  /** Restores the task's files; rejects with the worker's error (UserError), or UnframedFiles. Resolves to the stored bytes a part received. */
  run(task: Omit<FetchTask, 'id'>): Promise<number> {
    if (this.broken) return Promise.reject(this.broken);
    const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.nextId++;
    slot.busy++;
    return new Promise<number>((resolve, reject) => {
      this.pending.set(id, { slot, resolve, reject });
      slot.worker.postMessage({ ...task, id } satisfies FetchTask);
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
    else p.resolve(reply.stored ?? 0);
  }

  private fail(err: Error): void {
    if (this.broken) return;
    this.broken = err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
