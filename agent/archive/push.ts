import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors';
import { validateWalFileName } from '../../shared/validate';
import { isPartialName, isSegmentName, readWalLongHeader, WAL_LONG_HEADER_SIZE } from '../../shared/wal';
import type { WalUpload } from '../../shared/generated/pgrepo/v1/WalUpload';
import type { ArchivePushResult__Output } from '../../shared/generated/pgrepo/v1/ArchivePushResult';
import type { AgentContext } from '../context';
import { upload } from '../transfer/upload';
import type { WalThreads, WireCompression } from './wal-threads';

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

/** compress-level-network: how WAL of compress-type none travels (undefined: as it is stored). */
export function wireCompression(ctx: AgentContext): WireCompression | undefined {
  return ctx.walCompressType === 'none' && ctx.walNetworkLevel > 0 ? { type: 'lz4', level: ctx.walNetworkLevel } : undefined;
}

/**
 * Sends one WAL file; resolves only when the server has it durable (fsynced) in the repository.
 * A WAL thread reads, checksums and compresses the file into independent 1 MiB frames, so the
 * segments in flight at once (archive-async) each use a core and the event loop only sends.
 */
export async function pushWal(ctx: AgentContext, file: string, threads: WalThreads): Promise<ArchivePushResult__Output> {
  const name = validateWalFileName(path.basename(file));
  if (!fs.existsSync(file)) throw new UserError(`WAL file ${file} does not exist`);
  const identity = isSegmentName(name) || isPartialName(name) ? segmentIdentity(file) : { system_id: '', wal_magic: 0 };
  const wire = wireCompression(ctx);
  const packed = threads.pack(file, ctx.walCompressType, ctx.walCompressLevel, wire);
  const header: WalUpload = { header: { stanza: ctx.stanza, name, ...identity, compress_type: ctx.walCompressType, wire_compress_type: wire?.type ?? '' } };
  const { result } = await upload<WalUpload, ArchivePushResult__Output, void>((cb) => ctx.client.ArchivePush(cb), header, async (write) => {
    for await (const frame of packed) await write({ data: frame });
    const c = packed.checksums!;
    await write({ trailer: { size: c.original.size, checksum: c.original.checksum, repo_checksum: c.stored.checksum, repo_size: c.stored.size } });
  }, () => packed.cancel());
  return result;
}
