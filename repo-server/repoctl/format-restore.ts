import type { OperationResult__Output } from '../../shared/generated/pgrepo/v1/OperationResult';
import { formatBytes } from './units';

/** The text summary of a finished restore: what was fetched, kept, zeroed and removed, and what recovery will do. */
export function describeRestore(r: OperationResult__Output): string {
  const s = r.restore;
  const lines = [`restore of backup ${r.label} complete: ${r.files} files, ${formatBytes(Number(r.bytes))} in ${r.pg_path} on ${r.agent} in ${r.seconds.toFixed(1)}s`];
  if (s) {
    const parts = [`${s.files_fetched} fetched (${formatBytes(Number(s.bytes_fetched))})`];
    if (s.files_checked > 0 || s.mode.startsWith('delta')) parts.push(`${s.files_checked} checked, ${s.files_matched} matched (${formatBytes(Number(s.bytes_matched))})`);
    if (s.files_zeroed > 0) parts.push(`${s.files_zeroed} zeroed`);
    if (s.removed > 0 || s.mode !== 'empty') parts.push(`${s.removed} removed`);
    lines.push(`  files: ${parts.join(', ')} [${s.mode === 'empty' ? 'into an empty directory' : s.mode}]`);
    lines.push(`  recovery: ${s.recovery}`);
  }
  lines.push('start PostgreSQL there to recover');
  return lines.join('\n');
}
