import { once } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import type { StoredChecksums } from '../../shared/stream/pipeline';
import { ByteCount, encodeChunks, hashed, readAndEncode } from '../../shared/stream/parallel';
import type { CodecResult } from '../../shared/stream/codec-task';
import type { Sha1Stream } from '../../shared/stream/sha1-thread';
import type { CodecPool } from '../../shared/stream/codec-pool';
import { RING_BUFFER_SIZE } from '../../shared/stream/buffer-ring';
import { addBlock, type BlockRange, type LsnHalves, type PageChecksumResult } from '../../shared/stream/page-checksum';
import { bytesFieldInPlace, HEADROOM, RawMessage, UPLOAD_DATA_FIELD } from '../../shared/stream/raw-message';

const CANCELLED = 1;

/** Chunks of one file handed to the hash thread and not yet hashed (README, Memory). */
const HASH_AHEAD = 2;

/** Messages (1 MiB frames) one upload may have written but not yet handed to HTTP/2. */
const WRITES_QUEUED = 2;

type OpenCall<M, R> = (callback: (err: grpc.ServiceError | null, res?: R) => void) => grpc.ClientWritableStream<M>;

/** Writes one message (honouring back-pressure); `onWritten` once grpc-js has taken it (its memory is free again). */
export type Write<M> = (msg: M | RawMessage, onWritten?: () => void) => Promise<void>;

interface UploadMessages<M> {
  header: M;
  toData: (chunk: Buffer) => M;
  toTrailer: (c: StoredChecksums, pages: PageChecksumResult | undefined) => M;
}

/** How the pool compresses a file: compress-type, level, and the worker threads. */
export interface Codec {
  type: string;
  level: number;
  pool: CodecPool;
  /** the file's claim on the pool when files wait for it (shared/stream/parallel.ts ChunkPlan) */
  priority?: number;
}

/** A relation file's pages to validate on the way: its first block number and the backup's start LSN. */
export interface PageSpec {
  firstBlock: number;
  lsnLimit: LsnHalves;
}

/**
 * One client-streaming upload: `header`, then what `body` writes (each write honours
 * back-pressure). Resolves with the server's answer once it has made the upload durable; if the
 * server gives up early, the body stops instead of waiting for a drain that never comes.
 */
export async function upload<M, R, T>(open: OpenCall<M, R>, header: M, body: (write: Write<M>) => Promise<T>,
  abort: () => void): Promise<{ result: R; value: T }> {
  let call!: grpc.ClientWritableStream<M | RawMessage>;
  const result = new Promise<R>((resolve, reject) => {
    call = open((err, res) => (err ? reject(err) : resolve(res as R))) as grpc.ClientWritableStream<M | RawMessage>;
  });
  const failed = result.then(() => new Promise<never>(() => undefined));
  failed.catch(() => undefined);
  // grpc-js queues up to 16 messages per call before write() says to wait: 16 MiB for every
  // file in flight. A write is waited for once WRITES_QUEUED newer ones are behind it instead.
  const queued: Promise<void>[] = [];
  const write: Write<M> = async (msg, onWritten) => {
    let written!: () => void;
    queued.push(new Promise<void>((resolve) => { written = resolve; }));
    const drained = call.write(msg, () => {
      onWritten?.();
      written();
    }) ? undefined : once(call, 'drain');
    drained?.catch(() => undefined); // awaited below; the call's own error surfaces through `failed`
    if (queued.length > WRITES_QUEUED) await Promise.race([queued.shift()!, failed]);
    if (drained) await Promise.race([drained, failed]);
  };
  call.write(header);
  try {
    const value = await Promise.race([body(write), failed]);
    call.end();
    return { result: await result, value };
  } catch (err) {
    call.cancel();
    abort();
    // the server's reason, when it has one, is more useful than the local "cancelled"
    const serverErr = await result.then(() => undefined, (e: grpc.ServiceError) => e);
    throw serverErr && serverErr.code !== CANCELLED ? serverErr : err;
  }
}

/** The chunks of `source`, and whether there is more than one (known before the first is handed on). */
async function peekOne(source: AsyncIterator<Buffer>): Promise<{ chunks: AsyncIterable<Buffer>; single: boolean }> {
  const first = await source.next();
  const second = first.done ? first : await source.next();
  const chunks = async function* () {
    if (first.done) return;
    yield first.value;
    if (second.done) return;
    yield second.value;
    for (let n = await source.next(); !n.done; n = await source.next()) yield n.value;
  };
  return { chunks: chunks(), single: second.done === true };
}

