import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import { archiveId } from '../../shared/info/archive-info';
import { validateWalFileName } from '../../shared/validate';
import type { ArchiveDroppedRequest__Output } from '../../shared/generated/pgrepo/v1/ArchiveDroppedRequest';
import type { ArchiveDroppedResult } from '../../shared/generated/pgrepo/v1/ArchiveDroppedResult';
import type { ServerContext } from '../context';
import { authorizeStanza, type Caller } from '../service/guard';
import { archiveDroppedKey } from '../repo/layout';

/** One WAL file an agent reported archived to PostgreSQL without pushing it (archive-push-queue-max). */
export interface DroppedRecord {
  archiveId: string;
  wal: string;
  /** unix seconds */
  droppedAt: number;
  agent: string;
}

/** The stanza's record of dropped WAL (empty when nothing was ever dropped). */
export async function readDropped(ctx: ServerContext, stanza: string): Promise<DroppedRecord[]> {
  const data = await ctx.storage.read(archiveDroppedKey(stanza));
  if (!data) return [];
  try {
    const parsed = JSON.parse(data.toString('utf8')) as { dropped?: DroppedRecord[] };
    return Array.isArray(parsed.dropped) ? parsed.dropped : [];
  } catch {
    throw new StatusError(grpc.status.DATA_LOSS, `the record of dropped WAL of stanza '${stanza}' (${archiveDroppedKey(stanza)}) is damaged: it is not JSON`);
  }
}

const writing = new Map<string, Promise<unknown>>();

export async function archiveDropped(ctx: ServerContext, request: ArchiveDroppedRequest__Output, caller: Caller): Promise<ArchiveDroppedResult> {
  const stanza = authorizeStanza(ctx, caller, request.stanza);
  const names = request.wal.map((w) => ({ wal: validateWalFileName(w.name), droppedAt: Number(w.dropped_at) || 0 }));
  const archId = archiveId((await ctx.store.archiveInfo(stanza)).current);
  // one writer per stanza: two agents reporting at once must not lose each other's records
  const prior = writing.get(stanza) ?? Promise.resolve();
  const work = prior.catch(() => undefined).then(async () => {
    const record = await readDropped(ctx, stanza);
    const known = new Set(record.map((r) => `${r.archiveId}/${r.wal}`));
    const added = names.filter((n) => !known.has(`${archId}/${n.wal}`)).map((n) => ({ archiveId: archId, ...n, agent: caller.identity }));
    if (added.length) {
      await ctx.storage.writeAtomic(archiveDroppedKey(stanza), `${JSON.stringify({ dropped: [...record, ...added] }, null, 1)}\n`);
      ctx.log.error({ stanza, agent: caller.identity, archiveId: archId, wal: added.map((a) => a.wal), queueMax: Number(request.queue_max) },
        'an agent dropped WAL because its ready queue exceeded archive-push-queue-max: point-in-time recovery across the gap is impossible');
    }
    return added.length;
  });
  writing.set(stanza, work);
  return { recorded: await work };
}
