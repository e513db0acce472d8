import fs from 'node:fs';
import { FRAMED_TYPES } from '../../shared/stream/frame-codec';
import type { FetchFile, RestoreFetchPool } from './fetch-pool';
import type { ManifestFile__Output } from '../../shared/generated/pgrepo/v1/ManifestFile';

/*
 * One large file restored by several workers at once: otherwise a file that is most of a
 * cluster is fetched, decoded and written on one core while the others sit idle. The server cuts
 * the stored file into runs of whole frames (frames decode independently) and says where each
 * run's original bytes start; each worker writes its run there. The file's SHA-1 is over its
 * bytes in order, which no part can give, so it is taken afterwards from the written file.
 */

/** Original bytes a part should have at least: below this the parts' round trips and the second read outweigh what they spread. */
export const PART_MIN = 64 * 1024 * 1024;

/** How many parts to restore `file` in with `workers` workers: 1 = whole, the ordinary way. */
export function partsFor(file: Pick<ManifestFile__Output, 'size' | 'compress_type'>, workers: number, partMin = PART_MIN): number {
  if (workers < 2 || !(FRAMED_TYPES as readonly string[]).includes(file.compress_type)) return 1;
  return Math.max(1, Math.min(workers, Math.floor(file.size / (partMin || PART_MIN))));
}

/**
 * Restores `f` in `parts` parts on the pool's workers, then checks and finishes it. However it
 * fails, the file is removed: a file with parts missing must not stay behind looking restored.
 * Rejects with UnframedFiles when the server cannot cut the file (then fetch it whole).
 */
export async function restoreInParts(pool: RestoreFetchPool, stanza: string, label: string, f: FetchFile, parts: number): Promise<void> {
  fs.closeSync(fs.openSync(f.dest, 'w', parseInt(f.file.mode, 8)));
  let complete = false;
  try {
    // every part settles before the file is removed or fetched again another way
    const settled = await Promise.allSettled(Array.from({ length: parts }, (_, index) => pool.run({ stanza, label, batch: false, files: [f], part: { index, parts } })));
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const received = settled.map((s) => (s as PromiseFulfilledResult<number>).value);
    await pool.run({ stanza, label, batch: false, files: [f], verify: { stored: received.reduce((a, b) => a + b, 0) } });
    complete = true;
  } finally {
    if (!complete) fs.rmSync(f.dest, { force: true });
  }
}
