import type { BackupJob__Output } from '../../shared/generated/pgrepo/v1/BackupJob';
import type { FileUpload } from '../../shared/generated/pgrepo/v1/FileUpload';
import type { FileHeader } from '../../shared/generated/pgrepo/v1/FileHeader';
import type { FileTrailer } from '../../shared/generated/pgrepo/v1/FileTrailer';
import type { BundleUpload } from '../../shared/generated/pgrepo/v1/BundleUpload';
import type { PutFileResult__Output } from '../../shared/generated/pgrepo/v1/PutFileResult';
import type { PutBundleResult__Output } from '../../shared/generated/pgrepo/v1/PutBundleResult';
import { lsnHalves, type BlockRange, type PageChecksumResult } from '../../shared/stream/page-checksum';
import type { CodecPool } from '../../shared/stream/codec-pool';
import { readFileChunks } from '../../shared/stream/parallel';
import type { StoredChecksums } from '../../shared/stream/pipeline';
import type { AgentContext } from '../context';
import { upload, uploadChunks, type Codec, type FileBytes, type PageSpec } from '../transfer/upload';
import { FRAME_SIZE } from '../../shared/stream/frame-codec';
import { HEADROOM, RawMessage } from '../../shared/stream/raw-message';
import { readBundleBatch } from './bundle-reader';
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
  /** where to find it: its path on disk (read from there when it travels in a bundle), or a name for messages */
  where: string;
  /** true when `where` is its path on disk */
  onDisk: boolean;
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

/** The job's codec; a larger file has the higher claim on the pool (shared/stream/parallel.ts ChunkPlan). */
function codecOf(job: BackupJob__Output, pool: CodecPool, file: FileToSend): Codec {
  return { type: job.compress_type, level: job.compress_level, pool, priority: file.size };
}

/**
 * Where chunks read for the codec workers get their memory: the pool's ring, since each chunk
 * comes back from its worker once compressed, or (uncompressed) once sent; behind room for the
 * message header it is sent with when it is sent as it is (agent/transfer/upload.ts).
 */
function chunkMemory(pool: CodecPool): (n: number) => Buffer {
  return (n) => pool.ring.take(n + HEADROOM).subarray(HEADROOM);
}

function headerOf(jobId: string, job: BackupJob__Output, file: FileToSend): FileHeader {
  return {
    job_id: jobId, name: file.name, timestamp: file.mtime, mode: file.mode,
    user: userName(file.uid), group: groupName(file.gid), compress_type: job.compress_type,
  };
}

/**
 * The file's trailer. The server takes the SHA-1 of the stored bytes itself as they arrive (and
 * the TLS record layer already proves the transfer): repo_checksum is left empty, and so is
 * checksum when the file is stored uncompressed (the server's SHA-1 is then the original's).
 */
function trailerOf(c: StoredChecksums, pages: PageChecksumResult | undefined): { trailer: FileTrailer } {
  return { trailer: {
    size: c.original.size, checksum: c.original.checksum, repo_size: c.stored.size, repo_checksum: c.stored.checksum,
    checksum_page: pages ? pageTrailer(pages) : undefined,
  } };
}

function pagesOf(file: FileToSend, lsnLimit: bigint): PageSpec | undefined {
  return file.firstBlock === null ? undefined : { firstBlock: file.firstBlock, lsnLimit: lsnHalves(lsnLimit) };
}

/**
 * Files of at least this many bytes are read by the codec workers themselves, each its own chunk
 * (shared/stream/parallel.ts readAndEncode): the main thread then never touches their bytes.
 * Smaller ones are read here, where a file of one chunk costs one read and no thread hop.
 */
const WORKERS_READ = 4 * FRAME_SIZE;

function bytesOf(file: FileToSend, pool: CodecPool): FileBytes {
  return file.onDisk && file.size >= WORKERS_READ ? { path: file.where, alloc: chunkMemory(pool) } : { chunks: file.chunks(chunkMemory(pool)) };
}

