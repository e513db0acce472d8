import fsp from 'node:fs/promises';
import { archiveId } from '../../shared/info/archive-info';
import type { ArchiveInfo } from '../../shared/info/archive-info';
import type { BackupInfoEntry, BackupType } from '../../shared/info/backup-info';
import { isSegmentName } from '../../shared/wal';
import type { PosixStorage } from '../storage/posix';
import { archiveIdDirKey, parseWalFileName } from './layout';

export interface SegmentRange {
  min: string;
  max: string;
  /** the repository file holding max */
  maxKey: string;
}

/** First and last archived segment of one archive id (sub-directories and files are listed sorted). */
export async function segmentRange(storage: PosixStorage, stanza: string, id: string): Promise<SegmentRange | undefined> {
  const dirKey = archiveIdDirKey(stanza, id);
  const dirs = (await storage.list(dirKey)).filter((d) => /^[0-9A-F]{16}$/.test(d));
  const segmentsIn = async (dir: string) =>
    (await storage.list(`${dirKey}/${dir}`))
      .map((file) => ({ file, name: parseWalFileName(file)?.walName }))
      .filter((s): s is { file: string; name: string } => !!s.name && isSegmentName(s.name))
      .map((s) => ({ name: s.name, key: `${dirKey}/${dir}/${s.file}` }));
  let min: string | undefined;
  for (const dir of dirs) {
    min = (await segmentsIn(dir))[0]?.name;
    if (min) break;
  }
  for (const dir of [...dirs].reverse()) {
    const last = (await segmentsIn(dir)).pop();
    if (last && min) return { min, max: last.name, maxKey: last.key };
  }
  return undefined;
}

export interface LastArchived {
  segment: string;
  /** unix seconds the segment reached the repository */
  archivedAt: number;
}

/** The newest segment in the stanza's current archive id, and when it was stored. */
export async function lastArchivedSegment(storage: PosixStorage, stanza: string, info: ArchiveInfo): Promise<LastArchived | undefined> {
  const range = await segmentRange(storage, stanza, archiveId(info.current));
  if (!range) return undefined;
  const stat = await fsp.stat(storage.path(range.maxKey));
  return { segment: range.max, archivedAt: stat.mtimeMs / 1000 };
}

/** The newest complete backup of each type. */
export function lastGoodBackups(backups: BackupInfoEntry[]): Partial<Record<BackupType, BackupInfoEntry>> {
  const last: Partial<Record<BackupType, BackupInfoEntry>> = {};
  for (const b of backups) {
    if (b.error) continue;
    const prior = last[b.type];
    if (!prior || b.timestampStop >= prior.timestampStop) last[b.type] = b;
  }
  return last;
}

/** Bytes under a repository directory (the stanza's WAL archive), walking it. */
export async function bytesUnder(storage: PosixStorage, key: string): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await fsp.readdir(storage.path(key), { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  for (const e of entries) {
    const child = `${key}/${e.name}`;
    if (e.isDirectory()) total += await bytesUnder(storage, child);
    else if (e.isFile()) total += (await fsp.stat(storage.path(child))).size;
  }
  return total;
}

export const archiveStanzaKey = (stanza: string) => `archive/${stanza}`;

/** What a stanza occupies: each backup's own files (repo delta, from backup.info) plus its WAL archive. */
export async function stanzaRepoBytes(storage: PosixStorage, stanza: string, backups: BackupInfoEntry[]): Promise<{ backup: number; wal: number }> {
  return { backup: backups.reduce((sum, b) => sum + b.repoSizeDelta, 0), wal: await bytesUnder(storage, archiveStanzaKey(stanza)) };
}
