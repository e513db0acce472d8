import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { UserError } from '../../shared/errors';
import type { StoredChecksums } from '../../shared/stream/pipeline';

export type WalTask =
  | { op: 'pack'; id: number; file: string; type: string; level: number; window: number; wire?: WireCompression }
  | { op: 'warm'; id: number; type: string; level: number }
  | { op: 'credit' | 'cancel'; id: number };

export type WalReply =
  | { id: number; frame: Uint8Array }
  | { id: number; done: StoredChecksums }
  | { id: number; error: string; code?: string };

/**
 * How a file of compress-type none travels: frames of this type, which the server decompresses
 * before storing (pgBackRest's compress-level-network), so the original bytes, three times the
 * size, do not cross TLS and HTTP/2 on both ends.
 */
export interface WireCompression {
  type: 'lz4';
  level: number;
}

/** Frames a WAL thread may have handed over that the sender has not taken yet. */
const WINDOW = 4;

/** dist/agent/archive/wal-worker.js: beside this module, or (when it runs from TypeScript sources, in tests) the built copy. */
function workerScript(): string {
  const places = [__dirname, path.resolve(__dirname, '..', '..', 'dist', 'agent', 'archive')].map((dir) => path.join(dir, 'wal-worker.js'));
  const script = places.find((p) => fs.existsSync(p));
  if (!script) throw new Error(`the WAL worker is not built (${places[0]}): run npm run build`);
  return script;
}

/**
 * One WAL file being packed by a WAL thread: its frames in order (async iteration, pulled at the
 * sender's pace), then `checksums`.
 */
export class PackedWal implements AsyncIterable<Buffer> {
  checksums: StoredChecksums | undefined;
  private readonly frames: Buffer[] = [];
  private failure: Error | undefined;
  private ended = false;
  private wake: (() => void) | undefined;

  constructor(private readonly id: number, private readonly thread: Thread) {}

  /** a reply from the thread */
  take(reply: WalReply): void {
    if ('frame' in reply) this.frames.push(Buffer.from(reply.frame.buffer, reply.frame.byteOffset, reply.frame.byteLength));
    else if ('done' in reply) this.checksums = reply.done;
    else this.failure = Object.assign(new UserError(reply.error), reply.code ? { code: reply.code } : {});
    if (!('frame' in reply)) this.ended = true;
    this.wake?.();
    this.wake = undefined;
  }

  fail(err: Error): void {
    this.take({ id: this.id, error: err.message });
  }

  /** Stops the thread's work on it (the upload failed). */
  cancel(): void {
    if (this.ended) return;
    this.ended = true;
    this.thread.send({ op: 'cancel', id: this.id });
    this.thread.finished(this.id);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    for (;;) {
      const frame = this.frames.shift();
      if (frame) {
        this.thread.send({ op: 'credit', id: this.id });
        yield frame;
        continue;
      }
      if (this.failure) throw this.failure;
      if (this.ended) return;
      await new Promise<void>((resolve) => { this.wake = resolve; });
    }
  }
}

class Thread {
  readonly jobs = new Map<number, PackedWal>();
  private readonly worker: Worker;

  constructor(script: string, private readonly onGone: (thread: Thread, err: Error) => void) {
    // WAL threads hold little on the JavaScript heap (buffers live outside it): small heaps keep the agent's RSS low
    this.worker = new Worker(script, { resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 32 } });
    this.worker.on('message', (reply: WalReply) => {
      const job = this.jobs.get(reply.id);
      if (!('frame' in reply)) this.finished(reply.id);
      job?.take(reply);
    });
    this.worker.on('error', (err) => this.onGone(this, err));
    this.worker.on('exit', (code) => this.onGone(this, new Error(`a WAL thread exited (code ${code})`)));
    this.worker.unref();
  }

  start(job: PackedWal, task: WalTask): void {
    // a thread with work keeps the agent alive; an idle one does not
    if (this.jobs.size === 0) this.worker.ref();
    this.jobs.set(task.id, job);
    this.send(task);
  }

  finished(id: number): void {
    this.jobs.delete(id);
    if (this.jobs.size === 0) this.worker.unref();
  }

  send(task: WalTask): void {
    this.worker.postMessage(task);
  }

  failAll(err: Error): void {
    for (const job of this.jobs.values()) job.fail(err);
    this.jobs.clear();
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

/**
 * `size` threads that pack WAL files for archive-push, a whole file per task (see
 * wal-worker.ts): the file goes to the thread with the least work, threads are started on
 * first use and replaced when one dies.
 */
export class WalThreads {
  private readonly threads: Thread[] = [];
  private nextId = 1;
  private closed = false;

  constructor(private readonly size: number) {}

  /** Reads, checksums and compresses `file` on a WAL thread (`wire`: for compress-type none only). */
  pack(file: string, type: string, level: number, wire?: WireCompression): PackedWal {
    if (this.closed) throw new UserError('the WAL threads are closed');
    const thread = this.pick();
    const id = this.nextId++;
    const job = new PackedWal(id, thread);
    thread.start(job, { op: 'pack', id, file, type, level, window: WINDOW, ...(wire ? { wire } : {}) });
    return job;
  }

  /**
   * Starts every thread and has each load the codec (archive-async, when the agent starts), so
   * that the first segments of a backlog do not wait for a thread to boot (tens of milliseconds).
   */
  async warm(type: string, level: number): Promise<void> {
    while (!this.closed && this.threads.length < Math.max(1, this.size)) this.threads.push(this.newThread());
    await Promise.all(this.threads.map(async (thread) => {
      const id = this.nextId++;
      const job = new PackedWal(id, thread);
      thread.start(job, { op: 'warm', id, type, level });
      for await (const _ of job) { /* no frames: it ends when the codec is loaded */ }
    }));
  }

  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads.splice(0);
    for (const t of threads) t.failAll(new UserError('the WAL threads were closed'));
    await Promise.all(threads.map((t) => t.terminate()));
  }

  private pick(): Thread {
    const idle = this.threads.find((t) => t.jobs.size === 0);
    if (idle) return idle;
    if (this.threads.length < Math.max(1, this.size)) {
      const thread = this.newThread();
      this.threads.push(thread);
      return thread;
    }
    return this.threads.reduce((a, b) => (b.jobs.size < a.jobs.size ? b : a));
  }

  private newThread(): Thread {
    return new Thread(workerScript(), (t, err) => this.gone(t, err));
  }

  private gone(thread: Thread, err: Error): void {
    const i = this.threads.indexOf(thread);
    if (i >= 0) this.threads.splice(i, 1);
    if (!this.closed) thread.failAll(err);
  }
}
