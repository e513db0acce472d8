import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors';
import { pidAlive } from '../../shared/pid';

const restoring = new Set<string>();

/**
 * One restore at a time into a directory: two at once (a repeated command, a second operator)
 * would each remove what the other wrote with --delta, or mix two backups' files. Returns the release.
 */
export function claimRestoreTarget(dir: string): () => void {
  if (restoring.has(dir)) {
    throw new UserError(`a restore into ${dir} is already running on this agent: wait for it to finish before starting another into the same directory`, 'RESTORE_RUNNING');
  }
  restoring.add(dir);
  return () => restoring.delete(dir);
}

/** Refuses a data directory PostgreSQL is running on: nothing of a restore may touch it, delta or not. */
export function assertNotRunning(dir: string): void {
  if (!path.isAbsolute(dir)) throw new UserError(`restore target ${dir} must be an absolute path`);
  let pidFile: string;
  try {
    pidFile = fs.readFileSync(path.join(dir, 'postmaster.pid'), 'utf8');
  } catch {
    return;
  }
  const pid = Number(pidFile.split('\n')[0]);
  if (pid > 0 && pidAlive(pid)) {
    throw new UserError(`PostgreSQL is running on ${dir} (postmaster.pid names process ${pid}): stop it before restoring into this directory`, 'PG_RUNNING');
  }
}

/**
 * A restore without --delta/--force writes only into an empty directory (created when missing): it must never
 * overwrite something it did not put there. `ignore` names entries that may be there (preserved recovery files).
 */
export function prepareEmptyDirectory(dir: string, what: string, ignore: ReadonlySet<string> = new Set()): void {
  if (!path.isAbsolute(dir)) throw new UserError(`${what} ${dir} must be an absolute path`);
  let entries: string[];
  try {
    entries = fs.readdirSync(dir).filter((e) => !ignore.has(e));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`cannot read ${what} ${dir}: ${(err as NodeJS.ErrnoException).code}`);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return;
  }
  if (entries.length > 0) {
    throw new UserError(`${what} ${dir} is not empty (${entries.length} entries, e.g. ${entries.slice(0, 3).join(', ')}): restore into an empty directory, move its contents away first, or use --delta to restore over it (files that match the backup are kept, everything else in it is replaced or removed)`, 'NOT_EMPTY');
  }
}

/**
 * --delta and --force remove what the backup lacks: only in a directory that is a PostgreSQL data directory
 * (has PG_VERSION), so a mistyped --pg-path cannot empty some other directory (pgBackRest's check too).
 * A missing or empty directory is fine.
 */
export function assertDataDirectoryOrEmpty(dir: string): void {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch {
    return;
  }
  if (entries.length > 0 && !entries.includes('PG_VERSION')) {
    throw new UserError(`--delta/--force: ${dir} is not empty and has no PG_VERSION, so it does not look like a PostgreSQL data directory; refusing to replace its contents (check --pg-path, or restore into an empty directory)`, 'NOT_PGDATA');
  }
}
