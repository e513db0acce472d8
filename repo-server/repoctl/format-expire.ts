import type { ExpireReport__Output } from '../../shared/generated/pgrepo/v1/ExpireReport';

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** One line summing an expire up. */
export function summarizeExpire(r: ExpireReport__Output): string {
  const labels = r.backups.flatMap((b) => b.set);
  const verb = r.dry_run ? 'would expire' : 'expired';
  const backups = labels.length ? `${plural(labels.length, 'backup')} (${labels.join(', ')})` : 'no backups';
  const other = r.removed.length ? `, and remove ${r.removed.join(', ')}` : '';
  return `${verb} ${backups} and ${plural(Number(r.wal_files), 'WAL file')}${other}`;
}

/** What repoctl expire --output json prints: pgBackRest-style keys. */
export function expireJson(r: ExpireReport__Output): unknown {
  return {
    'dry-run': r.dry_run,
    backup: r.backups.map((b) => ({ label: b.label, type: b.type, reason: b.reason, set: b.set })),
    archive: r.wal.map((w) => ({ id: w.archive_id, start: w.start, stop: w.stop, files: w.files, reason: w.reason })),
    'wal-files': Number(r.wal_files),
    removed: r.removed,
    warnings: r.warnings,
  };
}