/**
 * Writes one file's frames and returns its checksums and page check results. The per-byte work
 * is done by the pool's workers, with the compression of each chunk: page checks, and the SHA-1
 * of a file of one chunk. A longer file's chunks come back with their frames and go, in order (a
 * hash cannot be split over threads), to the pool's hash thread, so the main thread never reads
 * the bytes: for a backup's largest file it is the critical path. Uncompressed, the original is what the server stores, and the server's
 * SHA-1 of it (taken anyway) is recorded as both: the agent sends no checksum of its own. Frames
 * in the pool's buffers go out as messages written around them (RawMessage), and their memory
 * goes back to the pool once grpc-js has taken them.
 */
async function writeFrames<M>(write: Write<M>, toData: (chunk: Buffer) => M, source: Bytes, codec: Codec,
  pages?: PageSpec): Promise<{ checksums: StoredChecksums; pageResult?: PageChecksumResult }> {
  const compressed = codec.type !== 'none';
  const plan = { type: codec.type, level: codec.level, pages, headroom: HEADROOM, priority: codec.priority };
  let sha1: Sha1Stream | undefined;
  let frames: AsyncGenerator<CodecResult>;
  const original = new ByteCount();
  if ('path' in source) {
    // a longer file's chunks come back from their workers with their frames, in order, to the hash thread
    sha1 = compressed ? codec.pool.sha1.open(HASH_AHEAD) : undefined;
    frames = readAndEncode(source.path, { ...plan, keepInput: sha1 !== undefined }, codec.pool, source.alloc);
  } else {
    const { chunks, single } = await peekOne(source.chunks);
    sha1 = compressed && !single ? codec.pool.sha1.open(HASH_AHEAD) : undefined;
    frames = encodeChunks(hashed(chunks, original), { ...plan, hashInWorker: compressed && single, keepInput: sha1 !== undefined }, codec.pool);
  }
  source.started?.(frames);
  const stored = new ByteCount();
  const errors: BlockRange[] = [];
  let workerSha1 = '';
  try {
    for await (const r of frames) {
      for (const b of r.badBlocks ?? []) addBlock(errors, b);
      if (r.sha1) workerSha1 = r.sha1;
      if (r.read !== undefined) original.size += r.read;
      if (r.input) await sha1!.update(r.input, (b) => codec.pool.ring.give(b));
      stored.update(r.data);
      const frame = r.data;
      if (frame.byteOffset === HEADROOM && frame.buffer.byteLength === RING_BUFFER_SIZE) {
        // the pool's memory, laid out with room for the message header: no copy here
        await write(new RawMessage(bytesFieldInPlace(frame, UPLOAD_DATA_FIELD)), () => codec.pool.ring.give(frame));
      } else {
        await write(toData(frame));
      }
    }
  } catch (err) {
    sha1?.drop();
    throw err;
  }
  const o = original.result();
  const checksum = sha1 ? await sha1.digest() : workerSha1;
  return {
    checksums: { original: { size: o.size, checksum }, stored: stored.result() },
    pageResult: pages ? { valid: errors.length === 0, errors } : undefined,
  };
}

/**
 * A file's bytes: chunks in memory (read on this thread), or a file on disk whose chunks the
 * codec workers read themselves (shared/stream/parallel.ts readAndEncode; `alloc` gives each
 * chunk its memory).
 */
export type FileBytes = { chunks: AsyncIterable<Buffer> } | { path: string; alloc: (n: number) => Buffer };

type Bytes = ({ chunks: AsyncIterator<Buffer> } | { path: string; alloc: (n: number) => Buffer }) & { started?: (frames: AsyncGenerator<CodecResult>) => void };

/** Sends one file as its own repository object (PutBackupFile): header, frames, trailer with the checksums. */
export async function uploadChunks<M, R>(open: OpenCall<M, R>, msgs: UploadMessages<M>, bytes: FileBytes,
  codec: Codec, pages?: PageSpec): Promise<{ result: R; checksums: StoredChecksums; pageResult?: PageChecksumResult }> {
  const iterator = 'chunks' in bytes ? bytes.chunks[Symbol.asyncIterator]() : undefined;
  let frames: AsyncGenerator<CodecResult> | undefined;
  const source: Bytes = { ...(iterator ? { chunks: iterator } : bytes as { path: string; alloc: (n: number) => Buffer }), started: (f) => { frames = f; } };
  const { result, value } = await upload(open, msgs.header, async (write) => {
    const sent = await writeFrames(write, msgs.toData, source, codec, pages);
    await write(msgs.toTrailer(sent.checksums, sent.pageResult));
    return sent;
  }, () => {
    // whatever still reads the file stops (and a file the workers read is closed once their reads end)
    void iterator?.return?.(undefined).catch(() => undefined);
    void frames?.return(undefined).catch(() => undefined);
  });
  return { result, ...value };
}
