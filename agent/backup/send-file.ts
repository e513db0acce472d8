import type { BackupJob__Output } from '../../shared/generated/pgrepo/v1/BackupJob';
import type { FileUpload } from '../../shared/generated/pgrepo/v1/FileUpload';
import type { FileHeader } from '../../shared/generated/pgrepo/v1/FileHeader';
import type { FileTrailer } from '../../shared/generated/pgrepo/v1/FileTrailer';
import type { BundleUpload } from '../../shared/generated/pgrepo/v1/BundleUpload';
import type { PutFileResult__Output } from '../../shared/generated/pgrepo/v1/PutFileResult';
import type { PutBundleResult__Output } from '../../shared/generated/pgrepo/v1/PutBundleResult';
import { PageChecksumFilter, type BlockRange, type PageChecksumResult } from '../../shared/stream/page-checksum';
import type { CodecPool } from '../../shared/stream/codec-pool';
import { readFileChunks } from '../../shared/stream/parallel';
import type { StoredChecksums } from '../../shared/stream/pipeline';
import type { AgentContext } from '../context';
import { uploadBundle, uploadChunks, type Codec } from '../transfer/upload';
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
  size: number;
  /**
   * its bytes in chunks of at most FRAME_SIZE, each in memory of its own (shared/stream/parallel.ts),
   * from `alloc` when given
   */
  chunks: (alloc?: (n: number) => Buffer) => AsyncIterable<Buffer>;
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

function codecOf(job: BackupJob__Output, pool: CodecPool): Codec {
  // the server takes the SHA-1 of the stored bytes as they arrive (and the TLS record layer
  // already proves the transfer): a second one here would only cost the agent's main thread
  return { type: job.compress_type, level: job.compress_level, pool, hashStored: false };
}

/**
 * Where chunks read for the codec workers get their memory: the pool's ring, since each chunk
 * comes back from its worker once compressed. Uncompressed chunks are sent as they are, so they
 * take memory of their own.
 */
function chunkMemory(job: BackupJob__Output, pool: CodecPool): ((n: number) => Buffer) | undefined {
  return job.compress_type === 'none' ? undefined : (n) => pool.ring.take(n);
}

function headerOf(jobId: string, job: BackupJob__Output, file: FileToSend): FileHeader {
  return {
    job_id: jobId, name: file.name, timestamp: file.mtime, mode: file.mode,
    user: userName(file.uid), group: groupName(file.gid), compress_type: job.compress_type,
  };
}

function trailerOf(c: StoredChecksums, pages: PageChecksumFilter | undefined): { trailer: FileTrailer } {
  return { trailer: {
    size: c.original.size, checksum: c.original.checksum, repo_size: c.stored.size, repo_checksum: c.stored.checksum,
    checksum_page: pages ? pageTrailer(pages.result()) : undefined,
  } };
}

function pagesOf(file: FileToSend, lsnLimit: bigint): PageChecksumFilter | undefined {
  return file.firstBlock === null ? undefined : new PageChecksumFilter(file.firstBlock, lsnLimit);
}

/** Sends one file as its own repository object; its chunks are compressed by the pool's workers. */
export async function sendFile(ctx: AgentContext, job: BackupJob__Output, jobId: string, file: FileToSend, lsnLimit: bigint, pool: CodecPool): Promise<Sent> {
  const pages = pagesOf(file, lsnLimit);
  const { checksums } = await uploadChunks<FileUpload, PutFileResult__Output>((cb) => ctx.client.PutBackupFile(cb), {
    header: { header: headerOf(jobId, job, file) },
    toData: (data) => ({ data }),
    toTrailer: (c) => trailerOf(c, pages),
  }, file.chunks(chunkMemory(job, pool)), codecOf(job, pool), pages ? [pages] : []);
  return { size: checksums.original.size, pageErrors: pages?.result().errors ?? [] };
}

/** Sends small files as one bundle (--bundle); null for a file gone since the listing. */
export async function sendBundle(ctx: AgentContext, job: BackupJob__Output, jobId: string, files: FileToSend[], lsnLimit: bigint,
  pool: CodecPool): Promise<Array<Sent | null>> {
  const pages = files.map((f) => pagesOf(f, lsnLimit));
  const { sent } = await uploadBundle<BundleUpload, PutBundleResult__Output>((cb) => ctx.client.PutBundle(cb), { header: { job_id: jobId } },
    files.map((file, i) => ({
      header: { file: headerOf(jobId, job, file) },
      chunks: () => file.chunks(chunkMemory(job, pool)),
      observers: pages[i] ? [pages[i]!] : [],
      toTrailer: (c: StoredChecksums) => trailerOf(c, pages[i]),
    })),
    codecOf(job, pool), (data) => ({ data }));
  return sent.map((c, i) => (c ? { size: c.original.size, pageErrors: pages[i]?.result().errors ?? [] } : null));
}

function pageTrailer(r: PageChecksumResult) {
  return { valid: r.valid, error: r.errors.map(([first, last]) => ({ first, last })) };
}

export function fromDisk(f: ListedFile, pageCheck: PageCheck | null): FileToSend {
  return {
    name: f.name, mtime: f.mtime, mode: f.mode, uid: f.uid, gid: f.gid, size: f.size, where: f.absPath,
    chunks: (alloc) => readFileChunks(f.absPath, f.size, alloc),
    firstBlock: pageCheck ? firstBlockOf(f.name, pageCheck.blocksPerSegment) : null,
  };
}

export function fromMemory(name: string, text: string, like: { uid: number; gid: number }, mtime: number): FileToSend {
  const bytes = Buffer.from(text);
  return {
    name, mtime, mode: '0600', uid: like.uid, gid: like.gid, size: bytes.length, where: name, firstBlock: null,
    chunks: async function* () { yield bytes; },
  };
}