/** Sends one file as its own repository object; its chunks are compressed by the pool's workers. */
export async function sendFile(ctx: AgentContext, job: BackupJob__Output, jobId: string, file: FileToSend, lsnLimit: bigint, pool: CodecPool): Promise<Sent> {
  const { checksums, pageResult } = await uploadChunks<FileUpload, PutFileResult__Output>((cb) => ctx.client.PutBackupFile(cb), {
    header: { header: headerOf(jobId, job, file) },
    toData: (data) => ({ data }),
    toTrailer: trailerOf,
  }, bytesOf(file, pool), codecOf(job, pool, file), pagesOf(file, lsnLimit));
  return { size: checksums.original.size, pageErrors: pageResult?.errors ?? [] };
}

/** A bundle's files go to the codec threads in batches of about this many original bytes (and at most BATCH_FILES). */
const BATCH_BYTES = 1024 * 1024;
const BATCH_FILES = 256;

function batchesOf(files: FileToSend[]): FileToSend[][] {
  const batches: FileToSend[][] = [];
  let bytes = 0;
  for (const f of files) {
    const last = batches[batches.length - 1];
    if (!last || bytes + f.size > BATCH_BYTES || last.length >= BATCH_FILES) {
      batches.push([f]);
      bytes = f.size;
    } else {
      last.push(f);
      bytes += f.size;
    }
  }
  return batches;
}

/**
 * Sends small files as one bundle (--bundle); null for a file gone since the listing. The codec
 * threads read, hash, page-check and compress a batch of its files, and encode the messages that
 * carry them, while the previous batch is sent: the main thread only writes those messages.
 */
export async function sendBundle(ctx: AgentContext, job: BackupJob__Output, jobId: string, files: FileToSend[], lsnLimit: bigint,
  pool: CodecPool): Promise<Array<Sent | null>> {
  const batches = batchesOf(files);
  const read = (batch: FileToSend[] | undefined) => {
    if (!batch) return undefined;
    const p = readBundleBatch(pool, { type: job.compress_type, level: job.compress_level, lsnLimit,
      files: batch.map((f) => ({
        path: f.where, size: f.size, firstBlock: f.firstBlock, name: f.name, mtime: f.mtime, mode: f.mode, user: userName(f.uid), group: groupName(f.gid),
      })) });
    p.catch(() => undefined); // awaited in turn; a failure must not surface early as "unhandled"
    return p;
  };
  const { value } = await upload<BundleUpload, PutBundleResult__Output, Array<Sent | null>>((cb) => ctx.client.PutBundle(cb),
    { header: { job_id: jobId } }, async (write) => {
      const sent: Array<Sent | null> = [];
      let ahead = read(batches[0]);
      for (let b = 0; b < batches.length; b++) {
        const { results, messages } = await ahead!;
        ahead = read(batches[b + 1]);
        for (const message of messages) await write(new RawMessage(message));
        for (const r of results) sent.push(r.gone ? null : { size: r.size, pageErrors: r.pageErrors });
      }
      return sent;
    }, () => undefined);
  return value;
}

function pageTrailer(r: PageChecksumResult) {
  return { valid: r.valid, error: r.errors.map(([first, last]) => ({ first, last })) };
}

export function fromDisk(f: ListedFile, pageCheck: PageCheck | null): FileToSend {
  return {
    name: f.name, mtime: f.mtime, mode: f.mode, uid: f.uid, gid: f.gid, size: f.size, where: f.absPath, onDisk: true,
    chunks: (alloc) => readFileChunks(f.absPath, f.size, alloc),
    firstBlock: pageCheck ? firstBlockOf(f.name, pageCheck.blocksPerSegment) : null,
  };
}

export function fromMemory(name: string, text: string, like: { uid: number; gid: number }, mtime: number): FileToSend {
  const bytes = Buffer.from(text);
  return {
    name, mtime, mode: '0600', uid: like.uid, gid: like.gid, size: bytes.length, where: name, onDisk: false, firstBlock: null,
    chunks: async function* () { yield bytes; },
  };
}
