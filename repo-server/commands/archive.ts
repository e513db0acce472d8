import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import { archiveId } from '../../shared/info/archive-info';
import { validateWalFileName } from '../../shared/validate';
import { isSegmentName, walMagicToVersion } from '../../shared/wal';
import { sleep } from '../../shared/sleep';
import type { WalUpload__Output } from '../../shared/generated/pgrepo/v1/WalUpload';
import type { ArchivePushResult } from '../../shared/generated/pgrepo/v1/ArchivePushResult';
import type { ArchiveGetRequest__Output } from '../../shared/generated/pgrepo/v1/ArchiveGetRequest';
import type { WalDownload } from '../../shared/generated/pgrepo/v1/WalDownload';
import type { ServerContext } from '../context';
import { authorizeStanza, type Caller } from '../service/guard';
import { parseWalFileName, walDirKey, walFileName } from '../repo/layout';
import { receiveIntoTemp } from './receive-file';
import { unwire } from './archive-wire';

export interface ArchivedWal {
  key: string;
  checksum: string;
  compressType: string;
}

/** The stored copy of a WAL file in one archive id, if any. */
export async function findArchivedWal(ctx: ServerContext, stanza: string, archId: string, walName: string): Promise<ArchivedWal | undefined> {
  const dir = walDirKey(stanza, archId, walName);
  for (const file of await ctx.storage.list(dir)) {
    const parsed = parseWalFileName(file);
    if (parsed && parsed.walName === walName) return { key: `${dir}/${file}`, checksum: parsed.checksum, compressType: parsed.compressType };
  }
  return undefined;
}

// Two pushes of one segment at once must not both decide "not there yet"
const pushing = new Set<string>();

export async function archivePush(ctx: ServerContext, call: AsyncIterable<WalUpload__Output>, caller: Caller): Promise<ArchivePushResult> {
  const messages = call[Symbol.asyncIterator]();
  const first = await messages.next();
  const header = first.done ? undefined : first.value.header;
  if (!header) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'archive-push: the first message must be the header');
  const stanza = authorizeStanza(ctx, caller, header.stanza);
  const walName = validateWalFileName(header.name);
  const data = unwire(messages, header.compress_type, header.wire_compress_type, `archive-push ${walName}`);
  const info = await ctx.store.archiveInfo(stanza);
  if (isSegmentName(walName) || walName.endsWith('.partial')) {
    const version = walMagicToVersion(header.wal_magic) ?? `unknown (WAL magic 0x${header.wal_magic.toString(16)})`;
    if (header.system_id !== info.current.systemId || version !== info.current.version) {
      throw new StatusError(grpc.status.FAILED_PRECONDITION,
        `WAL file ${walName} is from system identifier ${header.system_id}, PostgreSQL ${version}, but stanza '${stanza}' is for system identifier ${info.current.systemId}, PostgreSQL ${info.current.version}: is archive_command pointing at the right stanza?`);
    }
  }
  const archId = archiveId(info.current);
  const lockKey = `${stanza}/${archId}/${walName}`;
  while (pushing.has(lockKey)) await sleep(20);
  pushing.add(lockKey);
  try {
    const temp = await ctx.storage.openTemp(`${walDirKey(stanza, archId, walName)}/${walName}.incoming`);
    try {
      // compressed WAL: no record keeps the stored bytes' SHA-1 and the agent sends none (TLS guards
      // the transfer; archive-get and verify check the original's against the name); WAL stored as
      // it is is checked against the name here
      const trailer = await receiveIntoTemp(data, temp, `archive-push ${walName}`, { hash: header.compress_type === 'none' });
      if (header.compress_type === 'none' && trailer.repo_checksum !== trailer.checksum) {
        throw new StatusError(grpc.status.DATA_LOSS, `archive-push ${walName}: the bytes received have SHA-1 ${trailer.repo_checksum}, but the agent named the file by ${trailer.checksum}; nothing was stored`);
      }
      const existing = await findArchivedWal(ctx, stanza, archId, walName);
      if (existing) {
        if (existing.checksum === trailer.checksum) {
          ctx.log.info({ stanza, wal: walName, identity: caller.identity }, 'WAL file was already archived with the same content');
          return { already_archived: true };
        }
        throw new StatusError(grpc.status.ALREADY_EXISTS,
          `WAL file ${walName} is already archived in stanza '${stanza}' with different content (SHA-1 ${existing.checksum}, this one ${trailer.checksum}); nothing was overwritten. Two clusters may be archiving into one stanza.`);
      }
      const finalKey = `${walDirKey(stanza, archId, walName)}/${walFileName(walName, trailer.checksum, header.compress_type)}`;
      await temp.commitAs(ctx.storage.path(finalKey));
      ctx.metrics.received(stanza, 'wal', trailer.repo_size);
      ctx.log.debug({ stanza, wal: walName }, 'WAL file archived');
      return { already_archived: false };
    } finally {
      await temp.discard();
    }
  } finally {
    pushing.delete(lockKey);
  }
}

export async function archiveGet(ctx: ServerContext, request: ArchiveGetRequest__Output, caller: Caller,
  write: (msg: WalDownload) => Promise<void>): Promise<void> {
  const stanza = authorizeStanza(ctx, caller, request.stanza);
  const walName = validateWalFileName(request.name);
  const info = await ctx.store.archiveInfo(stanza);
  // newest database first: after a stanza upgrade the current archive id is the likely one
  for (const db of [...info.history].reverse()) {
    const found = await findArchivedWal(ctx, stanza, archiveId(db), walName);
    if (!found) continue;
    await write({ found: { checksum: found.checksum, compress_type: found.compressType, repo_size: await ctx.storage.size(found.key) } });
    for await (const chunk of ctx.storage.openRead(found.key)) {
      ctx.metrics.sent(stanza, 'wal', (chunk as Buffer).length);
      await write({ data: chunk as Buffer });
    }
    return;
  }
  throw new StatusError(grpc.status.NOT_FOUND, `WAL file ${walName} is not in the archive of stanza '${stanza}'`);
}

/**
 * A backup is complete only when every segment it needs is in the archive: wait for them,
 * up to archive-timeout, and name the first missing one if they do not all arrive.
 */
export async function waitForWal(ctx: ServerContext, stanza: string, segments: string[], timeoutSeconds: number,
  onWait: (missing: string) => void): Promise<void> {
  const info = await ctx.store.archiveInfo(stanza);
  const archId = archiveId(info.current);
  const deadline = Date.now() + timeoutSeconds * 1000;
  let next = 0;
  let announced = -1;
  while (next < segments.length) {
    if (await findArchivedWal(ctx, stanza, archId, segments[next])) {
      next++;
      continue;
    }
    if (Date.now() > deadline) {
      throw new StatusError(grpc.status.DEADLINE_EXCEEDED,
        `WAL segment ${segments[next]} was not archived within archive-timeout (${timeoutSeconds} s), so the backup could not be restored and is not complete: check archive_command and the agent's log`);
    }
    if (announced !== next) {
      onWait(segments[next]);
      announced = next;
    }
    await sleep(200);
  }
}
