import { UserError } from '../../shared/errors';
import type { BackupFilesChunk__Output } from '../../shared/generated/pgrepo/v1/BackupFilesChunk';
import type { GetBackupFilesRequest } from '../../shared/generated/pgrepo/v1/GetBackupFilesRequest';
import type { RepositoryClient } from '../transfer/client';
import type { CodecPool } from '../../shared/stream/codec-pool';
import type { ManifestFile__Output } from '../../shared/generated/pgrepo/v1/ManifestFile';
import { writeFetchedFile } from './file';

/**
 * Small files are fetched many to a call (GetBackupFiles): what a small file costs is the call,
 * not its bytes, and a cluster of 100,000 small relations would otherwise make 100,000 calls.
 */
export const SMALL_FILE = 256 * 1024;
// a small file costs its open(2) and close(2) more than its bytes (~0.4 ms to create one here): a
// cluster's ~1,000 small files in one batch were one worker's half-second tail while the others
// sat idle, so batches stay small enough to spread over the workers
export const BATCH_FILES = 256;
const BATCH_BYTES = 8 * 1024 * 1024;

export type RestoreItem<T> = { kind: 'file'; file: T } | { kind: 'batch'; files: T[] };

/** Files of SMALL_FILE or more alone, the rest in batches of at most BATCH_FILES files and about BATCH_BYTES, order kept. */
export function restoreItems<T extends { size: number }>(files: readonly T[]): RestoreItem<T>[] {
  const items: RestoreItem<T>[] = [];
  let open: T[] = [];
  let openBytes = 0;
  for (const file of files) {
    if (file.size >= SMALL_FILE) {
      items.push({ kind: 'file', file });
      continue;
    }
    open.push(file);
    openBytes += file.size;
    if (open.length >= BATCH_FILES || openBytes >= BATCH_BYTES) {
      items.push({ kind: 'batch', files: open });
      open = [];
      openBytes = 0;
    }
  }
  if (open.length > 0) items.push({ kind: 'batch', files: open });
  return items;
}

/** The messages of file `index` of a GetBackupFiles stream: up to and including the one with the end mark. */
async function* messagesOf(stream: AsyncIterator<BackupFilesChunk__Output>, index: number, name: string): AsyncGenerator<{ data: Buffer }> {
  for (;;) {
    const { value, done } = await stream.next();
    if (done) throw new UserError(`the repository server ended the transfer before the end of file ${name}`);
    if (value.index !== index) throw new UserError(`the repository server sent file number ${value.index} where ${index} (${name}) was due`);
    if (value.data.length > 0) yield { data: value.data };
    if (value.end) return;
  }
}

/** What fetchBatch calls on: the grpc-js client (main thread) or a restore worker's RawDownloadClient. */
export interface BatchSource {
  GetBackupFiles(request: GetBackupFilesRequest): AsyncIterable<BackupFilesChunk__Output> & { cancel(): void };
}

/**
 * Fetches `files` of backup `label` in one call and hands each file's messages to `write` in turn
 * (which must read them to the end). A failure cancels the call.
 */
export async function fetchBatch<T extends { name: string }>(client: BatchSource, stanza: string, label: string, files: readonly T[],
  write: (file: T, messages: AsyncIterable<{ data: Buffer }>) => Promise<void>): Promise<void> {
  const call = client.GetBackupFiles({ stanza, label, names: files.map((f) => f.name) });
  const stream = call[Symbol.asyncIterator]();
  let finished = false;
  try {
    for (let i = 0; i < files.length; i++) await write(files[i], messagesOf(stream, i, files[i].name));
    finished = true;
  } finally {
    if (!finished) call.cancel();
  }
}

/**
 * Fetches files on the calling thread through the codec pool, which also reads stored bytes that
 * are not in delimited frames (a streaming decoder takes over where frames stop).
 */
export async function fetchOrdinarily(client: RepositoryClient, stanza: string, label: string,
  files: ReadonlyArray<{ file: ManifestFile__Output; dest: string; durable: boolean }>, batch: boolean, pool: CodecPool): Promise<void> {
  if (!batch) {
    const { file, dest, durable } = files[0];
    await writeFetchedFile(client.GetBackupFile({ stanza, label, name: file.name }), file, label, dest, pool, durable);
    return;
  }
  await fetchBatch(client, stanza, label, files.map((f) => ({ ...f, name: f.file.name })), (f, messages) => writeFetchedFile(messages, f.file, label, f.dest, pool, f.durable));
}
