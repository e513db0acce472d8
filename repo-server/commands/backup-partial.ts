/**
 * Partial backups and resume, pgBackRest's model (src/command/backup/backup.c backupResumeFind and
 * backupResumeClean). A backup that fails keeps its directory with only `backup.manifest.copy`,
 * listing the files stored so far; it is never in backup.info, so nothing offers it for restore.
 * The next backup of the same type and prior resumes it: under the same label, keeping every
 * stored file whose bytes still match the recorded size and SHA-1, removing everything else.
 */
import { createHash } from 'node:crypto';
import type { BackupInfo, BackupType } from '../../shared/info/backup-info';
import type { Manifest, ManifestFile } from '../../shared/info/manifest';
import { compressExtension } from '../../shared/stream/compress';
import { validateBackupLabel } from '../../shared/validate';
import { PGREPO_VERSION } from '../../shared/version';
import type { ServerContext } from '../context';
import { backupDirKey, bundleKey } from '../repo/layout';
import { MANIFEST_FILE, PARTIAL_MANIFEST_FILE } from '../repo/stanza-store';

export interface Resumable {
  label: string;
  manifest: Manifest;
  /** stored files that verified, by manifest name */
  kept: Map<string, ManifestFile>;
  keptBytes: number;
  removed: number;
}

export interface ResumeWanted {
  type: BackupType;
  prior: string | null;
  compressType: string;
}

export type Say = (level: 'info' | 'warn', message: string) => void;

const VERIFY_CONCURRENCY = 4;

function isLabel(name: string): boolean {
  try {
    validateBackupLabel(name);
    return true;
  } catch {
    return false;
  }
}

/** Backup directories that are not (or not yet) in backup.info, oldest first. */
export async function unlistedBackupDirs(ctx: ServerContext, stanza: string, info: BackupInfo): Promise<string[]> {
  const listed = new Set(info.backups.map((b) => b.label));
  return (await ctx.storage.list(`backup/${stanza}`)).filter((name) => isLabel(name) && !listed.has(name));
}

function mismatch(m: Manifest, version: string | undefined, want: ResumeWanted): string | null {
  if (version !== PGREPO_VERSION) return `it was written by pgrepo ${version ?? '(unknown)'}, this is ${PGREPO_VERSION}`;
  if (m.backup.type !== want.type) return `new backup type '${want.type}' does not match resumable backup type '${m.backup.type}'`;
  if ((m.backup.prior ?? null) !== want.prior) {
    return `new prior backup '${want.prior ?? '<none>'}' does not match resumable prior backup '${m.backup.prior ?? '<none>'}'`;
  }
  if (m.options.compressType !== want.compressType) {
    return `new compression '${want.compressType}' does not match resumable compression '${m.options.compressType}'`;
  }
  return null;
}

