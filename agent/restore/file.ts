import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { UserError } from '../../shared/errors';
import { isCodecError, type CodecPool } from '../../shared/stream/codec-pool';
import { downloadChunks, type Downloaded } from '../transfer/download';
import type { ManifestFile__Output } from '../../shared/generated/pgrepo/v1/ManifestFile';

export const modeOf = (file: ManifestFile__Output) => parseInt(file.mode, 8);

/** What a restored file must match: the stored size and the original size and SHA-1 the manifest records. */
export function checkRestored(file: ManifestFile__Output, label: string, sums: Downloaded): void {
  if (file.repo_size && sums.storedSize !== file.repo_size) {
    throw new UserError(`file ${file.name} of backup ${label}: the repository copy has ${sums.storedSize} bytes, but the manifest records ${file.repo_size}; the repository is damaged`, 'CORRUPT');
  }
  if (sums.original.checksum !== file.checksum || sums.original.size !== file.size) {
    throw new UserError(`file ${file.name} of backup ${label}: restored ${sums.original.size} bytes with SHA-1 ${sums.original.checksum}, but the manifest records ${file.size} bytes with SHA-1 ${file.checksum}; the repository is damaged`, 'CORRUPT');
  }
}

export function undecodable(file: ManifestFile__Output, label: string, err: unknown): UserError {
  return new UserError(`file ${file.name} of backup ${label}: the repository copy cannot be decompressed (${(err as Error).message}); the repository is damaged`, 'CORRUPT');
}

/**
 * Writes one file from the repository's stored bytes, proving both checksums and the size against the manifest.
 * `durable` false: the caller makes it durable later, with the rest of the restore (syncFileSystems).
 */
export async function writeFetchedFile(messages: AsyncIterable<{ data?: Buffer }>, file: ManifestFile__Output, label: string, dest: string,
  pool: CodecPool, durable = true): Promise<void> {
  const handle = await fsp.open(dest, 'w', modeOf(file));
  try {
    let sums;
    try {
      sums = await downloadChunks(messages, file.compress_type, pool, handle);
    } catch (err) {
      if (isCodecError(err)) throw undecodable(file, label, err);
      throw err;
    }
    checkRestored(file, label, sums);
    await handle.chmod(modeOf(file));
    await handle.utimes(file.timestamp, file.timestamp);
    if (durable) await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * A file of a database left out by --db-include: the right size, all zeros, sparse (so it costs no space), so
 * recovery can replay into it and the database can be dropped afterwards. pgBackRest does the same.
 */
export async function writeZeroedFile(file: ManifestFile__Output, dest: string, durable = true): Promise<void> {
  const handle = await fsp.open(dest, 'w', modeOf(file));
  try {
    await handle.truncate(file.size);
    await handle.chmod(modeOf(file));
    await handle.utimes(file.timestamp, file.timestamp);
    if (durable) await handle.sync();
  } finally {
    await handle.close();
  }
}

async function sha1OfFile(p: string): Promise<string> {
  const hash = createHash('sha1');
  for await (const chunk of fs.createReadStream(p, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export type LocalState = 'missing' | 'different' | 'matches';

/**
 * Delta: does the file already in the target equal the backup's? By SHA-1, or with `sizeAndTime` (--force) by
 * size and modification time only. A file that matches gets the manifest's mode and mtime, so a later
 * size-and-time delta sees it as restored.
 */
export async function compareLocalFile(file: ManifestFile__Output, dest: string, sizeAndTime: boolean): Promise<LocalState> {
  let st;
  try {
    st = await fsp.lstat(dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
  if (!st.isFile() || st.size !== file.size) return 'different';
  const same = sizeAndTime ? Math.floor(st.mtimeMs / 1000) === file.timestamp : file.size === 0 || (await sha1OfFile(dest)) === file.checksum;
  if (!same) return 'different';
  if ((st.mode & 0o7777) !== modeOf(file)) await fsp.chmod(dest, modeOf(file));
  if (Math.floor(st.mtimeMs / 1000) !== file.timestamp) await fsp.utimes(dest, file.timestamp, file.timestamp);
  return 'matches';
}
