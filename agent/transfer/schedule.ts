/**
 * The order and concurrency of a backup's or restore's files. Largest first, as pgBackRest does,
 * so a big relation file does not start last and leave every other core idle at the end. More
 * files are in flight than there are workers: a small file spends most of its time in round
 * trips and the server's fsyncs, not in the codec, and its chunks fill gaps between a big file's.
 */
export function largestFirst<T extends { size: number }>(files: readonly T[]): T[] {
  return [...files].sort((a, b) => b.size - a.size);
}

export function filesInFlight(processMax: number): number {
  return Math.max(8, processMax * 4);
}

const MiB = 1024 * 1024;

/**
 * What one file in flight may hold in the data path at once: a frame being read, frames
 * compressed and queued for its upload (transfer/upload.ts), what grpc-js has serialized. A
 * larger file holds no more (it streams), a bundle about its read-ahead; a small file its size.
 */
export function bytesInFlight(bytes: number, bundle: boolean): number {
  return Math.min(bytes, bundle ? 2 * MiB : 4 * MiB);
}

/**
 * The bytes the files in flight may hold together. The codec threads' parallelism comes from
 * the chunks of the files in flight (CodecPool.chunks), so process-max + 2 large files keep them
 * busy; the count (filesInFlight) is for small files, whose time is round trips. Each large file
 * in flight beyond that was only more frames queued: 3-4 MiB each, 16 at process-max 4.
 */
export function inFlightBudget(processMax: number): number {
  return (Math.max(1, processMax) + 2) * 4 * MiB;
}

/**
 * A budget of bytes shared by work in flight: take(n) waits until n more fit (in order of
 * asking), give(n) returns them. Work larger than the whole budget runs when nothing else is
 * in flight, so it never waits forever.
 */
export class ByteBudget {
  private used = 0;
  private readonly waiting: Array<{ n: number; go: () => void }> = [];

  constructor(readonly budget: number) {}

  get inUse(): number {
    return this.used;
  }

  take(n: number): Promise<void> {
    if (this.waiting.length === 0 && this.fits(n)) {
      this.used += n;
      return Promise.resolve();
    }
    return new Promise((go) => this.waiting.push({ n, go }));
  }

  give(n: number): void {
    this.used -= n;
    // first come, first served: a large waiter is not overtaken by smaller ones behind it
    while (this.waiting.length > 0 && this.fits(this.waiting[0].n)) {
      const next = this.waiting.shift()!;
      this.used += next.n;
      next.go();
    }
  }

  private fits(n: number): boolean {
    return this.used === 0 || this.used + n <= this.budget;
  }
}


/** One unit of a backup's transfer: a file of its own, or small files that travel and are stored together. */
export type TransferItem<T> = { kind: 'file'; file: T } | { kind: 'bundle'; files: T[] };

/**
 * Files smaller than `bundleLimit` (and that `mayBundle`) go into bundles of about `bundleSize`
 * original bytes (each at least one file), in the given order; the rest go alone. bundleLimit 0:
 * no bundles. Files of different `groupOf` (tablespaces) never share a bundle.
 */
export function bundled<T extends { size: number }>(files: readonly T[], bundleLimit: number, bundleSize: number,
  mayBundle: (file: T) => boolean = () => true, groupOf: (file: T) => string = () => ''): TransferItem<T>[] {
  const items: TransferItem<T>[] = [];
  const open = new Map<string, { files: T[]; bytes: number }>();
  for (const file of files) {
    if (file.size >= bundleLimit || bundleLimit <= 0 || !mayBundle(file)) {
      items.push({ kind: 'file', file });
      continue;
    }
    const group = groupOf(file);
    let bundle = open.get(group);
    if (bundle && bundle.bytes + file.size > bundleSize) {
      items.push({ kind: 'bundle', files: bundle.files });
      bundle = undefined;
    }
    if (!bundle) {
      bundle = { files: [], bytes: 0 };
      open.set(group, bundle);
    }
    bundle.files.push(file);
    bundle.bytes += file.size;
  }
  for (const bundle of open.values()) items.push({ kind: 'bundle', files: bundle.files });
  return items;
}

/**
 * pgBackRest's queue per tablespace: each tablespace's items keep their order (largest first),
 * and the tablespaces take turns, so the files in flight at once are spread over their disks
 * instead of all coming from the one that holds the largest files.
 */
export function acrossTablespaces<T>(items: readonly T[], tablespaceOf: (item: T) => string): T[] {
  const queues = new Map<string, T[]>();
  for (const item of items) {
    const key = tablespaceOf(item);
    const queue = queues.get(key);
    if (queue) queue.push(item);
    else queues.set(key, [item]);
  }
  if (queues.size <= 1) return [...items];
  const lists = [...queues.values()];
  const out: T[] = [];
  for (let i = 0; out.length < items.length; i++) for (const list of lists) if (i < list.length) out.push(list[i]);
  return out;
}

/** The tablespace a backup file is in: its pg_tblspc/OID, or pg_data. */
export function tablespaceOfFile(name: string): string {
  const m = /^pg_tblspc\/(\d+)\//.exec(name);
  return m ? m[1] : 'pg_data';
}
