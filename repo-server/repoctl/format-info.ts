import type { StanzaInfo__Output } from '../../shared/generated/pgrepo/v1/StanzaInfo';
import { PGREPO_VERSION } from '../../shared/version';
import { formatBytes, formatDuration } from './units';

// system identifiers exceed 2^53: pgBackRest prints them as bare JSON numbers, so splice the digits in textually
const bigNumber = (digits: string) => (/^\d+$/.test(digits) ? `@@bigint:${digits}@@` : digits);

/** pgBackRest's `info --output=json` shape: an array of stanzas, each backup oldest first. */
export function infoJson(stanzas: StanzaInfo__Output[]): string {
  // expire takes the stanza's backup lock, as in pgBackRest
  const value = stanzas.map((s) => ({
    name: s.name,
    cipher: 'none',
    status: { code: s.status_code, message: s.status_message, lock: { backup: { held: /(backup|expire) running/.test(s.status_message) } } },
    db: s.db.map((d) => ({ id: d.id, 'repo-key': 1, 'system-id': bigNumber(d.system_id), version: d.version })),
    repo: [{ key: 1, cipher: 'none', status: { code: s.status_code, message: s.status_message } }],
    archive: s.archive.map((a) => ({ id: a.id, min: a.min, max: a.max, database: { id: a.db_id, 'repo-key': 1 } })),
    backup: s.backup.map((b) => ({
      label: b.label,
      type: b.type,
      prior: b.prior || null,
      reference: b.reference.length ? b.reference : null,
      timestamp: { start: b.timestamp_start, stop: b.timestamp_stop },
      lsn: { start: b.lsn_start, stop: b.lsn_stop },
      archive: { start: b.archive_start, stop: b.archive_stop },
      backrest: { format: 5, version: `pgrepo ${PGREPO_VERSION}` },
      database: { id: b.db_id, 'repo-key': 1 },
      info: { size: b.size, delta: b.delta, repository: { size: b.repo_size, delta: b.repo_delta } },
      error: b.error,
      // pgrepo's additions: PITR from this backup stops before wal-gap; wal-incomplete = not restorable
      ...(b.wal_gap ? { 'wal-gap': b.wal_gap, 'wal-incomplete': b.wal_incomplete } : {}),
    })),
    agents: s.agents,
    ...(s.wal_gap.length ? { 'archive-gap': s.wal_gap.map((g) => ({ id: g.archive_id, first: g.first, last: g.last, count: g.count, dropped: g.dropped })) } : {}),
    ...(s.wal_dropped ? { 'archive-dropped': { count: s.wal_dropped, last: s.wal_dropped_last } } : {}),
  }));
  return JSON.stringify(value, null, 2).replace(/"@@bigint:(\d+)@@"/g, '$1');
}

const time = (unix: number) => new Date(unix * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '+00');

export function infoText(stanzas: StanzaInfo__Output[]): string {
  if (stanzas.length === 0) return 'No stanzas exist in the repository.\n';
  const out: string[] = [];
  for (const s of stanzas) {
    out.push(`stanza: ${s.name}`, `    status: ${s.status_code === 0 ? 'ok' : `error (${s.status_message})`}`);
    if (s.agents.length) out.push(`    agents attached: ${s.agents.join(', ')}`);
    if (s.wal_dropped) {
      out.push(`    wal dropped by archive-push-queue-max: ${s.wal_dropped} file(s), the latest at ${time(Number(s.wal_dropped_last))}`);
    }
    for (const db of s.db) {
      out.push('', `    db (${db.id === s.db[s.db.length - 1].id ? 'current' : 'prior'}): PostgreSQL ${db.version}, system identifier ${db.system_id}`);
      for (const a of s.archive.filter((x) => x.db_id === db.id)) out.push(`        wal archive min/max (${a.id}): ${a.min}/${a.max}`);
      for (const g of s.wal_gap.filter((x) => x.archive_id === `${db.version}-${db.id}`)) {
        const what = g.count === 1 ? g.first : `${g.first}..${g.last} (${g.count} segments)`;
        out.push(`        wal gap (${g.archive_id}): ${what} missing${g.dropped ? ', dropped by archive-push-queue-max' : ''}: point-in-time recovery cannot cross it`);
      }
      for (const b of s.backup.filter((x) => x.db_id === db.id)) {
        out.push(
          '',
          `        ${b.type} backup: ${b.label}`,
          `            timestamp start/stop: ${time(b.timestamp_start)} / ${time(b.timestamp_stop)}`,
          `            wal start/stop: ${b.archive_start} / ${b.archive_stop}`,
          `            lsn start/stop: ${b.lsn_start} / ${b.lsn_stop}`,
          `            database size: ${formatBytes(b.size)}, database backup size: ${formatBytes(b.delta)}`,
          `            repo backup set size: ${formatBytes(b.repo_size)}, repo backup size: ${formatBytes(b.repo_delta)}`,
        );
        if (b.prior) out.push(`            backup reference list: ${b.reference.join(', ')} (prior ${b.prior})`);
        if (b.error) out.push('            error: invalid page checksums were found (see the backup\'s manifest: checksum-page-error)');
        if (b.wal_incomplete) out.push(`            wal incomplete: ${b.wal_gap} is missing, so this backup cannot be made consistent`);
        else if (b.wal_gap) out.push(`            wal gap: recovery from this backup stops before ${b.wal_gap}`);
      }
    }
    out.push('');
  }
  return `${out.join('\n')}\n`;
}

/** `12345 s ago` as 3h25m: how long since a unix time. */
function age(unix: number, now: number): string {
  return formatDuration(Math.max(0, now - unix));
}

/** The newest complete backup of a type, as "LABEL (AGE ago)", or '-'. */
function lastOfType(s: StanzaInfo__Output, type: string, now: number): string {
  const last = s.backup.filter((b) => b.type === type && !b.error).sort((a, b) => a.timestamp_stop - b.timestamp_stop).pop();
  return last ? `${last.label} (${age(last.timestamp_stop, now)} ago)` : '-';
}

/** `repoctl info` without --stanza: the fleet, a line per stanza. */
export function fleetText(stanzas: StanzaInfo__Output[], now = Date.now() / 1000): string {
  if (stanzas.length === 0) return 'No stanzas exist in the repository.\n';
  const header = ['STANZA', 'STATUS', 'LAST FULL', 'LAST DIFF', 'LAST INCR', 'WAL ARCHIVE (MIN - MAX)', 'REPO SIZE', 'AGENTS'];
  const rows = stanzas.map((s) => {
    const wal = s.archive.length ? `${s.archive[0].min} - ${s.archive[s.archive.length - 1].max}` : '-';
    return [
      s.name, s.status_code === 0 ? s.status_message : `error: ${s.status_message}`,
      lastOfType(s, 'full', now), lastOfType(s, 'diff', now), lastOfType(s, 'incr', now),
      wal, formatBytes(Number(s.repo_size)), s.agents.join(',') || '-',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}
