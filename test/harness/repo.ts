/** Looking into the repository directory and at repoctl info, for assertions. */
import fs from 'node:fs';
import path from 'node:path';
import { expectSuccess } from './expect';
import type { Fixture } from './fixture';

/** Backup labels with a directory on disk, oldest first. */
export function backupDirs(fx: Fixture, stanza = fx.stanza): string[] {
  const dir = path.join(fx.repoDir, 'backup', stanza);
  return fs.readdirSync(dir).filter((n) => /^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$/.test(n)).sort();
}

/** Archived WAL segment names of one archive id, sorted. */
export function archivedSegments(fx: Fixture, archiveId = '15-1', stanza = fx.stanza): string[] {
  const base = path.join(fx.repoDir, 'archive', stanza, archiveId);
  if (!fs.existsSync(base)) return [];
  return fs.readdirSync(base).filter((d) => /^[0-9A-F]{16}$/.test(d))
    .flatMap((d) => fs.readdirSync(path.join(base, d)))
    .map((f) => /^([0-9A-F]{24})-[0-9a-f]{40}/.exec(f)?.[1])
    .filter((n): n is string => n !== undefined)
    .sort();
}

/** The repository file holding an archived WAL segment. */
export function archivedSegmentFile(fx: Fixture, segment: string, archiveId = '15-1', stanza = fx.stanza): string {
  const dir = path.join(fx.repoDir, 'archive', stanza, archiveId, segment.slice(0, 16));
  const file = fs.readdirSync(dir).find((f) => f.startsWith(`${segment}-`));
  if (!file) throw new Error(`segment ${segment} is not archived in ${dir}`);
  return path.join(dir, file);
}

export interface InfoBackup {
  label: string;
  type: string;
  archive: { start: string; stop: string };
}

/** repoctl info --output json: the stanza's backups, oldest first. */
export async function infoBackups(fx: Fixture, stanza = fx.stanza): Promise<InfoBackup[]> {
  const res = await fx.repoctl(['info', '--stanza', stanza, '--output', 'json']);
  expectSuccess(res, 'repoctl info --output json');
  const [s] = JSON.parse(res.stdout) as Array<{ backup: InfoBackup[] }>;
  return s.backup;
}

/** Every file under dir (relative), sorted: a snapshot to prove nothing changed. */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const ent of fs.readdirSync(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${ent.name}` : ent.name;
      if (ent.isDirectory()) walk(path.join(d, ent.name), r);
      else out.push(r);
    }
  };
  walk(dir, '');
  return out.sort();
}
