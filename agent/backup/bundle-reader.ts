import type { CodecPool } from '../../shared/stream/codec-pool';
import type { BlockRange } from '../../shared/stream/page-checksum';
import { workerScript } from '../../shared/worker-script';

export interface BundleReadTask {
  type: string;
  level: number;
  lsnLimit: bigint;
  /** where to read each file, and its manifest header */
  files: Array<{ path: string; size: number; firstBlock: number | null; name: string; mtime: number; mode: string; user: string; group: string }>;
}

/** What a codec thread made of one bundled file. */
export interface ReadFileResult {
  /** dropped since the listing: nothing to send */
  gone: boolean;
  size: number;
  pageErrors: BlockRange[];
}

/** A batch read, as it comes from the thread: what became of each file, and the BundleUpload messages that carry them (bundle-message.ts). */
export interface BundleBatchRead {
  results: ReadFileResult[];
  messages: Uint8Array[];
}

/** A batch read, on the main thread. */
export interface BundleRead {
  results: ReadFileResult[];
  messages: Buffer[];
}

let script: string | undefined;

/**
 * Reads, hashes, page-checks and compresses a batch of a bundle's small files, and encodes the
 * messages that carry them, on one of the backup's codec threads (bundle-read.ts): a cluster of
 * 100,000 small relations is 100,000 opens, reads and closes, and on the main thread they waited
 * for the disk one at a time. The codec threads do it, not threads of their own: each thread is
 * a V8 isolate of ~10 MiB, and at the peak of a bundled backup large files and bundles are both
 * in flight, so two sets of process-max threads were both alive.
 */
export async function readBundleBatch(pool: CodecPool, task: BundleReadTask): Promise<BundleRead> {
  script ??= workerScript(__dirname, 'bundle-read.js');
  const { results, messages } = await pool.run<BundleBatchRead>(script, task);
  return { results, messages: messages.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)) };
}
