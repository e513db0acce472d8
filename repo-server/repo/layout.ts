import { archiveSubdir } from '../../shared/wal';
import { compressExtension } from '../../shared/stream/compress';
import type { ManifestFile } from '../../shared/info/manifest';

// Keys of the repository, pgBackRest's layout (DESIGN.md). Callers validate the parts first.
export const backupInfoKey = (stanza: string) => `backup/${stanza}/backup.info`;
export const archiveInfoKey = (stanza: string) => `archive/${stanza}/archive.info`;
export const backupDirKey = (stanza: string, label: string) => `backup/${stanza}/${label}`;
export const manifestKey = (stanza: string, label: string) => `backup/${stanza}/${label}/backup.manifest`;
export const latestKey = (stanza: string) => `backup/${stanza}/latest`;
export const backupFileKey = (stanza: string, label: string, name: string, compressType: string) =>
  `backup/${stanza}/${label}/${name}${compressExtension(compressType)}`;
/** A bundle of small files of a backup (--bundle): `<label>/bundle/<id>`, pgBackRest's layout. */
export const bundleKey = (stanza: string, label: string, bundleId: number) => `backup/${stanza}/${label}/bundle/${bundleId}`;
/** WAL agents dropped for archive-push-queue-max (JSON), so info can name the gap. */
export const archiveDroppedKey = (stanza: string) => `archive/${stanza}/archive.dropped`;
export const archiveIdDirKey = (stanza: string, archiveId: string) => `archive/${stanza}/${archiveId}`;

/** Segments live in a sub-directory per timeline+log id; history and backup-history files at the archive id level. */
export function walDirKey(stanza: string, archiveId: string, walName: string): string {
  const isSegment = /^[0-9A-F]{24}(\.partial)?$/.test(walName);
  return isSegment ? `archive/${stanza}/${archiveId}/${archiveSubdir(walName)}` : `archive/${stanza}/${archiveId}`;
}

export const walFileName = (walName: string, checksum: string, compressType: string) =>
  `${walName}-${checksum}${compressExtension(compressType)}`;

/** Parses `<name>-<sha1>[.ext]` back into its parts; undefined for anything else. */
export function parseWalFileName(file: string): { walName: string; checksum: string; compressType: string } | undefined {
  const m = /^(.+)-([0-9a-f]{40})(?:\.(gz|lz4|zst))?$/.exec(file);
  return m ? { walName: m[1], checksum: m[2], compressType: m[3] ?? 'none' } : undefined;
}

/**
 * Where a manifest file's stored bytes are: its own repository file, or a range of a bundle
 * (bundleId/bundleOffset, repoSize bytes), in the backup that holds the data (reference) or this one.
 */
export function storedLocation(stanza: string, label: string, file: Pick<ManifestFile, 'name' | 'reference' | 'bundleId' | 'bundleOffset' | 'repoSize' | 'compressType'>): { key: string; range?: { start: number; length: number } } {
  const holder = file.reference || label;
  if (file.bundleId !== undefined) return { key: bundleKey(stanza, holder, file.bundleId), range: { start: file.bundleOffset ?? 0, length: file.repoSize } };
  return { key: backupFileKey(stanza, holder, file.name, file.compressType) };
}
