import fs from 'node:fs';
import { Readable } from 'node:stream';
import type { BackupJob__Output } from '../../shared/generated/pgrepo/v1/BackupJob';
import type { FileUpload } from '../../shared/generated/pgrepo/v1/FileUpload';
import type { PutFileResult__Output } from '../../shared/generated/pgrepo/v1/PutFileResult';
import { PageChecksumFilter, type BlockRange, type PageChecksumResult } from '../../shared/stream/page-checksum';
import type { AgentContext } from '../context';
import { uploadFile } from '../transfer/upload';
import type { ListedFile } from './file-list';
import { groupName, userName } from './owners';
import { firstBlockOf } from './page-check';

/** One backup file: header, compressed data, trailer with checksums (and page checksum results for relation files). */
export interface FileToSend {
  name: string;
  mtime: number;
  mode: string;
  uid: number;
  gid: number;
  open: () => Readable;
  /** where to find it, for messages */
  where: string;
  /** relation block number of the first page when pages are validated, else null */
  firstBlock: number | null;
}

export interface Sent {
  size: number;
  pageErrors: BlockRange[];
}

/** How pages are validated in this backup; null when they are not. */
export interface PageCheck {
  lsnLimit: bigint;
  blocksPerSegment: number;
}

export async function sendFile(ctx: AgentContext, job: BackupJob__Output, jobId: string, file: FileToSend, lsnLimit: bigint): Promise<Sent> {
  const header: FileUpload = {
    header: {
      job_id: jobId, name: file.name, timestamp: file.mtime, mode: file.mode,
      user: userName(file.uid), group: groupName(file.gid), compress_type: job.compress_type,
    },
  };
  const pages = file.firstBlock === null ? undefined : new PageChecksumFilter(file.firstBlock, lsnLimit);
  const { checksums } = await uploadFile<FileUpload, PutFileResult__Output>(
    (cb) => ctx.client.PutBackupFile(cb), header, file.open(), job.compress_type, job.compress_level,
    (data) => ({ data }),
    (c) => ({ trailer: {
      size: c.original.size, checksum: c.original.checksum, repo_size: c.stored.size, repo_checksum: c.stored.checksum,
      checksum_page: pages ? pageTrailer(pages.result()) : undefined,
    } }),
    pages ? [pages] : [],
  );
  return { size: checksums.original.size, pageErrors: pages?.result().errors ?? [] };
}

function pageTrailer(r: PageChecksumResult) {
  return { valid: r.valid, error: r.errors.map(([first, last]) => ({ first, last })) };
}

export function fromDisk(f: ListedFile, pageCheck: PageCheck | null): FileToSend {
  return {
    name: f.name, mtime: f.mtime, mode: f.mode, uid: f.uid, gid: f.gid, where: f.absPath,
    open: () => fs.createReadStream(f.absPath, { highWaterMark: 256 * 1024 }),
    firstBlock: pageCheck ? firstBlockOf(f.name, pageCheck.blocksPerSegment) : null,
  };
}

export function fromMemory(name: string, text: string, like: { uid: number; gid: number }, mtime: number): FileToSend {
  return { name, mtime, mode: '0600', uid: like.uid, gid: like.gid, where: name, open: () => Readable.from([Buffer.from(text)]), firstBlock: null };
}
