/**
 * WAL file naming and header arithmetic. Pure functions: no I/O, so both the agent and the repository server can
 * use them and they can be tested exhaustively.
 *
 * A segment name is TTTTTTTTLLLLLLLLSSSSSSSS (timeline, "log" = high 32 bits of the LSN, segment within that log).
 * With walSegmentSize bytes per segment there are 2^32 / walSegmentSize segments per log id.
 */

export interface SegmentId {
  timeline: number;
  log: number;
  seg: number;
}

export interface WalLongHeader {
  magic: number;
  info: number;
  timeline: number;
  pageAddr: bigint;
  /** uint64 as a decimal string: it does not fit a JS number and is compared as text with pg_controldata output. */
  systemId: string;
  segmentSize: number;
  blockSize: number;
}

const SEGMENT_RE = /^[0-9A-F]{24}$/;
const PARTIAL_RE = /^[0-9A-F]{24}\.partial$/;
const HISTORY_RE = /^[0-9A-F]{8}\.history$/;
const BACKUP_HISTORY_RE = /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/;
const LSN_RE = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

const UINT32_MAX = 0xffffffff;
const UINT64_MAX = (1n << 64n) - 1n;
const LOG_ID_SPAN = 0x100000000; // bytes of WAL addressed by one log id
// initdb --wal-segsize accepts powers of two from 1 MiB to 1 GiB.
const MIN_SEGMENT_SIZE = 1 << 20;
const MAX_SEGMENT_SIZE = 1 << 30;

export const XLP_LONG_HEADER = 0x0002;
export const WAL_LONG_HEADER_SIZE = 40;

export function isSegmentName(name: string): boolean {
  return SEGMENT_RE.test(name);
}

export function isPartialName(name: string): boolean {
  return PARTIAL_RE.test(name);
}

export function isHistoryName(name: string): boolean {
  return HISTORY_RE.test(name);
}

export function isBackupHistoryName(name: string): boolean {
  return BACKUP_HISTORY_RE.test(name);
}

function assertUint32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > UINT32_MAX) {
    throw new RangeError(`${what} must be an integer in 0..${UINT32_MAX}, got ${value}`);
  }
}

function hex8(value: number): string {
  return value.toString(16).toUpperCase().padStart(8, '0');
}

export function segmentsPerLogId(walSegmentSize: number): number {
  const isPowerOfTwo = Number.isInteger(walSegmentSize) && (walSegmentSize & (walSegmentSize - 1)) === 0;
  if (!isPowerOfTwo || walSegmentSize < MIN_SEGMENT_SIZE || walSegmentSize > MAX_SEGMENT_SIZE) {
    throw new RangeError(`WAL segment size must be a power of two between 1 MiB and 1 GiB, got ${walSegmentSize}`);
  }
  return LOG_ID_SPAN / walSegmentSize;
}

export function parseSegmentName(name: string): SegmentId {
  if (!isSegmentName(name)) {
    throw new Error(`not a WAL segment name: ${JSON.stringify(name)} (expected 24 upper-case hex digits)`);
  }
  return {
    timeline: parseInt(name.slice(0, 8), 16),
    log: parseInt(name.slice(8, 16), 16),
    seg: parseInt(name.slice(16, 24), 16),
  };
}

export function segmentName(timeline: number, log: number, seg: number): string {
  assertUint32(timeline, 'timeline');
  assertUint32(log, 'log id');
  assertUint32(seg, 'segment');
  return hex8(timeline) + hex8(log) + hex8(seg);
}

function segmentNumber(id: SegmentId, perLog: number, name: string): number {
  if (id.seg >= perLog) {
    throw new RangeError(`segment ${name} is impossible with ${perLog} segments per log id (wrong segment size?)`);
  }
  // log < 2^32 and perLog <= 4096, so the product stays below 2^53.
  return id.log * perLog + id.seg;
}

/**
 * Every segment from start to stop inclusive, i.e. the WAL a backup needs to be consistent.
 *
 * The timelines differ only when the server being backed up (a standby) switched timeline while the backup ran,
 * because its upstream was promoted. pg_backup_stop reports the stop segment on the new timeline and recovery
 * follows that timeline, so the range is named on the stop timeline. Caveat for callers probing the archive:
 * segments that lie wholly before the switch point exist only under the old timeline's name (the new timeline's
 * first file is the segment holding the switch point); the timeline history file gives that point.
 */
