import type { VerifyReport__Output } from '../../shared/generated/pgrepo/v1/VerifyReport';
import type { VerifyProblem__Output } from '../../shared/generated/pgrepo/v1/VerifyProblem';
import type { WalRange__Output } from '../../shared/generated/pgrepo/v1/WalRange';
import { formatBytes } from './units';

const range = (r: WalRange__Output) => (r.start === r.stop ? r.start : `${r.start}-${r.stop}`);
const ranges = (rs: WalRange__Output[]) => rs.map(range).join(', ');
const problemLine = (p: VerifyProblem__Output) => `${p.kind}: ${p.file}: ${p.detail}`;

/** Throughput over the stored bytes (what the disks delivered) and over the decompressed bytes (what was checksummed). */
export function verifyRate(r: VerifyReport__Output, seconds: number): string {
  const rate = (bytes: number) => formatBytes(seconds > 0 ? bytes / seconds : 0);
  const stored = Number(r.bytes_read);
  const original = Number(r.bytes_checked);
  return `read ${r.files_checked} files, ${formatBytes(stored)} stored, ${formatBytes(original)} decompressed, in ${seconds.toFixed(1)}s: ${rate(stored)}/s stored, ${rate(original)}/s decompressed`;
}

export function verifyText(stanza: string, r: VerifyReport__Output, seconds: number): string {
  const out: string[] = [`stanza ${stanza}: ${r.ok ? 'verify ok' : 'verify FOUND PROBLEMS'}`];
  for (const p of r.problems) out.push(`    ${problemLine(p)}`);
  for (const a of r.archives) {
    out.push(`    archive ${a.archive_id}: ${a.files} WAL files, ${a.valid} valid${a.ranges.length ? `; present ${ranges(a.ranges)}` : ''}`);
    for (const g of a.gaps) out.push(`        missing WAL ${range(g)} (a hole in the archive: point-in-time recovery cannot cross it)`);
    for (const g of a.dropped) out.push(`        missing WAL ${range(g)} (dropped by the agent for archive-push-queue-max: point-in-time recovery cannot cross it)`);
    if (a.expired_gaps.length) out.push(`        expired WAL ${ranges(a.expired_gaps)} (removed by retention between kept backups: expected)`);
    for (const p of a.problems) out.push(`        ${problemLine(p)}`);
  }
  for (const b of r.backups) {
    const wal = b.archive_start ? `, WAL ${b.archive_start}-${b.archive_stop}` : '';
    out.push(`    backup ${b.label}: ${b.status} (${b.valid}/${b.files} files valid${wal})`);
    for (const w of b.wal_missing) out.push(`        missing WAL ${range(w)}, which the backup needs to be consistent`);
    for (const p of b.problems) out.push(`        ${problemLine(p)}`);
  }
  out.push(`    ${verifyRate(r, seconds)}`);
  return out.join('\n');
}
