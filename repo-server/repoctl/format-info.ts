import type { StanzaInfo__Output } from '../../shared/generated/pgrepo/v1/StanzaInfo';
import { PGREPO_VERSION } from '../../shared/version';
import { formatBytes } from './units';

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
    })),
    agents: s.agents,
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
    for (const db of s.db) {
      out.push('', `    db (${db.id === s.db[s.db.length - 1].id ? 'current' : 'prior'}): PostgreSQL ${db.version}, system identifier ${db.system_id}`);
      for (const a of s.archive.filter((x) => x.db_id === db.id)) out.push(`        wal archive min/max (${a.id}): ${a.min}/${a.max}`);
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
      }
    }
    out.push('');
  }
  return `${out.join('\n')}\n`;
}