export function segmentsBetween(start: string, stop: string, walSegmentSize: number): string[] {
  const perLog = segmentsPerLogId(walSegmentSize);
  const from = parseSegmentName(start);
  const to = parseSegmentName(stop);
  const first = segmentNumber(from, perLog, start);
  const last = segmentNumber(to, perLog, stop);
  if (last < first) throw new RangeError(`stop segment ${stop} is before start segment ${start}`);
  const names: string[] = [];
  for (let n = first; n <= last; n++) {
    names.push(segmentName(to.timeline, Math.floor(n / perLog), n % perLog));
  }
  return names;
}

/** A segment's position within its timeline (log id × segments per log id + segment), for counting and gaps. */
export function segmentOrdinal(name: string, walSegmentSize: number): number {
  return segmentNumber(parseSegmentName(name), segmentsPerLogId(walSegmentSize), name);
}

/** The segment at `ordinal` on `timeline` (the inverse of segmentOrdinal). */
export function segmentAt(timeline: number, ordinal: number, walSegmentSize: number): string {
  const perLog = segmentsPerLogId(walSegmentSize);
  return segmentName(timeline, Math.floor(ordinal / perLog), ordinal % perLog);
}

/** The segment after `name` on the same timeline (recovery reads them in this order). */
export function nextSegmentName(name: string, walSegmentSize: number): string {
  return segmentAt(parseSegmentName(name).timeline, segmentOrdinal(name, walSegmentSize) + 1, walSegmentSize);
}

export function historyFileName(timeline: number): string {
  assertUint32(timeline, 'timeline');
  return `${hex8(timeline)}.history`;
}

export function parseLsn(lsn: string): bigint {
  const m = LSN_RE.exec(lsn);
  if (m === null) throw new Error(`invalid LSN ${JSON.stringify(lsn)} (expected hex 'X/X' such as '0/3000028')`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

// Upper-case without padding, as PostgreSQL prints pg_lsn, so values round-trip with what the server reports.
export function formatLsn(lsn: bigint): string {
  if (lsn < 0n || lsn > UINT64_MAX) throw new RangeError(`LSN out of range: ${lsn}`);
  const hi = lsn >> 32n;
  const lo = lsn & 0xffffffffn;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/**
 * Segment containing the byte at lsn (XLByteToSeg, as pgBackRest does). Note that pg_walfile_name() uses
 * XLByteToPrevSeg, so for an LSN exactly on a segment boundary it names the previous segment.
 */
export function lsnToSegmentName(lsn: string, timeline: number, walSegmentSize: number): string {
  const perLog = BigInt(segmentsPerLogId(walSegmentSize));
  const segNo = parseLsn(lsn) / BigInt(walSegmentSize);
  return segmentName(timeline, Number(segNo / perLog), Number(segNo % perLog));
}

/**
 * pgBackRest stores every file whose name starts with a 24-hex segment name (segments, .partial, .backup) in a
 * sub-directory named after the first 16 characters, which keeps directories to at most one log id's worth.
 */
export function archiveSubdir(name: string): string {
  if (!/^[0-9A-F]{24}/.test(name)) {
    throw new Error(`${JSON.stringify(name)} does not start with a WAL segment name, so it has no archive sub-directory`);
  }
  return name.slice(0, 16);
}

export function readWalLongHeader(buf: Buffer): WalLongHeader {
  if (buf.length < WAL_LONG_HEADER_SIZE) {
    throw new Error(`WAL header needs ${WAL_LONG_HEADER_SIZE} bytes, got ${buf.length}: file truncated or not WAL`);
  }
  const info = buf.readUInt16LE(2);
  if ((info & XLP_LONG_HEADER) === 0) {
    throw new Error(
      `WAL page info 0x${info.toString(16)} lacks XLP_LONG_HEADER: not the first page of a segment, or not WAL`,
    );
  }
  return {
    magic: buf.readUInt16LE(0),
    info,
    timeline: buf.readUInt32LE(4),
    pageAddr: buf.readBigUInt64LE(8),
    systemId: buf.readBigUInt64LE(24).toString(),
    segmentSize: buf.readUInt32LE(32),
    blockSize: buf.readUInt32LE(36),
  };
}

// XLOG_PAGE_MAGIC changes whenever the WAL format changes, which in practice is once per major version.
const WAL_MAGIC_BY_VERSION: ReadonlyMap<string, number> = new Map([
  ['12', 0xd101],
  ['13', 0xd106],
  ['14', 0xd10d],
  ['15', 0xd110],
  ['16', 0xd113],
  ['17', 0xd116],
]);

export function walMagicToVersion(magic: number): string | undefined {
  for (const [version, m] of WAL_MAGIC_BY_VERSION) if (m === magic) return version;
  return undefined;
}

export function versionToWalMagic(version: string): number | undefined {
  return WAL_MAGIC_BY_VERSION.get(version);
}
