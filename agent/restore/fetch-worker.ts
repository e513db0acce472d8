import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { parentPort, workerData } from 'node:worker_threads';
import { serveMemoryProbe } from '../../shared/thread-memory';
import { describeCallError, isServiceError, UserError } from '../../shared/errors';
import { isCodecError } from '../../shared/stream/codec-pool';
import { RawDownloadClient } from '../transfer/raw-download';
import { dataChunks } from '../transfer/download';
import { fetchBatch } from './batch';
import { checkRestored, modeOf, undecodable } from './file';
import { FileReceiver, ReceiveScratch, UnframedError } from './receive';
import { DIRECT_MIN, FileWriter, openForWrite, readToEnd } from './file-writer';
import { WriteLock } from './write-lock';
import type { FileChunk__Output } from '../../shared/generated/pgrepo/v1/FileChunk';
import { syncFile } from '../../shared/fs-sync';
import type { FetchFile, FetchReply, FetchTask, FetchWorkerData, FlushRequest, PartWritten } from './fetch-pool';

/*
 * A restore worker thread: dials the repository server on a channel of its own and restores whole
 * files, each from the first received byte to the file's mode and time on disk: frames decoded,
 * SHA-1 taken, written, all here. The main thread only hands out files and counts them, so its
 * event loop is not in the data path, and with --process-max N the per-byte work of the
 * transport (TLS, HTTP/2, protobuf, the buffers' garbage) spreads over N cores.
 */
const { server, tls, writeLock } = workerData as FetchWorkerData;
const partWrites = new WriteLock(writeLock);
serveMemoryProbe(workerData);
// Buffers arrive as plain Uint8Arrays
const asBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
// the two download calls on node:http2, each message received into memory reused for the call (raw-download.ts)
const client = new RawDownloadClient(server, { ...tls, cert: asBuffer(tls.cert), key: asBuffer(tls.key), ca: asBuffer(tls.ca) });
const scratch = new ReceiveScratch();

/** Files at least this large are fsynced as soon as they are written; smaller ones are made durable all together at the end (syncfs). */
const FLUSH_SOON_MIN = 1024 * 1024;
const flushing = new Set<Promise<void>>();
let flushFailure: UserError | undefined;

/**
 * Starts the fsync of a large file just written, on the thread pool, and goes on: the disk writes
 * it back while the rest of the restore arrives, instead of all of it at the end, before
 * pg_control (pgBackRest fsyncs each file as it finishes it too). FlushRequest waits for them.
 */
function flushSoon(f: FetchFile): void {
  if (f.durable || f.file.size < FLUSH_SOON_MIN) return;
  const done = syncFile(f.dest).catch((err: Error) => {
    flushFailure ??= new UserError(`cannot make restored file ${f.dest} durable: ${err.message}`);
  }).finally(() => flushing.delete(done));
  flushing.add(done);
}

async function flushed(): Promise<void> {
  while (flushing.size > 0) await Promise.all(flushing);
  if (flushFailure) throw flushFailure;
}

/** The SHA-1 of a file in parts as far as part 0 took it, by destination, until the file's verify task carries it on. */
const begun = new Map<string, { hash: Hash; size: number }>();

// the process's umask (a worker can read it, not set it)
const umask = process.umask();

/** A file open for writing and its writer; close() gives everything back, however the writing ended. */
interface Output {
  fd: number;
  writer: FileWriter;
  close(): void;
}

/**
 * Opens a file with `open` and makes its writer from `position`: with direct I/O (file-writer.ts)
 * when `direct` is wanted, aligned memory can be had, and the file system takes it.
 */
function output(open: (direct: boolean) => { fd: number; direct: boolean }, dest: string, position: number, direct: boolean, lock?: WriteLock): Output {
  const staging = direct ? scratch.takeStaging() : undefined;
  const giveBack = (b?: Buffer) => {
    if (b) scratch.giveStaging(b);
  };
  let opened;
  try {
    opened = open(staging !== undefined);
  } catch (err) {
    giveBack(staging);
    throw err;
  }
  const { fd } = opened;
  const used = opened.direct ? staging : undefined;
  if (!used) giveBack(staging);
  const writer = new FileWriter(fd, position, used && { path: dest, staging: used }, lock);
  return {
    fd,
    writer,
    close: () => {
      writer.close();
      giveBack(used);
      fs.closeSync(fd);
    },
  };
}

/**
 * Opens `dest` for writing from byte 0. `chmod`: whether the file still needs its mode set; not
 * when open(2) created it with that mode (as for most files of a restore, one syscall fewer each).
 */
