import { Worker } from 'node:worker_threads';
import type { BlockRange } from '../../shared/stream/page-checksum';
import { memoryProbe } from '../../shared/thread-memory';
import { workerScript } from '../../shared/worker-script';

export interface BundleReadTask {
  id: number;
  type: string;
  level: number;
  lsnLimit: bigint;
  /** where to read each file, and its manifest header */
  files: Array<{ path: string; size: number; firstBlock: number | null; name: string; mtime: number; mode: string; user: string; group: string }>;
}

/** What a reader thread made of one file. */
export interface ReadFileResult {
  /** dropped since the listing: nothing to send */
  gone: boolean;
  size: number;
  pageErrors: BlockRange[];
}

/** A batch read: what became of each file, and the BundleUpload messages that carry them (bundle-message.ts). */
export interface BundleRead {
  results: ReadFileResult[];
  messages: Buffer[];
}

export interface BundleReadReply {
  id: number;
  results?: ReadFileResult[];
  messages?: Uint8Array[];
  error?: string;
  code?: string;
}

interface Reader {
  worker: Worker;
  busy: number;
  probe: ReturnType<typeof memoryProbe>;
}

/**
 * process-max threads that read, hash, page-check and compress the small files of bundles and
 * encode the messages that carry them, a batch per message (bundle-read-worker.ts): a cluster
 * of 100,000 small relations is 100,000 opens, reads and closes, and on the main thread they
 * waited for the disk one at a time.
 */
export class BundleReaders {
  private readonly readers: Reader[] = [];
  private readonly pending = new Map<number, { resolve: (r: BundleRead) => void; reject: (e: Error) => void; reader: Reader }>();
  private nextId = 1;
  private closed = false;

  constructor(size: number) {
    const script = workerScript(__dirname, 'bundle-read-worker.js');
    for (let i = 0; i < Math.max(1, size); i++) {
      const probe = memoryProbe('bundle reader');
      const worker = new Worker(script, { resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 32 }, ...probe?.options });
      const reader: Reader = { worker, busy: 0, probe };
      worker.on('message', (reply: BundleReadReply) => this.settle(reader, reply));
      worker.on('error', (err) => this.fail(reader, new Error(`a backup file reader thread failed: ${err.message}`)));
      worker.on('exit', (code) => {
        if (!this.closed) this.fail(reader, new Error(`a backup file reader thread exited (code ${code})`));
      });
      worker.unref();
      this.readers.push(reader);
    }
  }

  /** Reads a batch of files on the least busy thread. */
  read(task: Omit<BundleReadTask, 'id'>): Promise<BundleRead> {
    if (this.closed) return Promise.reject(new Error('the backup file readers are closed'));
    const reader = this.readers.reduce((a, b) => (b.busy < a.busy ? b : a));
    const id = this.nextId++;
    if (this.pending.size === 0) for (const r of this.readers) r.worker.ref();
    reader.busy++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, reader });
      reader.worker.postMessage({ ...task, id });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new Error('the backup file readers were closed'));
    this.pending.clear();
    await Promise.all(this.readers.map((r) => r.probe?.collect()));
    await Promise.all(this.readers.map((r) => r.worker.terminate()));
  }

  private settle(reader: Reader, reply: BundleReadReply): void {
    reader.busy--;
    const p = this.pending.get(reply.id);
    this.pending.delete(reply.id);
    if (this.pending.size === 0) for (const r of this.readers) r.worker.unref();
    if (!p) return;
    if (reply.results) {
      p.resolve({ results: reply.results, messages: (reply.messages ?? []).map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)) });
    } else {
      p.reject(Object.assign(new Error(reply.error), { code: reply.code }));
    }
  }

  private fail(reader: Reader, err: Error): void {
    for (const [id, p] of this.pending) {
      if (p.reader !== reader) continue;
      this.pending.delete(id);
      p.reject(err);
    }
  }
}
