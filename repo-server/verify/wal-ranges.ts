/**
 * Which WAL segments are there and which are not: contiguous runs, the holes between them, and
 * whether a hole is the kind expire leaves on purpose. Pure functions over segment names.
 */
import { parseSegmentName, segmentName, segmentsBetween, segmentsPerLogId } from '../../shared/wal';

export interface SegmentRange {
  start: string;
  stop: string;
}

export interface Gap extends SegmentRange {
  /** expire removed it: it lies exactly between one kept backup's archive-stop and another's archive-start */
  expired: boolean;
}

export interface BackupWal {
  archiveStart: string;
  archiveStop: string;
}

function segmentNo(name: string, perLog: number): number {
  const id = parseSegmentName(name);
  return id.log * perLog + id.seg;
}

function nameOf(timeline: number, no: number, perLog: number): string {
  return segmentName(timeline, Math.floor(no / perLog), no % perLog);
}

/** Runs of consecutive segments, per timeline; `segments` need not be sorted or unique. */
export function contiguousRanges(segments: string[], walSegmentSize: number): SegmentRange[] {
  const perLog = segmentsPerLogId(walSegmentSize);
  const sorted = [...new Set(segments)].sort();
  const ranges: SegmentRange[] = [];
  let current: SegmentRange | undefined;
  for (const name of sorted) {
    const follows = current !== undefined && current.stop.slice(0, 8) === name.slice(0, 8)
      && segmentNo(name, perLog) === segmentNo(current.stop, perLog) + 1;
    if (follows) {
      current!.stop = name;
    } else {
      current = { start: name, stop: name };
      ranges.push(current);
    }
  }
  return ranges;
}

/**
 * The holes between runs on the same timeline. (A new timeline starts partway through, so the
 * step from one timeline to the next is not a hole.)
 */
export function findGaps(ranges: SegmentRange[], walSegmentSize: number, backups: BackupWal[]): Gap[] {
  const perLog = segmentsPerLogId(walSegmentSize);
  const stops = new Set(backups.map((b) => b.archiveStop));
  const starts = new Set(backups.map((b) => b.archiveStart));
  const gaps: Gap[] = [];
  for (let i = 1; i < ranges.length; i++) {
    const before = ranges[i - 1];
    const after = ranges[i];
    const timeline = parseSegmentName(before.stop).timeline;
    if (timeline !== parseSegmentName(after.start).timeline) continue;
    gaps.push({
      start: nameOf(timeline, segmentNo(before.stop, perLog) + 1, perLog),
      stop: nameOf(timeline, segmentNo(after.start, perLog) - 1, perLog),
      expired: stops.has(before.stop) && starts.has(after.start),
    });
  }
  return gaps;
}

/** The segments of archive-start..archive-stop that are not in `present`, as ranges. */
export function missingSegments(b: BackupWal, present: ReadonlySet<string>, walSegmentSize: number): SegmentRange[] {
  const missing = segmentsBetween(b.archiveStart, b.archiveStop, walSegmentSize).filter((s) => !present.has(s));
  return contiguousRanges(missing, walSegmentSize);
}

export function formatRange(r: SegmentRange): string {
  return r.start === r.stop ? r.start : `${r.start}-${r.stop}`;
}