async function storedMatches(ctx: ServerContext, key: string, file: ManifestFile): Promise<boolean> {
  try {
    const hash = createHash('sha1');
    let size = 0;
    for await (const chunk of ctx.storage.openRead(key)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return size === file.repoSize && hash.digest('hex') === file.repoChecksum;
  } catch {
    return false;
  }
}

/** Why a stored file of the partial set cannot be kept, or null when its bytes verify. */
async function removeReason(ctx: ServerContext, dir: string, rel: string, byKey: Map<string, ManifestFile>, compressType: string): Promise<string | null> {
  const file = byKey.get(rel);
  if (!file) return 'not in the resumable manifest';
  if (file.reference !== undefined) return 'a reference in the resumable manifest';
  if (file.compressType !== compressType) return 'mismatched compression type';
  if (file.size === 0) return 'empty (cheaper to send again)';
  return (await storedMatches(ctx, `${dir}/${rel}`, file)) ? null : 'its size or SHA-1 no longer matches the manifest';
}

/** Keeps the files of the partial set that verify; removes every other file in its directory. */
async function cleanPartial(ctx: ServerContext, stanza: string, label: string, m: Manifest): Promise<Resumable> {
  const dir = backupDirKey(stanza, label);
  const byKey = new Map(m.files.map((f) => [`${f.name}${compressExtension(f.compressType)}`, f]));
  const found = (await ctx.storage.listTree(dir)).filter((rel) => rel !== PARTIAL_MANIFEST_FILE);
  const result: Resumable = { label, manifest: m, kept: new Map(), keptBytes: 0, removed: 0 };
  for (let i = 0; i < found.length; i += VERIFY_CONCURRENCY) {
    await Promise.all(found.slice(i, i + VERIFY_CONCURRENCY).map(async (rel) => {
      const reason = await removeReason(ctx, dir, rel, byKey, m.options.compressType);
      if (reason === null) {
        const file = byKey.get(rel)!;
        result.kept.set(file.name, file);
        result.keptBytes += file.size;
      } else {
        ctx.log.debug({ stanza, label, file: rel, reason }, 'removing a file from the resumed backup');
        await ctx.storage.remove(`${dir}/${rel}`);
        result.removed++;
      }
    }));
  }
  return result;
}

/**
 * The partial set the next backup resumes, cleaned; undefined when there is none. Only the newest
 * backup directory can be resumed (a newer backup has superseded any older one); a partial set that
 * cannot be resumed, or --no-resume, removes it, saying why.
 */
export async function prepareResume(ctx: ServerContext, stanza: string, info: BackupInfo, want: ResumeWanted,
  resume: boolean, say: Say): Promise<Resumable | undefined> {
  const label = (await unlistedBackupDirs(ctx, stanza, info)).pop();
  if (!label || (info.backups.length > 0 && label < info.backups[info.backups.length - 1].label)) return undefined;
  const dir = backupDirKey(stanza, label);
  // a complete manifest not (yet) in backup.info is not a partial set; leave it to whoever looks after those
  if (await ctx.storage.exists(`${dir}/${MANIFEST_FILE}`)) return undefined;
  const drop = async (level: 'info' | 'warn', why: string) => {
    say(level, `backup ${label} cannot be resumed: ${why}; removing it`);
    await ctx.storage.remove(dir, true);
    return undefined;
  };
  if (!resume) return drop('info', 'resume is disabled (--no-resume)');
  let partial: { manifest: Manifest; version: string | undefined } | null;
  try {
    partial = await ctx.store.partialManifest(stanza, label);
  } catch (err) {
    return drop('warn', `its ${PARTIAL_MANIFEST_FILE} cannot be read (${(err as Error).message})`);
  }
  if (!partial) return drop('warn', `it has no ${PARTIAL_MANIFEST_FILE} (it stopped before the first save of its file list, which the server makes every GiB or minute)`);
  const problem = mismatch(partial.manifest, partial.version, want);
  if (problem) return drop('warn', problem);
  const resumable = await cleanPartial(ctx, stanza, label, partial.manifest);
  say('warn', `resumable backup ${label} of the same type exists: ${resumable.kept.size} file(s) verified and kept, ${resumable.removed} invalid or unneeded file(s) removed; the backup resumes`);
  return resumable;
}

/** After a resumed backup: removes files of the partial set that the new manifest does not store (dropped since, or changed name). */
export async function removeStrays(ctx: ServerContext, stanza: string, label: string, stored: Iterable<ManifestFile>): Promise<number> {
  const dir = backupDirKey(stanza, label);
  // a bundled file lives in its bundle: the bundles this run wrote are wanted too (they were all
  // removed as strays before, and a resumed backup with --bundle completed without its data)
  const wanted = new Set([...stored].map((f) => (f.bundleId !== undefined
    ? bundleKey(stanza, label, f.bundleId).slice(dir.length + 1) : `${f.name}${compressExtension(f.compressType)}`)));
  let removed = 0;
  for (const rel of await ctx.storage.listTree(dir)) {
    if (rel === PARTIAL_MANIFEST_FILE || rel === MANIFEST_FILE || wanted.has(rel)) continue;
    await ctx.storage.remove(`${dir}/${rel}`);
    removed++;
  }
  return removed;
}

/**
 * Saves the partial manifest now and then while files arrive (every GiB or minute, whichever
 * comes first; pgBackRest saves every 1 % or GiB), so a server that dies mid-backup loses at most
 * that much; a backup that fails while the server lives saves it once more with everything stored.
 */
export class PartialSaver {
  private chain: Promise<void> = Promise.resolve();
  private lastSave = Date.now();
  private bytesSince = 0;

  constructor(private readonly save: () => Promise<void>, private readonly onError: (err: Error) => void) {}

  stored(bytes: number): void {
    this.bytesSince += bytes;
    if (this.bytesSince >= 1024 ** 3 || Date.now() - this.lastSave >= 60_000) void this.now().catch(() => undefined);
  }

  /** Saves after any save under way; resolves when this one is durable. */
  now(): Promise<void> {
    this.lastSave = Date.now();
    this.bytesSince = 0;
    const next = this.chain.then(this.save);
    this.chain = next.catch((err: Error) => this.onError(err));
    return next;
  }
}