function create(dest: string, mode: number, direct: boolean): Output & { chmod: boolean } {
  let chmod = (mode & ~umask) !== mode || (mode & ~0o777) !== 0;
  const out = output((d) => {
    try {
      return openForWrite(dest, 'wx', mode, d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      // there already (--delta, --force): truncated, keeping its mode until set
      chmod = true;
      return openForWrite(dest, 'w', mode, d);
    }
  }, dest, 0, direct);
  return { ...out, chmod };
}

async function receive(messages: AsyncIterable<{ data?: Buffer }>, label: string, f: FetchFile): Promise<void> {
  const { file, dest, durable } = f;
  const out = create(dest, modeOf(file), file.size >= DIRECT_MIN && !durable);
  let complete = false;
  const receiver = new FileReceiver(out.writer, file.compress_type, scratch);
  try {
    let sums;
    try {
      for await (const data of dataChunks(messages)) receiver.push(data);
      sums = receiver.finish();
    } catch (err) {
      if (isCodecError(err)) throw undecodable(file, label, err);
      throw err;
    }
    checkRestored(file, label, sums);
    if (out.chmod) fs.fchmodSync(out.fd, modeOf(file));
    fs.futimesSync(out.fd, file.timestamp, file.timestamp);
    if (durable) fs.fsyncSync(out.fd);
    complete = true;
  } finally {
    receiver.release();
    out.close();
    // a file cut short must not stay behind looking restored (a --force delta goes by size and time)
    if (!complete) fs.rmSync(dest, { force: true });
  }
  flushSoon(f);
}

type Done = Omit<FetchReply, 'id'> | void;

async function run(task: FetchTask): Promise<Done> {
  const { stanza, label, files } = task;
  if (task.part) return receivePart(task, files[0]);
  if (task.verify) return verifyWhole(label, files[0], task.verify.stored);
  if (task.batch) {
    await fetchBatch(client, stanza, label, files.map((f) => ({ ...f, name: f.file.name })), (f, messages) => receive(messages, label, f));
    return;
  }
  const f = files[0];
  const call = client.GetBackupFile({ stanza, label, name: f.file.name });
  try {
    await receive(call, label, f);
  } catch (err) {
    call.cancel();
    throw err;
  }
}

/**
 * One part of a large file (split.ts): its frames fetched, decoded and written at their offset;
 * part 0 also begins the file's SHA-1 (kept in `begun`). Returns the stored bytes received and
 * where the original bytes went.
 */
async function receivePart(task: FetchTask, f: FetchFile): Promise<Done> {
  const { index, parts } = task.part!;
  const call = client.GetBackupFile({ stanza: task.stanza, label: task.label, name: f.file.name, part: index, parts });
  let out: Output | undefined;
  let receiver: FileReceiver | undefined;
  const hash = index === 0 ? createHash('sha1') : undefined;
  try {
    try {
      let offset = 0;
      // the first message says where the part's original bytes start
      for await (const m of call as AsyncIterable<FileChunk__Output>) {
        if (!receiver) {
          offset = m.original_offset;
          out = output((direct) => openForWrite(f.dest, 'r+', 0, direct), f.dest, offset, true, partWrites);
          receiver = new FileReceiver(out.writer, f.file.compress_type, scratch, { hash });
        }
        if (m.data.length > 0) receiver.push(m.data);
      }
      if (!receiver) throw new UserError(`the repository server sent nothing of part ${index + 1} of ${parts} of file ${f.file.name}`);
      const sums = receiver.finish();
      const written: PartWritten = { offset, size: sums.original.size };
      if (hash) begun.set(f.dest, { hash, size: written.size });
      return { stored: sums.storedSize, written };
    } catch (err) {
      if (isCodecError(err)) throw undecodable(f.file, task.label, err);
      throw err;
    }
  } catch (err) {
    call.cancel();
    throw err;
  } finally {
    receiver?.release();
    out?.close();
  }
}

/**
 * A file written in parts (split.ts checked that they lie end to end from byte 0): its SHA-1 over
 * the original bytes in order, carried on from where part 0 (received on this worker) took it, by
 * reading the later parts back from the file (with direct I/O, as they were written); checked;
 * given its mode and time.
 */
function verifyWhole(label: string, f: FetchFile, stored: number): void {
  const { file, dest, durable } = f;
  const fd = fs.openSync(dest, 'r+');
  const from = begun.get(dest);
  begun.delete(dest);
  const hash = from?.hash ?? createHash('sha1');
  const staging = scratch.takeStaging();
  try {
    const size = readToEnd(dest, fd, from?.size ?? 0, staging, scratch.out, (b) => hash.update(b));
    checkRestored(file, label, { original: { size, checksum: hash.digest('hex') }, storedSize: stored });
    fs.fchmodSync(fd, modeOf(file));
    fs.futimesSync(fd, file.timestamp, file.timestamp);
    if (durable) fs.fsyncSync(fd);
  } finally {
    if (staging) scratch.giveStaging(staging);
    fs.closeSync(fd);
  }
  flushSoon(f);
}

/** The server cannot cut the file into parts (its stored bytes are not all delimited frames): it is fetched whole instead. */
const unsplittable = (task: FetchTask, err: unknown) => task.part !== undefined && isServiceError(err) && err.code === grpc.status.FAILED_PRECONDITION;

function failure(task: FetchTask, err: unknown): FetchReply['error'] {
  if (err instanceof UnframedError) return { message: err.message, code: err.code };
  const code = (err as { code?: unknown }).code?.toString() ?? '';
  if (err instanceof UserError) return { message: err.message, code };
  const what = task.batch ? `${task.files.length} small files of backup ${task.label} (from ${task.files[0].file.name})` : `file ${task.files[0].file.name} of backup ${task.label}`;
  const why = isServiceError(err) ? describeCallError(err, server) : (err as Error).message ?? String(err);
  return { message: `cannot restore ${what}: ${why}`, code };
}

parentPort!.on('message', (task: FetchTask | FlushRequest) => {
  if ('flush' in task) {
    flushed().then(
      () => parentPort!.postMessage({ id: task.id } satisfies FetchReply),
      (err: UserError) => parentPort!.postMessage({ id: task.id, error: { message: err.message, code: '' } } satisfies FetchReply),
    );
    return;
  }
  run(task).then(
    (done) => parentPort!.postMessage({ ...(done ?? {}), id: task.id } satisfies FetchReply),
    (err: unknown) => parentPort!.postMessage({ id: task.id, error: failure(task, err), unframed: err instanceof UnframedError || unsplittable(task, err) } satisfies FetchReply),
  );
});
