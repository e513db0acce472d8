import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors';
import { validateWalFileName } from '../../shared/validate';
import { isPartialName, isSegmentName, readWalLongHeader, WAL_LONG_HEADER_SIZE } from '../../shared/wal';
import type { WalUpload } from '../../shared/generated/pgrepo/v1/WalUpload';
import type { ArchivePushResult__Output } from '../../shared/generated/pgrepo/v1/ArchivePushResult';
import type { AgentContext } from '../context';
import type { CodecPool } from '../../shared/stream/codec-pool';
import { readFileChunks } from '../../shared/stream/parallel';
import { uploadChunks } from '../transfer/upload';

/** The system identifier and version magic a segment carries, so the server can refuse a foreign cluster's WAL. */
function segmentIdentity(file: string): { system_id: string; wal_magic: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(WAL_LONG_HEADER_SIZE);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const header = readWalLongHeader(buf.subarray(0, n));
    return { system_id: header.systemId, wal_magic: header.magic };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Sends one WAL file; resolves only when the server has it durable (fsynced) in the repository.
 * Its 1 MiB chunks are compressed into independent frames by the pool's worker threads, so
 * segments in flight at once (archive-async) use several cores and the event loop stays free.
 */
export async function pushWal(ctx: AgentContext, file: string, pool: CodecPool): Promise<ArchivePushResult__Output> {
  const name = validateWalFileName(path.basename(file));
  if (!fs.existsSync(file)) throw new UserError(`WAL file ${file} does not exist`);
  const identity = isSegmentName(name) || isPartialName(name) ? segmentIdentity(file) : { system_id: '', wal_magic: 0 };
  const { result } = await uploadChunks<WalUpload, ArchivePushResult__Output>((cb) => ctx.client.ArchivePush(cb), {
    header: { header: { stanza: ctx.stanza, name, ...identity, compress_type: ctx.walCompressType } },
    toData: (data) => ({ data }),
    toTrailer: (c) => ({ trailer: { size: c.original.size, checksum: c.original.checksum, repo_checksum: c.stored.checksum, repo_size: c.stored.size } }),
  }, readFileChunks(file), { type: ctx.walCompressType, level: ctx.walCompressLevel, pool });
  return result;
}
