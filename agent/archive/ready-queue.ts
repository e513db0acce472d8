import fsp from 'node:fs/promises';
import path from 'node:path';
import { isHistoryName, isPartialName, isSegmentName } from '../../shared/wal';

const READY = '.ready';
const WAL_NAME = /^[0-9A-F]{24}(\.partial|\.[0-9A-F]{8}\.backup)?$|^[0-9A-F]{8}\.history$/;

export const archiveStatusDir = (pgPath: string) => path.join(pgPath, 'pg_wal', 'archive_status');
export const walFilePath = (pgPath: string, name: string) => path.join(pgPath, 'pg_wal', name);

/**
 * The WAL files PostgreSQL has marked ready to archive, in the order its archiver takes them:
 * timeline history files first, then by name (oldest first). Empty when the directory does not exist.
 */
export async function readyWalFiles(pgPath: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await fsp.readdir(archiveStatusDir(pgPath));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const names = entries.filter((e) => e.endsWith(READY)).map((e) => e.slice(0, -READY.length)).filter((n) => WAL_NAME.test(n));
  return names.sort((a, b) => Number(isHistoryName(b)) - Number(isHistoryName(a)) || (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * What the ready queue holds in pg_wal, as pgBackRest counts it for archive-push-queue-max:
 * whole segments (and partial ones) times the segment size; history and backup files are tiny.
 */
export function queueBytes(names: Iterable<string>, segmentSize: number): number {
  let n = 0;
  for (const name of names) if (isSegmentName(name) || isPartialName(name)) n++;
  return n * segmentSize;
}
