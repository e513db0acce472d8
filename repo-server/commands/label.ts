import { UserError } from '../../shared/errors';
import type { BackupType } from '../../shared/info/backup-info';

const pad = (n: number) => String(n).padStart(2, '0');

export function formatLabelTime(d: Date): string {
  return `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;
}

const SUFFIX: Record<BackupType, string> = { full: 'F', diff: 'D', incr: 'I' };

/** `YYYYMMDD-HHMMSSF` for a full; `<full label>_YYYYMMDD-HHMMSS{D|I}` for a diff or incr of that full's set. */
export function formatLabel(type: BackupType, prior: string | null, at: Date): string {
  const stamp = `${formatLabelTime(at)}${SUFFIX[type]}`;
  if (type === 'full') return stamp;
  if (!prior) throw new Error(`a ${type} backup needs a prior backup for its label`);
  return `${prior.slice(0, 16)}_${stamp}`;
}

/**
 * A new backup's label. Labels are the backups' total order, so a new one must sort after every
 * existing one (complete or not); like pgBackRest, move on a second once, then give up (clock skew).
 */
export function newBackupLabel(type: BackupType, prior: string | null, existing: string[], now: Date): string {
  const latest = existing.reduce((max, l) => (l > max ? l : max), '');
  for (let shift = 0; shift < 2; shift++) {
    const label = formatLabel(type, prior, new Date(now.getTime() + shift * 1000));
    if (label > latest) return label;
  }
  throw new UserError(`new backup label ${formatLabel(type, prior, now)} does not sort after the latest backup ${latest}: has the clock or the time zone changed?`);
}

export function newFullLabel(existing: string[], now: Date): string {
  return newBackupLabel('full', null, existing, now);
}
