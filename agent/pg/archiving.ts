import type { Client } from 'pg';
import { UserError } from '../../shared/errors';
import type { ArchiverStatus } from '../../shared/generated/pgrepo/v1/ArchiverStatus';

export interface ArchiveSettings {
  mode: string;
  command: string;
}

export async function archiveSettings(client: Client): Promise<ArchiveSettings> {
  const { rows } = await client.query<{ mode: string; command: string }>(
    "select current_setting('archive_mode') as mode, current_setting('archive_command') as command");
  return rows[0];
}

/** Why WAL from this cluster cannot reach the archive, or null when the settings allow it. */
export function archiveSettingsProblem(s: ArchiveSettings): UserError | null {
  if (s.mode === 'off') return new UserError('archive_mode is off on this cluster: set archive_mode=on and archive_command to pgrepo-agent archive-push, then restart PostgreSQL', 'ARCHIVE_OFF');
  if (!s.command || s.command === '(disabled)') return new UserError('archive_command is not set: set it to pgrepo-agent archive-push --socket SOCKET %p', 'ARCHIVE_OFF');
  return null;
}

/** pg_stat_archiver, which says whether archive_command has been failing. */
export async function archiverStatus(client: Client): Promise<ArchiverStatus> {
  const { rows } = await client.query<{ archived: string; last_archived: string | null; failed: string; last_failed: string | null; failed_at: string | null }>(
    `select archived_count::text as archived, last_archived_wal as last_archived, failed_count::text as failed,
            last_failed_wal as last_failed, extract(epoch from last_failed_time)::bigint::text as failed_at from pg_stat_archiver`);
  const r = rows[0];
  return {
    archived_count: Number(r.archived), last_archived_wal: r.last_archived ?? '',
    failed_count: Number(r.failed), last_failed_wal: r.last_failed ?? '', last_failed_time: Number(r.failed_at ?? 0),
  };
}

/**
 * Makes PostgreSQL archive a segment now, as pgBackRest's check does: a restore point first, so
 * there is WAL to switch away from even when nothing was written since the last switch, then
 * pg_switch_wal. Returns the segment that was completed (the one to wait for) and the restore point.
 */
export async function forceArchive(client: Client): Promise<{ segment: string; restorePoint: string }> {
  // two statements: the restore point must be written before the switch
  const rp = await client.query<{ rp: string }>("select pg_create_restore_point('pgrepo archive check')::text as rp");
  const seg = await client.query<{ seg: string }>('select pg_walfile_name(pg_switch_wal()) as seg');
  return { segment: seg.rows[0].seg, restorePoint: rp.rows[0].rp };
}
