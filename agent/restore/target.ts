import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The restore target must hold no running PostgreSQL and nothing else; it is created when missing. */
export function prepareEmptyDirectory(dir: string, what: string): void {
  if (!path.isAbsolute(dir)) throw new UserError(`${what} ${dir} must be an absolute path`);
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UserError(`cannot read ${what} ${dir}: ${(err as NodeJS.ErrnoException).code}`);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    return;
  }
  if (entries.includes('postmaster.pid')) {
    const pid = Number(fs.readFileSync(path.join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (pid > 0 && pidAlive(pid)) {
      throw new UserError(`PostgreSQL is running on ${dir} (postmaster.pid names process ${pid}): stop it before restoring into this directory`, 'PG_RUNNING');
    }
  }
  if (entries.length > 0) {
    throw new UserError(`${what} ${dir} is not empty (${entries.length} entries, e.g. ${entries.slice(0, 3).join(', ')}): restore into an empty directory, or move its contents away first`, 'NOT_EMPTY');
  }
}
