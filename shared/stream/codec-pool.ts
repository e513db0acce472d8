import { Worker } from 'node:worker_threads';
import { UserError } from '../errors';
import { memoryProbe } from '../thread-memory';
import { workerScript } from '../worker-script';
import { BufferRing } from './buffer-ring';
import { Sha1Thread } from './sha1-thread';
import { transferable } from './transferable';
import { runCodecTask, type CodecResult, type CodecTask, type PageTask } from './codec-task';

/**
 * Frames this small are coded on the calling thread: coding 16 KiB takes microseconds, less than
 * the round trip to a worker thread, and a cluster of many small relations is mostly such frames.
 */
const INLINE_BYTES = 16 * 1024;

export type { CodecTask, CodecResult, PageTask };

export interface CodecReply {
  id: number;
  data?: Uint8Array;
  badBlocks?: number[];
  sha1?: string;
  /** the chunk, handed back (a task with keepInput) */
  input?: Uint8Array;
  /** bytes read (a task with read) */
  read?: number;
  /** the task's buffers the worker no longer needs (its input, an unused `out`), handed back for reuse */
  spare?: Uint8Array[];
  /** what a RunTask's module returned */
  result?: unknown;
  error?: string;
  code?: string;
}

/**
 * Work of another kind for the same threads (CodecPool.run): the worker loads `module` (a built
 * script, see shared/worker-script.ts) on first use and calls its `runTask(payload)`.
 */
export interface RunTask {
  id: number;
  op: 'run';
  module: string;
  payload: unknown;
}

/** What a RunTask's module exports. */
export interface TaskModule {
  /** the result, and the buffers in it to move (not copy) back to the caller */
  runTask(payload: unknown): { result: unknown; transfer: ArrayBuffer[] };
}

export { transferable };

const asBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** A frame that does not compress or decompress: on restore, a damaged repository copy. */
export class CodecError extends Error {
  readonly code = 'CODEC';
}

/** True for a failure of the codec itself (from a worker, zlib's stream or zstd's), as opposed to I/O or the network. */
export function isCodecError(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return err instanceof CodecError || code === 'CORRUPT' || (typeof code === 'string' && /^Z_/.test(code)) || /zstd|lz4/i.test(String((err as Error)?.message));
}

/** What else to do with a chunk while it is compressed (CodecPool.encodeChunk). */
export interface ChunkWork {
  /** validate its pages */
  pages?: PageTask;
  /** take its SHA-1 (a file that is one chunk) */
  hash?: boolean;
  /** hand the chunk back with its frame (its SHA-1 is taken in file order elsewhere: CodecPool.sha1) */
  keepInput?: boolean;
  /** read the chunk first, into the chunk's memory, from this open file at this position (CodecTask.read) */
  read?: { fd: number; position: number };
  /**
   * compress into one of the ring's buffers, leaving this many bytes free before the frame (for a
   * message header written around it without copying it: shared/stream/raw-message.ts); the
   * frame's memory is then the ring's, to give back once sent
   */
  headroom?: number;
}

interface Pending {
  settle: (r: CodecReply) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: number;
  probe: ReturnType<typeof memoryProbe>;
}

/**
 * N worker threads that compress and decompress frames: --process-max N spreads the codec work
 * of backup and restore over N cores while the main thread reads, hashes and sends. Tasks queue
 * in order of submission; each worker holds at most two, so it never waits for the main thread.
 * The same threads run other per-byte work of a job (run(): a backup's bundled small files), so
 * a job has one set of N threads, each a V8 isolate of ~10 MiB, not one set per kind of work.
 */
export class CodecPool {
  /**
   * Chunks in memory at once across every file using this pool (read or decoded, not yet sent
   * or written): what bounds the agent's memory however many files are in flight.
   */
  readonly chunks: Limiter;
  /** frame-sized buffers that travel to the workers and back, used again (buffer-ring.ts) */
  readonly ring: BufferRing;
  /**
   * the SHA-1 of a backup's files of more than one chunk, in file order, off the main thread
   * (the chunks come back from their codec workers with their frames: ChunkWork.keepInput)
   */
  readonly sha1 = new Sha1Thread();
  private readonly slots: Slot[] = [];
  private readonly queue: Array<CodecTask | RunTask> = [];
  private readonly pending = new Map<number, Pending & { slot?: Slot }>();
  private nextId = 1;
  private closed = false;

