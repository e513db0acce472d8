import type { Progress } from './generated/pgrepo/v1/Progress';

/** Counts work done and reports it at most once a second (and once at the end). */
export class ProgressReporter {
  private bytesDone = 0;
  private filesDone = 0;
  private lastSent = 0;

  constructor(private readonly bytesTotal: number, private readonly filesTotal: number, private readonly send: (p: Progress) => void) {}

  add(bytes: number, files = 1): void {
    this.bytesDone += bytes;
    this.filesDone += files;
    const now = Date.now();
    if (now - this.lastSent >= 1000) this.flush(now);
  }

  flush(now = Date.now()): void {
    this.lastSent = now;
    this.send({ bytes_done: this.bytesDone, bytes_total: Math.max(this.bytesTotal, this.bytesDone), files_done: this.filesDone, files_total: this.filesTotal });
  }
}

/** Runs `work` over the items with at most `limit` at a time; the first failure stops new work and is thrown. */
export async function forEachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>, stopped: () => boolean = () => false,
  release = false): Promise<void> {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined && next < items.length && !stopped()) {
      const item = items[next];
      // release: the array forgets each item once taken, so what it holds is freed when its work is done
      if (release) items[next] = undefined as T;
      next++;
      try {
        await work(item);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure;
}
