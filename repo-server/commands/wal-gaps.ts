import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDecompressor } from '../../shared/stream/compress';
import { isSegmentName, readWalLongHeader, segmentOrdinal, WAL_LONG_HEADER_SIZE } from '../../shared/wal';
import type { ServerContext } from '../context';
import { archiveIdDirKey, parseWalFileName } from '../repo/layout';
import { contiguousRanges, findGaps, type BackupWal, type SegmentRange } from '../verify/wal-ranges';

/** The whole segments of one archive id, sorted, and one stored file to learn the segment size from. */
export interface ArchivedSegments {
  names: string[];
  sample?: { key: string; compressType: string };
}

export async function listArchivedSegments(ctx: ServerContext, stanza: string, archiveId: string): Promise<ArchivedSegments> {
  const dirKey = archiveIdDirKey(stanza, archiveId);
  const names: string[] = [];
  let sample: ArchivedSegments['sample'];
  for (const dir of (await ctx.storage.list(dirKey)).filter((d) => /^[0-9A-F]{16}$/.test(d))) {
    for (const file of await ctx.storage.list(`${dirKey}/${dir}`)) {
      const parsed = parseWalFileName(file);
      if (!parsed || !isSegmentName(parsed.walName)) continue;
      names.push(parsed.walName);
      sample ??= { key: `${dirKey}/${dir}/${file}`, compressType: parsed.compressType };
    }
  }
  return { names: names.sort(), sample };
}

const segmentSizes = new Map<string, number>();

/** WAL segment size from the long page header of an archived segment (decompressing only its start). */
export async function archivedSegmentSize(ctx: ServerContext, sample: { key: string; compressType: string }): Promise<number> {
  const cached = segmentSizes.get(sample.key);
  if (cached) return cached;
  const chunks: Buffer[] = [];
  let have = 0;
  const enough = new Error('enough');
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk);
      have += chunk.length;
      done(have >= WAL_LONG_HEADER_SIZE ? enough : null);
    },
  });
  await pipeline(ctx.storage.openRead(sample.key, 64 * 1024), createDecompressor(sample.compressType), sink).catch((err: unknown) => {
    if (err !== enough) throw err;
  });
  const size = readWalLongHeader(Buffer.concat(chunks)).segmentSize;
  segmentSizes.set(sample.key, size);
  return size;
}

export interface MissingRange {
  first: string;
  last: string;
  count: number;
  /** some of it was dropped by archive-push-queue-max */
  dropped: boolean;
  /** expire removed it on purpose: it lies between one kept backup's archive stop and another's start */
  expired: boolean;
}

const within = (name: string, r: SegmentRange) => name.slice(0, 8) === r.start.slice(0, 8) && name >= r.start && name <= r.stop;

/**
 * Missing WAL within one archive id: the holes between archived segments of a timeline (verify's
 * analysis, which also knows the holes expire leaves on purpose), and dropped segments
 * (archive-push-queue-max) that were never archived, e.g. after the newest archived one.
 */
/** Dropped segments (archive-push-queue-max) that are not in the archive after all. */
export function lostSegments(present: ReadonlySet<string>, dropped: Iterable<string>): string[] {
  return [...dropped].filter((n) => isSegmentName(n) && !present.has(n));
}

export function missingRanges(archived: string[], dropped: Iterable<string>, segmentSize: number, backups: BackupWal[]): MissingRange[] {
  const lost = lostSegments(new Set(archived), dropped);
  const holes = findGaps(contiguousRanges(archived, segmentSize), segmentSize, backups);
  const beyond = contiguousRanges(lost.filter((n) => !holes.some((h) => within(n, h))), segmentSize).map((r) => ({ ...r, expired: false }));
  return [...holes, ...beyond]
    .sort((a, b) => (a.start < b.start ? -1 : 1))
    .map((r) => ({
      first: r.start,
      last: r.stop,
      count: segmentOrdinal(r.stop, segmentSize) - segmentOrdinal(r.start, segmentSize) + 1,
      dropped: lost.some((n) => within(n, r)),
      expired: r.expired && !lost.some((n) => within(n, r)),
    }));
}

/** Position in the WAL stream regardless of timeline (log id + segment), for ordering names of different timelines. */
const position = (name: string) => name.slice(8, 24);

/**
 * What the gaps mean for one backup: the first one (not left by expire) at or after its start,
 * and whether it falls within start..stop, where the backup cannot be made consistent.
 */
export function backupGap(b: BackupWal, ranges: MissingRange[]): { walGap: string; incomplete: boolean } {
  const tl = b.archiveStop.slice(0, 8);
  const hit = ranges.find((r) => !r.expired && r.first.slice(0, 8) === tl && position(r.last) >= position(b.archiveStart));
  if (!hit) return { walGap: '', incomplete: false };
  const first = position(hit.first) < position(b.archiveStart) ? b.archiveStart : hit.first;
  return { walGap: first, incomplete: position(first) <= position(b.archiveStop) };
}
