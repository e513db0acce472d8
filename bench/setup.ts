import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { chownToPostgres, isRoot, runOk } from '../test/harness/system';

/** Debian's pgbackrest package, installed with apt-get when missing (as root). */
export async function ensurePgbackrest(): Promise<void> {
  if (fs.existsSync('/usr/bin/pgbackrest')) return;
  if (!isRoot) throw new Error('pgBackRest is not installed: apt-get install pgbackrest (the benchmark installs it when run as root)');
  await runOk('apt-get', ['update', '-qq'], { timeoutMs: 600_000 });
  await runOk('apt-get', ['install', '-y', '-qq', 'pgbackrest'], { timeoutMs: 600_000, env: { DEBIAN_FRONTEND: 'noninteractive' } });
}

/** A directory the postgres user owns (when running as root). */
export async function ownedDir(dir: string): Promise<string> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await chownToPostgres(dir);
  return dir;
}
