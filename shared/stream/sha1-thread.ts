import { Worker } from 'node:worker_threads';
import { workerScript } from '../worker-script';
import { transferable } from './transferable';

export type Sha1Request =
  | { op: 'update'; id: number; data: Uint8Array; back: boolean }
  | { op: 'digest' | 'drop'; id: number };

export type Sha1Reply =
  | { op: 'updated'; id: number; data?: Uint8Array }
  | { op: 'digest'; id: number; sha1: string };


/**
 * A stream's SHA-1, taken on a thread of its own (Sha1Thread). Pieces must be given in the
 * stream's order; their memory moves to the thread (do not touch a piece once given).
 */
export class Sha1Stream {
  private inFlight = 0;
  private waiting: (() => void) | undefined;
  private failed: Error | undefined;
  size = 0;

  constructor(private readonly thread: Sha1Thread, readonly id: number, private readonly ahead: number) {}

  /**
   * Hands the next piece over; resolves once the thread is at most `ahead` pieces behind.
   * `back` receives the piece's memory when the thread is done with it (when it could be moved).
   */
  async update(piece: Uint8Array, back?: (b: Uint8Array) => void): Promise<void> {
    if (this.failed) throw this.failed;
    this.size += piece.length;
    this.inFlight++;
    this.thread.post({ op: 'update', id: this.id, data: piece, back: back !== undefined && transferable(piece).length > 0 }, back);
    if (this.inFlight > this.ahead) await new Promise<void>((resolve) => { this.waiting = resolve; });
  }

  /** @internal the thread that held this stream's hash failed: the stream fails too */
  fail(err: Error): void {
    this.failed ??= err;
    this.hashed();
  }

  /** @internal the thread has hashed a piece (or failed: whoever waits to give more goes on, and meets the failure) */
  hashed(): void {
    this.inFlight--;
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }

  /** The hex SHA-1 of every piece given. */
  digest(): Promise<string> {
    if (this.failed) return Promise.reject(this.failed);
    return this.thread.finish(this.id, 'digest');
  }

  /** Forgets the stream (an upload that failed). */
  drop(): void {
    if (this.failed) return;
    this.failed = new Error('the hash of this stream was dropped');
    this.thread.finish(this.id, 'drop').catch(() => undefined);
  }
}

/**
 * One thread that hashes streams for the main thread: the SHA-1 of a large file (~0.6 ms per
 * MiB) was the agent's main thread's largest per-byte cost in a backup, and the main thread is
 * what a backup's largest file waits on. The thread starts with the first stream and holds
 * nothing between them; idle, it does not keep the process alive.
 */
export class Sha1Thread {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly streams = new Map<number, Sha1Stream>();
  private readonly backs = new Map<number, Array<((b: Uint8Array) => void) | undefined>>();
  private readonly digests = new Map<number, { resolve: (s: string) => void; reject: (e: Error) => void }>();
  private busy = 0;
  private closed = false;

  /**
   * A new stream. `ahead`: the pieces it may have handed over and not yet seen hashed (the hash
   * thread is several times faster than anything feeding it: this only bounds the memory it holds).
   */
  open(ahead = 4): Sha1Stream {
    const s = new Sha1Stream(this, this.nextId++, ahead);
    this.streams.set(s.id, s);
    this.backs.set(s.id, []);
    return s;
  }

  /** @internal */
  post(m: Sha1Request, back?: (b: Uint8Array) => void): void {
    const worker = this.start();
    if (m.op === 'update') this.backs.get(m.id)?.push(back);
    if (this.busy++ === 0) worker.ref();
    worker.postMessage(m, m.op === 'update' && m.back ? transferable(m.data) : []);
  }

  /** @internal */
  finish(id: number, op: 'digest' | 'drop'): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.digests.set(id, { resolve, reject });
      this.post({ op, id });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.worker;
    this.fail(new Error('the hash thread was closed'));
    await w?.terminate();
  }

  private start(): Worker {
    if (this.closed) throw new Error('the hash thread was closed');
    if (this.worker) return this.worker;
    const worker = new Worker(workerScript(__dirname, 'sha1-worker.js'), { resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 16 } });
    worker.on('message', (r: Sha1Reply) => this.settle(r));
    worker.on('error', (err) => {
      if (this.worker === worker) this.fail(err);
    });
    worker.on('exit', (code) => {
      if (this.worker === worker) this.fail(new Error(`the hash thread exited (code ${code})`));
    });
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private settle(r: Sha1Reply): void {
    if (--this.busy === 0) this.worker?.unref();
    if (r.op === 'updated') {
      const back = this.backs.get(r.id)?.shift();
      if (r.data && back) back(r.data);
      this.streams.get(r.id)?.hashed();
      return;
    }
    this.streams.delete(r.id);
    this.backs.delete(r.id);
    const d = this.digests.get(r.id);
    this.digests.delete(r.id);
    d?.resolve(r.sha1);
  }

  /**
   * Every stream the thread held fails (their hashes are lost with it); a later stream starts a
   * new thread, unless this one was closed.
   */
  private fail(err: Error): void {
    const worker = this.worker;
    this.worker = undefined;
    this.busy = 0;
    if (worker) void worker.terminate().catch(() => undefined);
    for (const d of this.digests.values()) d.reject(err);
    this.digests.clear();
    for (const s of this.streams.values()) s.fail(err);
    this.streams.clear();
    this.backs.clear();
  }
}
