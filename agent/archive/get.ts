import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { UserError, isServiceError } from '../../shared/errors';
import { validateWalFileName } from '../../shared/validate';
import type { CodecPool } from '../../shared/stream/codec-pool';
import type { WalDownload__Output } from '../../shared/generated/pgrepo/v1/WalDownload';
import type { AgentContext } from '../context';
import { downloadChunks } from '../transfer/download';

/**
 * Fetches one WAL file into `dest` (PostgreSQL's %p), its frames decompressed by the pool's
 * worker threads, checking it against the SHA-1 in its repository name. Resolves false when the archive does not have it: the end of recovery.
 * `sync` false skips the fsync, for the prefetch spool (emptied whenever the agent starts).
 */
export async function getWal(ctx: AgentContext, walName: string, dest: string, pool: CodecPool, sync = true): Promise<boolean> {
  const name = validateWalFileName(walName);
  const call = ctx.client.ArchiveGet({ stanza: ctx.stanza, name });
  const messages = call[Symbol.asyncIterator]() as AsyncIterator<WalDownload__Output>;
  let first: IteratorResult<WalDownload__Output>;
  try {
    first = await messages.next();
  } catch (err) {
    if (isServiceError(err) && err.code === grpc.status.NOT_FOUND) return false;
    throw err;
  }
  const found = first.done ? undefined : first.value.found;
  if (!found) throw new UserError(`the server answered archive-get ${name} without a header`);
  const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.pgrepo.${randomBytes(4).toString('hex')}`);
  const handle = await fsp.open(tmp, 'w', 0o600);
  try {
    const rest = { [Symbol.asyncIterator]: () => messages };
    const sums = await downloadChunks(rest, found.compress_type, pool, handle);
    if (sums.original.checksum !== found.checksum) {
      throw new UserError(`WAL file ${name} from the repository has SHA-1 ${sums.original.checksum}, but its name records ${found.checksum}: the archive copy is damaged`);
    }
    if (sync) await handle.sync();
    await handle.close();
    await fsp.rename(tmp, dest);
    return true;
  } catch (err) {
    await handle.close().catch(() => undefined);
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}