  constructor(readonly size: number) {
    this.chunks = new Limiter(2 * Math.max(1, size) + 2);
    // every chunk slot may hold an input and an output buffer, and each file's splitter a frame or two
    this.ring = new BufferRing(4 * Math.max(1, size) + 8);
    const script = workerScript(__dirname, 'codec-worker.js');
    for (let i = 0; i < Math.max(1, size); i++) {
      // codec threads hold little on the JavaScript heap (buffers live outside it): small heaps keep the agent's RSS low
      const probe = memoryProbe('codec');
      const worker = new Worker(script, { resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 24 }, ...probe?.options });
      const slot: Slot = { worker, busy: 0, probe };
      worker.on('message', (reply: CodecReply) => this.settle(slot, reply));
      worker.on('error', (err) => this.fail(err));
      worker.on('exit', (code) => {
        if (!this.closed) this.fail(new Error(`a codec worker thread exited (code ${code})`));
      });
      worker.unref();
      this.slots.push(slot);
    }
  }

  /** Compresses one chunk into one frame. The chunk's memory moves to the worker: do not use it afterwards. */
  async encode(type: string, level: number, chunk: Buffer): Promise<Buffer> {
    return (await this.submit({ op: 'encode', type, level, data: chunk })).data;
  }

  /**
   * Compresses one chunk of a backup file into one frame (type none: passes it through), with the
   * per-byte work `work` asks for done on the same worker. The chunk's memory moves to the
   * worker: do not use it afterwards.
   */
  encodeChunk(type: string, level: number, chunk: Buffer, work: ChunkWork = {}): Promise<CodecResult> {
    const out = work.headroom !== undefined && type !== 'none' ? this.ring.takeWhole().subarray(work.headroom) : undefined;
    return this.submit({ op: 'encode', type, level, data: chunk, out, pages: work.pages, hash: work.hash, keepInput: work.keepInput, read: work.read });
  }

  /**
   * Decompresses one whole frame. The frame's memory moves to the worker (and, when it is one
   * of the ring's, back to the ring). With `reuse`, the result is decoded into a buffer of the
   * ring where the codec allows: give it back (ring.give) once done with it.
   */
  async decode(type: string, frame: Buffer, reuse = false): Promise<Buffer> {
    return (await this.submit({ op: 'decode', type, level: 0, data: frame, out: reuse && type !== 'gz' ? this.ring.takeWhole() : undefined })).data;
  }

  /**
   * Runs `payload` through `module`'s runTask on one of the threads (RunTask), queued with the
   * codec tasks; its failure rejects with the error's message and code (not a CodecError).
   */
  run<R>(module: string, payload: unknown): Promise<R> {
    return this.post({ op: 'run', module, payload }, (reply) => {
      if (reply.error === undefined) return reply.result as R;
      throw Object.assign(new Error(reply.error), { code: reply.code });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.fail(new UserError('the codec pool was closed'));
    await Promise.all(this.slots.map((s) => s.probe?.collect()));
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    await this.sha1.close();
  }

  private submit(work: Omit<CodecTask, 'id'>): Promise<CodecResult> {
    if (this.closed) return Promise.reject(new UserError('the codec pool is closed'));
    if (work.data.length <= INLINE_BYTES && !work.read) {
      let result: CodecResult | undefined;
      try {
        result = runCodecTask({ id: 0, ...work });
        return Promise.resolve(result);
      } catch (err) {
        return Promise.reject(new CodecError((err as Error).message));
      } finally {
        // what the result does not use goes back to the ring, as a worker's spare buffers do
        if (result?.data.buffer !== work.out?.buffer) this.ring.give(work.out);
        if (result?.data.buffer !== work.data.buffer && !result?.input) this.ring.give(work.data);
      }
    }
    return this.post(work, (reply) => {
      if (!reply.data) throw new CodecError(reply.error);
      return { data: asBuffer(reply.data), badBlocks: reply.badBlocks, sha1: reply.sha1, input: reply.input && asBuffer(reply.input), read: reply.read };
    });
  }

  /** Queues a task for the threads; `outcome` turns the reply into the result (or throws). */
  private post<R>(work: Omit<CodecTask, 'id'> | Omit<RunTask, 'id'>, outcome: (reply: CodecReply) => R): Promise<R> {
    if (this.closed) return Promise.reject(new UserError('the codec pool is closed'));
    const id = this.nextId++;
    // idle workers must not keep a process alive; busy ones must, or a waiting caller is dropped
    if (this.pending.size === 0) for (const s of this.slots) s.worker.ref();
    return new Promise<R>((resolve, reject) => {
      this.pending.set(id, { settle: (reply) => {
        try {
          resolve(outcome(reply));
        } catch (err) {
          reject(err as Error);
        }
      }, reject });
      this.queue.push({ id, ...work } as CodecTask | RunTask);
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      const slot = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
      if (slot.busy >= 2) return;
      const task = this.queue.shift()!;
      slot.busy++;
      this.pending.get(task.id)!.slot = slot;
      // a chunk's memory moves to the worker; a RunTask's payload is copied
      slot.worker.postMessage(task, task.op === 'run' ? [] : [...transferable(task.data), ...(task.out ? transferable(task.out) : [])]);
    }
  }

  private settle(slot: Slot, reply: CodecReply): void {
    slot.busy--;
    const p = this.pending.get(reply.id);
    this.pending.delete(reply.id);
    for (const b of reply.spare ?? []) this.ring.give(b);
    p?.settle(reply);
    if (this.pending.size === 0) for (const s of this.slots) s.worker.unref();
    this.dispatch();
  }

  private fail(err: Error): void {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.queue.length = 0;
  }
}

/**
 * A counting semaphore whose waiters are served highest priority first (in order of arrival
 * among equals).
 */
export class Limiter {
  private free: number;
  private readonly waiting: Array<{ priority: number; resume: () => void }> = [];

  constructor(readonly limit: number) {
    this.free = limit;
  }

  tryAcquire(): boolean {
    if (this.free === 0) return false;
    this.free--;
    return true;
  }

  acquire(priority = 0): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((resume) => {
      let at = this.waiting.length;
      while (at > 0 && this.waiting[at - 1].priority < priority) at--;
      this.waiting.splice(at, 0, { priority, resume });
    });
  }

  /** True when something waits and everything waiting has a lower priority than `priority`. */
  outranksWaiting(priority: number): boolean {
    return this.waiting.length > 0 && this.waiting[0].priority < priority;
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next.resume();
    else this.free++;
  }
}
