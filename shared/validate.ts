import * as path from 'node:path';

/**
 * Everything a peer sends (stanza names, labels, manifest paths, WAL names) ends up in a filesystem path on the
 * repository. These guards run before any such value is used, so a compromised or buggy agent cannot write outside
 * its stanza. Each validator returns the value it accepted so call sites can validate and use in one expression.
 */
export class ValidationError extends Error {
  override readonly name = 'ValidationError';
}

const STANZA_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const FULL_LABEL_RE = /^(\d{8})-(\d{6})F$/;
const DEPENDENT_LABEL_RE = /^(\d{8})-(\d{6})F_(\d{8})-(\d{6})[DI]$/;
const WAL_SEGMENT_RE = /^[0-9A-F]{24}(\.partial)?$/;
const WAL_HISTORY_RE = /^[0-9A-F]{8}\.history$/;
const WAL_BACKUP_HISTORY_RE = /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/;
const TABLESPACE_OID_RE = /^[1-9][0-9]{0,9}$/;
// Control characters would corrupt the line-oriented manifest/info formats and log lines; PostgreSQL never creates them.
const CONTROL_CHAR_RE = /[\u0000-\u001f\u007f]/;

// PATH_MAX on Linux, counted in bytes because that is what the kernel limits.
export const MAX_MANIFEST_PATH_BYTES = 4096;
const MAX_OID = 0xffffffff;

function describe(value: unknown): string {
  if (typeof value !== 'string') return `a ${value === null ? 'null' : typeof value}`;
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value);
}

function requireString(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new ValidationError(`${what} must be a string, got ${describe(value)}`);
  return value;
}

export function validateStanzaName(value: unknown): string {
  const s = requireString(value, 'stanza name');
  if (!STANZA_RE.test(s)) {
    throw new ValidationError(
      `invalid stanza name ${describe(s)}: allowed are 1-64 characters of A-Z a-z 0-9 _ . - not starting with '.' or '-'`,
    );
  }
  return s;
}

// Only the field ranges are checked, not the calendar (Feb 31 passes): labels are identifiers, the range check just
// rejects strings that were obviously never produced by a clock.
function isPlausibleTimestamp(date: string, time: string): boolean {
  const month = Number(date.slice(4, 6));
  const day = Number(date.slice(6, 8));
  const hour = Number(time.slice(0, 2));
  const minute = Number(time.slice(2, 4));
  const second = Number(time.slice(4, 6));
  return month >= 1 && month <= 12 && day >= 1 && day <= 31 && hour <= 23 && minute <= 59 && second <= 59;
}

export function validateBackupLabel(value: unknown): string {
  const s = requireString(value, 'backup label');
  const m = FULL_LABEL_RE.exec(s) ?? DEPENDENT_LABEL_RE.exec(s);
  const ok =
    m !== null &&
    isPlausibleTimestamp(m[1]!, m[2]!) &&
    (m[3] === undefined || isPlausibleTimestamp(m[3], m[4]!));
  if (!ok) {
    throw new ValidationError(
      `invalid backup label ${describe(s)}: expected YYYYMMDD-HHMMSSF (full) or YYYYMMDD-HHMMSSF_YYYYMMDD-HHMMSSD|I (diff/incr)`,
    );
  }
  return s;
}

function manifestPathError(s: string, why: string): ValidationError {
  return new ValidationError(
    `invalid manifest path ${describe(s)}: ${why}; expected a relative path under pg_data or pg_tblspc/<oid> ` +
      `with no empty, '.' or '..' components`,
  );
}

function checkManifestRoot(s: string, parts: string[]): void {
  if (parts[0] === 'pg_data') return;
  if (parts[0] === 'pg_tblspc' && parts.length >= 2) {
    const oid = parts[1]!;
    if (TABLESPACE_OID_RE.test(oid) && Number(oid) <= MAX_OID) return;
    throw manifestPathError(s, `'${oid}' is not a tablespace oid`);
  }
  throw manifestPathError(s, 'it must start with pg_data or pg_tblspc/<oid>');
}

/**
 * The accepted string is already in normal form (the rules leave nothing for path.normalize to change), so it is
 * returned as is and can be used directly as a manifest key. Backslash is an ordinary filename character on the
 * POSIX systems we store on, so it needs no special treatment.
 */
export function validateManifestPath(value: unknown): string {
  const s = requireString(value, 'manifest path');
  if (s.length === 0) throw manifestPathError(s, 'it is empty');
  if (s.includes('\0')) throw manifestPathError(s, 'it contains a NUL byte');
  if (CONTROL_CHAR_RE.test(s)) throw manifestPathError(s, 'it contains a control character');
  if (Buffer.byteLength(s, 'utf8') > MAX_MANIFEST_PATH_BYTES) {
    throw manifestPathError(s, `it is longer than ${MAX_MANIFEST_PATH_BYTES} bytes`);
  }
  if (s.startsWith('/')) throw manifestPathError(s, 'it is absolute');
  const parts = s.split('/');
  for (const part of parts) {
    if (part === '') throw manifestPathError(s, 'it has an empty component');
    if (part === '.' || part === '..') throw manifestPathError(s, `it has a '${part}' component`);
  }
  checkManifestRoot(s, parts);
  return s;
}

export function validateWalFileName(value: unknown): string {
  const s = requireString(value, 'WAL file name');
  if (WAL_SEGMENT_RE.test(s) || WAL_HISTORY_RE.test(s) || WAL_BACKUP_HISTORY_RE.test(s)) return s;
  throw new ValidationError(
    `invalid WAL file name ${describe(s)}: expected a 24-hex-digit segment (optionally .partial), ` +
      `<8 hex>.history or <24 hex>.<8 hex>.backup, upper-case hex`,
  );
}

/**
 * Defence in depth behind validateManifestPath: even if a caller forgets to validate, the joined path cannot leave
 * root lexically. It does not resolve symlinks; the repository must not contain links planted by a peer.
 */
export function safeJoin(root: string, rel: string): string {
  if (root.includes('\0') || rel.includes('\0')) throw new ValidationError('path contains a NUL byte');
  const base = path.resolve(root);
  const joined = path.resolve(base, rel);
  const inside = path.relative(base, joined);
  if (inside === '' || (inside !== '..' && !inside.startsWith(`..${path.sep}`) && !path.isAbsolute(inside))) {
    return joined;
  }
  throw new ValidationError(`path ${describe(rel)} escapes ${describe(base)}`);
}
