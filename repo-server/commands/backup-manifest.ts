import { manifestTotals, type Manifest, type ManifestFile } from '../../shared/info/manifest';
import type { BackupInfoEntry, BackupType, PgDb } from '../../shared/info/backup-info';
import type { BackupStarted__Output } from '../../shared/generated/pgrepo/v1/BackupStarted';
import type { BackupStopped__Output } from '../../shared/generated/pgrepo/v1/BackupStopped';

export interface ManifestOptionsIn {
  compressType: string;
  compressLevel: number;
  processMax: number;
  startFast: boolean;
}

/** A diff/incr depends on its prior and on everything the prior depends on: the set's chain, oldest first. */
export function referenceChain(prior: Manifest | null): string[] {
  if (!prior) return [];
  return [...new Set([...prior.backup.reference, prior.backup.label])].sort();
}

const byName = (a: ManifestFile, b: ManifestFile) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * The manifest of a backup from what the agent reported and the files recorded. Without
 * `stopped` it is the manifest of a backup in progress (the partial manifest a resume reads).
 */
export function buildManifest(label: string, type: BackupType, prior: Manifest | null, opts: ManifestOptionsIn, db: PgDb,
  files: ManifestFile[], started: BackupStarted__Output, stopped?: BackupStopped__Output): Manifest {
  const cluster = started.cluster!;
  const tablespaces = started.links.filter((l) => l.tablespace_oid > 0);
  return {
    backup: {
      label, type, prior: prior?.backup.label ?? null, reference: referenceChain(prior),
      timestampStart: started.timestamp_start, timestampCopyStart: started.timestamp_copy_start, timestampStop: stopped?.timestamp_stop ?? 0,
      lsnStart: started.lsn_start, lsnStop: stopped?.lsn_stop ?? '', archiveStart: started.wal_start, archiveStop: stopped?.wal_stop ?? '',
    },
    db,
    options: {
      compressType: opts.compressType, compressLevel: opts.compressLevel, processMax: opts.processMax,
      online: true, archiveCheck: true, delta: started.delta, startFast: opts.startFast, checksumPage: started.checksum_page,
    },
    targets: [
      { name: 'pg_data', path: cluster.data_directory, type: 'path' },
      ...tablespaces.map((t) => ({
        name: `pg_tblspc/${t.tablespace_oid}`, path: t.destination, type: 'link' as const,
        tablespaceId: t.tablespace_oid, tablespaceName: t.tablespace_name,
      })),
    ],
    databases: started.databases.map((d) => ({ name: d.name, oid: d.oid, lastSystemOid: d.last_system_oid })),
    paths: started.paths.map((p) => ({ name: p.name, mode: p.mode, user: p.user, group: p.group })),
    links: started.links.map((l) => ({ name: l.name, destination: l.destination, user: l.user, group: l.group })),
    files: [...files].sort(byName),
  };
}

/** Files with invalid page checksums, which make the backup's `backup-error` true (as in pgBackRest). */
export function pageErrorFiles(m: Manifest): ManifestFile[] {
  return m.files.filter((f) => f.checksumPage === false);
}

export function infoEntry(m: Manifest): BackupInfoEntry {
  const totals = manifestTotals(m);
  const entry: BackupInfoEntry = {
    label: m.backup.label, type: m.backup.type, prior: m.backup.prior, reference: m.backup.reference,
    timestampStart: m.backup.timestampStart, timestampStop: m.backup.timestampStop,
    lsnStart: m.backup.lsnStart, lsnStop: m.backup.lsnStop, archiveStart: m.backup.archiveStart, archiveStop: m.backup.archiveStop,
    size: totals.size, sizeDelta: totals.sizeDelta, repoSize: totals.repoSize, repoSizeDelta: totals.repoSizeDelta,
    dbId: m.db.id, compressType: m.options.compressType, online: true, archiveCheck: true,
  };
  if (pageErrorFiles(m).length > 0) entry.error = true;
  return entry;
}
