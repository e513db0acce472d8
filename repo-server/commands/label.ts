import { UserError } from '../../shared/errors';

const pad = (n: number) => String(n).padStart(2, '0');

export function formatLabelTime(d: Date): string {
  return `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;
}

/**
 * A full backup's label, `YYYYMMDD-HHMMSSF`. Labels are the backups' total order, so a new one
 * must sort after every existing one; pgBackRest moves on a second, then gives up (clock skew).
 */
export function newFullLabel(existing: string[], now: Date): string {
  const latest = existing.reduce((max, l) => (l > max ? l : max), '');
  for (let shift = 0; shift < 2; shift++) {
    const label = `${formatLabelTime(new Date(now.getTime() + shift * 1000))}F`;
    if (label.slice(0, 15) > latest.slice(0, 15)) return label;
  }
  throw new UserError(`new backup label ${formatLabelTime(now)}F does not sort after the latest backup ${latest}: has the clock or the time zone changed?`);
}
