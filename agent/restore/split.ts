import fs from 'node:fs';
import { UserError } from '../../shared/errors';
import { FRAMED_TYPES } from '../../shared/stream/frame-codec';
import type { FetchFile, FetchResult, PartWritten, RestoreFetchPool } from './fetch-pool';
import type { ManifestFile__Output } from '../../shared/generated/pgrepo/v1/ManifestFile';

/*
 * One large file restored by several workers at once: otherwise a file that is most of a
 * cluster is fetched, decoded and written on one core while the others sit idle. The server cuts
 * the stored file into runs of whole frames (frames decode independently) and says where each
 * run's original bytes start; each worker writes its run there. The file's SHA-1 is over its
 * bytes in order: part 0's worker takes it as part 0 arrives, and once every part is written,
 * carries it on over the later parts, read back from the file (their bytes only, not the whole
 * file again), while the other workers go on with other files.
 */

/** Stored forms the server can cut: delimited frames, or the original bytes as they are. */
const SPLITTABLE = [...FRAMED_TYPES, 'none'];

/** Original bytes a part should have at least: below this the parts' round trips and the reading back outweigh what they spread. */
export const PART_MIN = 64 * 1024 * 1024;

/** How many parts to restore `file` in with `workers` workers: 1 = whole, the ordinary way. */
export function partsFor(file: Pick<ManifestFile__Output, 'size' | 'compress_type'>, workers: number, partMin = PART_MIN): number {
  if (workers < 2 || !(SPLITTABLE as readonly string[]).includes(file.compress_type)) return 1;
  return Math.max(1, Math.min(workers, Math.floor(file.size / (partMin || PART_MIN))));
}

/**
 * Whether parts written at `written` (in part order) make a file of `size` bytes: each begins where
 * the one before ended, from byte 0 (empty parts aside), so no byte is written twice or left out
 * and the SHA-1 carried on from part 0's end reads exactly the later parts. Undefined when they
 * do, else what is wrong.
 */
export function partsMisfit(written: readonly PartWritten[], size: number): string | undefined {
  let end = 0;
  for (const [i, w] of written.entries()) {
    if (w.size === 0) continue;
    if (w.offset !== end) return `part ${i + 1} of ${written.length} was written at byte ${w.offset}, where byte ${end} was due`;
    end += w.size;
  }
  return end === size ? undefined : `its parts hold ${end} bytes, where the manifest records ${size}`;
}

/**
 * Restores `f` in `parts` parts on the pool's workers, then checks and finishes it; `written` is
 * called once every part is written, before the SHA-1 is finished. However it fails, the file is
 * removed: a file with parts missing must not stay behind looking restored. Rejects with
 * UnframedFiles when the server cannot cut the file (then fetch it whole).
 */
export async function restoreInParts(pool: RestoreFetchPool, stanza: string, label: string, f: FetchFile, parts: number, written?: () => void): Promise<void> {
  fs.closeSync(fs.openSync(f.dest, 'w', parseInt(f.file.mode, 8)));
  let complete = false;
  try {
    // every part settles before the file is removed or fetched again another way
    const settled = await Promise.allSettled(Array.from({ length: parts }, (_, index) => pool.run({ stanza, label, batch: false, files: [f], part: { index, parts } })));
    const failed = settled.find((s) => s.status === 'rejected');
    if (failed) throw failed.reason;
    const results = settled.map((s) => (s as PromiseFulfilledResult<FetchResult>).value);
    const misfit = partsMisfit(results.map((r) => r.written ?? { offset: 0, size: 0 }), f.file.size);
    if (misfit) throw new UserError(`file ${f.file.name} of backup ${label}: ${misfit}; the repository is damaged`, 'CORRUPT');
    const stored = results.reduce((n, r) => n + r.stored, 0);
    written?.();
    // where part 0 was received: its worker holds the file's SHA-1 so far
    await pool.run({ stanza, label, batch: false, files: [f], verify: { stored } }, results[0].worker);
    complete = true;
  } finally {
    if (!complete) fs.rmSync(f.dest, { force: true });
  }
}
