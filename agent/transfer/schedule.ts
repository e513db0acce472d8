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


/** One unit of a backup's transfer: a file of its own, or small files that travel and are stored together. */
export type TransferItem<T> = { kind: 'file'; file: T } | { kind: 'bundle'; files: T[] };

/**
 * Files smaller than `bundleLimit` (and that `mayBundle`) go into bundles of about `bundleSize`
 * original bytes (each at least one file), in the given order; the rest go alone. bundleLimit 0: no bundles.
 */
export function bundled<T extends { size: number }>(files: readonly T[], bundleLimit: number, bundleSize: number,
  mayBundle: (file: T) => boolean = () => true): TransferItem<T>[] {
  const items: TransferItem<T>[] = [];
  let open: T[] = [];
  let openBytes = 0;
  for (const file of files) {
    if (file.size >= bundleLimit || bundleLimit <= 0 || !mayBundle(file)) {
      items.push({ kind: 'file', file });
      continue;
    }
    if (open.length > 0 && openBytes + file.size > bundleSize) {
      items.push({ kind: 'bundle', files: open });
      open = [];
      openBytes = 0;
    }
    open.push(file);
    openBytes += file.size;
  }
  if (open.length > 0) items.push({ kind: 'bundle', files: open });
  return items;
}
