import path from 'node:path';
import { UserError } from '../../shared/errors';
import { validateManifestPath } from '../../shared/validate';
import type { ManifestLink__Output } from '../../shared/generated/pgrepo/v1/ManifestLink';
import type { TablespaceMapping__Output } from '../../shared/generated/pgrepo/v1/TablespaceMapping';

/** A directory tree a restore owns: everything in it that the backup lacks may be removed (delta). */
export interface OwnedTree {
  /** manifest name of the tree's root: 'pg_data' or 'pg_tblspc/16384/PG_15_202209061' */
  name: string;
  dir: string;
}

function isInside(dir: string, root: string): boolean {
  const rel = path.relative(root, dir);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Where each tablespace goes: --tablespace-map by name or oid, else --tablespace-map-all/<name>, else where it
 * was (pgBackRest's restoreManifestMap).
 */
export function tablespaceTargets(links: ManifestLink__Output[], label: string, pgData: string, map: TablespaceMapping__Output[], mapAll: string): Map<number, string> {
  const tablespaces = links.filter((l) => l.tablespace_oid > 0);
  const targets = new Map<number, string>();
  for (const mapping of map) {
    const link = tablespaces.find((l) => l.tablespace_name === mapping.name || String(l.tablespace_oid) === mapping.name);
    if (!link) {
      throw new UserError(`--tablespace-map names tablespace '${mapping.name}', which backup ${label} does not have (it has: ${tablespaces.map((l) => `${l.tablespace_name} (${l.tablespace_oid})`).join(', ') || 'none'})`);
    }
    if (!path.isAbsolute(mapping.path)) throw new UserError(`--tablespace-map ${mapping.name}=${mapping.path}: the path must be absolute`);
    const prior = targets.get(link.tablespace_oid);
    if (prior !== undefined && prior !== path.resolve(mapping.path)) {
      throw new UserError(`--tablespace-map moves tablespace ${link.tablespace_name} (${link.tablespace_oid}) to both ${prior} and ${mapping.path}`);
    }
    targets.set(link.tablespace_oid, path.resolve(mapping.path));
  }
  if (mapAll !== '' && !path.isAbsolute(mapAll)) throw new UserError(`--tablespace-map-all ${mapAll}: the path must be absolute`);
  for (const link of tablespaces) {
    if (targets.has(link.tablespace_oid)) continue;
    targets.set(link.tablespace_oid, mapAll !== '' ? path.join(mapAll, link.tablespace_name) : link.destination);
  }
  const seen = new Map<string, number>();
  for (const [oid, dir] of targets) {
    // a tablespace inside the data directory would be cleaned as part of it; two in one place would share files
    if (isInside(dir, pgData)) throw new UserError(`tablespace ${oid} would be restored to ${dir}, inside the data directory ${pgData}: map it elsewhere with --tablespace-map`);
    const other = seen.get(dir);
    if (other !== undefined) throw new UserError(`tablespaces ${other} and ${oid} would both be restored to ${dir}: map one elsewhere with --tablespace-map`);
    seen.set(dir, oid);
  }
  return targets;
}

/** Manifest names ↔ paths on this host, for one restore. */
export class RestoreLayout {
  constructor(
    readonly pgData: string,
    /** tablespace oid → its directory (the pg_tblspc link's destination) */
    readonly tablespaces: Map<number, string>,
    /** 'PG_15_202209061': the per-version directory PostgreSQL keeps inside each tablespace */
    readonly tablespaceId: string,
  ) {}

  localPath(name: string): string {
    validateManifestPath(name);
    if (name === 'pg_data' || name.startsWith('pg_data/')) return path.join(this.pgData, name.slice('pg_data'.length));
    const m = /^pg_tblspc\/(\d+)(\/.*)?$/.exec(name)!;
    const root = this.tablespaces.get(Number(m[1]));
    if (!root) throw new UserError(`manifest entry ${name} belongs to tablespace ${m[1]}, which the manifest does not list`);
    return path.join(root, m[2] ?? '');
  }

  /** The data directory, and in each tablespace only this version's directory (others may share the location). */
  ownedTrees(): OwnedTree[] {
    return [
      { name: 'pg_data', dir: this.pgData },
      ...[...this.tablespaces].map(([oid, dir]) => ({ name: `pg_tblspc/${oid}/${this.tablespaceId}`, dir: path.join(dir, this.tablespaceId) })),
    ];
  }
}
