import fsp from 'node:fs/promises';
import path from 'node:path';
import type { OwnedTree } from './layout';

/** What the restored directories must hold, by manifest name. */
export interface ManifestIndex {
  files: ReadonlySet<string>;
  paths: ReadonlySet<string>;
  /** link name → the destination it must point at (after tablespace mapping) */
  links: ReadonlyMap<string, string>;
}

export type RemoveListener = (localPath: string, what: 'file' | 'link' | 'directory' | 'special file') => void;

async function readLink(p: string): Promise<string | undefined> {
  try {
    return await fsp.readlink(p);
  } catch {
    return undefined;
  }
}

/**
 * Delta restore's clean (pgBackRest's restoreCleanBuild): removes from one owned tree every file, link and
 * directory the manifest does not have, so what remains is a subset of the backup. Links are removed, never
 * followed, so nothing outside the tree is touched. `keep` names entries of the tree's root to leave alone.
 * Returns how many entries were removed (a directory counts once).
 */
export async function cleanTree(tree: OwnedTree, index: ManifestIndex, keep: ReadonlySet<string>, onRemove: RemoveListener): Promise<number> {
  let removed = 0;
  const remove = async (p: string, what: Parameters<RemoveListener>[1]) => {
    await fsp.rm(p, { recursive: what === 'directory', force: true });
    onRemove(p, what);
    removed++;
  };
  const stack: Array<{ name: string; dir: string }> = [{ name: tree.name, dir: tree.dir }];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    let entries;
    try {
      entries = await fsp.readdir(next.dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    for (const entry of entries) {
      if (next.name === tree.name && keep.has(entry.name)) continue;
      const name = `${next.name}/${entry.name}`;
      const local = path.join(next.dir, entry.name);
      if (entry.isSymbolicLink()) {
        const expected = index.links.get(name);
        if (expected === undefined || (await readLink(local)) !== expected) await remove(local, 'link');
      } else if (entry.isDirectory()) {
        if (index.paths.has(name) && !index.links.has(name)) stack.push({ name, dir: local });
        else await remove(local, 'directory');
      } else if (entry.isFile()) {
        if (!index.files.has(name)) await remove(local, 'file');
      } else {
        await remove(local, 'special file');
      }
    }
  }
  return removed;
}
