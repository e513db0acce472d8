import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import { INFO_COPY_EXT, InfoFileError, loadInfoFile, parseInfo, saveInfoFile } from '../../shared/info/ini';
import { parseArchiveInfo, renderArchiveInfo, type ArchiveInfo } from '../../shared/info/archive-info';
import { parseBackupInfo, renderBackupInfo, type BackupInfo } from '../../shared/info/backup-info';
import { parseManifest, renderManifest, type Manifest } from '../../shared/info/manifest';
import { PGREPO_VERSION } from '../../shared/version';
import type { PosixStorage } from '../storage/posix';
import { archiveInfoKey, backupInfoKey, manifestKey } from './layout';

export const MANIFEST_FILE = 'backup.manifest';
/** A backup in progress (or failed, resumable) has this file only; see commands/backup-partial.ts. */
export const PARTIAL_MANIFEST_FILE = `${MANIFEST_FILE}${INFO_COPY_EXT}`;

/** Reads and writes a stanza's info files and manifests; every write goes to the file and its .copy. */
export class StanzaStore {
  private readonly manifests = new Map<string, Manifest>();
  private readonly read = (key: string) => this.storage.read(key);
  private readonly write = (key: string, data: Buffer) => this.storage.writeAtomic(key, data);

  constructor(readonly storage: PosixStorage) {}

  async stanzas(): Promise<string[]> {
    const names = new Set([...(await this.storage.list('backup')), ...(await this.storage.list('archive'))]);
    return [...names].sort();
  }

  async exists(stanza: string): Promise<boolean> {
    return (await this.storage.exists(backupInfoKey(stanza))) || (await this.storage.exists(`${backupInfoKey(stanza)}.copy`));
  }

  private async load(stanza: string, key: string): Promise<ReturnType<typeof parseInfo>> {
    try {
      return await loadInfoFile(this.read, key);
    } catch (err) {
      if (err instanceof InfoFileError && err.code === 'missing') {
        throw new StatusError(grpc.status.NOT_FOUND, `stanza '${stanza}' does not exist in this repository: run 'repoctl stanza-create --stanza ${stanza}' first`);
      }
      throw new StatusError(grpc.status.DATA_LOSS, `stanza '${stanza}': ${(err as Error).message}`);
    }
  }

  async archiveInfo(stanza: string): Promise<ArchiveInfo> {
    return parseArchiveInfo(await this.load(stanza, archiveInfoKey(stanza)));
  }

  async backupInfo(stanza: string): Promise<BackupInfo> {
    return parseBackupInfo(await this.load(stanza, backupInfoKey(stanza)));
  }

  async saveArchiveInfo(stanza: string, info: ArchiveInfo): Promise<void> {
    await saveInfoFile(this.write, archiveInfoKey(stanza), renderArchiveInfo(info, PGREPO_VERSION));
  }

  async saveBackupInfo(stanza: string, info: BackupInfo): Promise<void> {
    await saveInfoFile(this.write, backupInfoKey(stanza), renderBackupInfo(info, PGREPO_VERSION));
  }

  async manifest(stanza: string, label: string): Promise<Manifest> {
    const cacheKey = `${stanza}/${label}`;
    let manifest = this.manifests.get(cacheKey);
    if (!manifest) {
      manifest = parseManifest(await this.load(stanza, manifestKey(stanza, label)));
      // restores ask for one file at a time; keep the few most recent manifests parsed
      if (this.manifests.size >= 4) this.manifests.delete(this.manifests.keys().next().value as string);
      this.manifests.set(cacheKey, manifest);
    }
    return manifest;
  }

  async saveManifest(stanza: string, manifest: Manifest): Promise<void> {
    await saveInfoFile(this.write, manifestKey(stanza, manifest.backup.label), renderManifest(manifest, PGREPO_VERSION));
  }

  /** The manifest of a partial backup (the .copy alone, so the set never looks complete); null when there is none. */
  async savePartialManifest(stanza: string, manifest: Manifest): Promise<void> {
    await this.write(`${manifestKey(stanza, manifest.backup.label)}${INFO_COPY_EXT}`, Buffer.from(renderManifest(manifest, PGREPO_VERSION)));
  }

  async partialManifest(stanza: string, label: string): Promise<{ manifest: Manifest; version: string | undefined } | null> {
    const key = `${manifestKey(stanza, label)}${INFO_COPY_EXT}`;
    const data = await this.read(key);
    if (data === null) return null;
    const text = data.toString('utf8');
    const version = /^backrest-version="([^"]*)"$/m.exec(text)?.[1];
    return { manifest: parseManifest(parseInfo(text, key), key), version };
  }
}

/** One backup, restore or expire per stanza at a time, within this server. */
export class StanzaLocks {
  private readonly held = new Map<string, string>();

  acquire(stanza: string, what: string): () => void {
    const holder = this.held.get(stanza);
    if (holder) {
      const article = /^[aeiou]/.test(holder) ? 'an' : 'a';
      throw new StatusError(grpc.status.ABORTED, `${article} ${holder} of stanza '${stanza}' is already running; wait for it to finish, then run ${what} again`);
    }
    this.held.set(stanza, what);
    return () => this.held.delete(stanza);
  }

  holder(stanza: string): string | undefined {
    return this.held.get(stanza);
  }
}
