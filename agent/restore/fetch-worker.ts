import { createHash } from 'node:crypto';
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { parentPort, workerData } from 'node:worker_threads';
import { serveMemoryProbe } from '../../shared/thread-memory';
import { describeCallError, isServiceError, UserError } from '../../shared/errors';
import { isCodecError } from '../../shared/stream/codec-pool';
import { repositoryClient } from '../transfer/client';
import { dataChunks } from '../transfer/download';
import { fetchBatch } from './batch';
import { checkRestored, modeOf, undecodable } from './file';
import { FileReceiver, ReceiveScratch, UnframedError } from './receive';
import type { FileChunk__Output } from '../../shared/generated/pgrepo/v1/FileChunk';
import type { FetchFile, FetchReply, FetchTask, FetchWorkerData } from './fetch-pool';

/*
 * A restore worker thread: dials the repository server on a channel of its own and restores whole
 * files, each from the first received byte to the file's mode and time on disk: frames decoded,
 * SHA-1 taken, written, all here. The main thread only hands out files and counts them, so its
 * event loop is not in the data path, and with --process-max N the per-byte work of the
 * transport (TLS, HTTP/2, protobuf, the buffers' garbage) spreads over N cores.
 */
const { server, tls } = workerData as FetchWorkerData;
serveMemoryProbe(workerData);
// Buffers arrive as plain Uint8Arrays: grpc-js wants Buffers
const asBuffer = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
const client = repositoryClient(server, { ...tls, cert: asBuffer(tls.cert), key: asBuffer(tls.key), ca: asBuffer(tls.ca) });
const scratch = new ReceiveScratch();

async function receive(messages: AsyncIterable<{ data?: Buffer }>, label: string, f: FetchFile): Promise<void> {
  const { file, dest, durable } = f;
  const fd = fs.openSync(dest, 'w', modeOf(file));
  let complete = false;
  const receiver = new FileReceiver(fd, file.compress_type, scratch);
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
    fs.fchmodSync(fd, modeOf(file));
    fs.futimesSync(fd, file.timestamp, file.timestamp);
    if (durable) fs.fsyncSync(fd);
    complete = true;
  } finally {
    receiver.release();
    fs.closeSync(fd);
    // a file cut short must not stay behind looking restored (a --force delta goes by size and time)
    if (!complete) fs.rmSync(dest, { force: true });
  }
}

async function run(task: FetchTask): Promise<number | void> {
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

/** One part of a large file (split.ts): its frames fetched, decoded and written at their offset. Returns the stored bytes received. */
async function receivePart(task: FetchTask, f: FetchFile): Promise<number> {
  const { index, parts } = task.part!;
  const call = client.GetBackupFile({ stanza: task.stanza, label: task.label, name: f.file.name, part: index, parts });
  const fd = fs.openSync(f.dest, 'r+');
  let receiver: FileReceiver | undefined;
  try {
    try {
      // the first message says where the part's original bytes start
      for await (const m of call as AsyncIterable<FileChunk__Output>) {
        receiver ??= new FileReceiver(fd, f.file.compress_type, scratch, m.original_offset);
        if (m.data.length > 0) receiver.push(m.data);
      }
      if (!receiver) throw new UserError(`the repository server sent nothing of part ${index + 1} of ${parts} of file ${f.file.name}`);
      return receiver.finish().storedSize;
    } catch (err) {
      if (isCodecError(err)) throw undecodable(f.file, task.label, err);
      throw err;
    }
  } catch (err) {
    call.cancel();
    throw err;
  } finally {
    receiver?.release();
    fs.closeSync(fd);
  }
}

/** A file written in parts: its SHA-1 over the original bytes, in order, from the file itself; checked; given its mode and time. */
function verifyWhole(label: string, f: FetchFile, stored: number): void {
  const { file, dest, durable } = f;
  const fd = fs.openSync(dest, 'r+');
  try {
    const hash = createHash('sha1');
    let size = 0;
    for (let n; (n = fs.readSync(fd, scratch.out, 0, scratch.out.length, size)) > 0; size += n) hash.update(scratch.out.subarray(0, n));
    checkRestored(file, label, { original: { size, checksum: hash.digest('hex') }, storedSize: stored });
    fs.fchmodSync(fd, modeOf(file));
    fs.futimesSync(fd, file.timestamp, file.timestamp);
    if (durable) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
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

parentPort!.on('message', (task: FetchTask) => {
  run(task).then(
    (stored) => parentPort!.postMessage({ id: task.id, stored: stored ?? undefined } satisfies FetchReply),
    (err: unknown) => parentPort!.postMessage({ id: task.id, error: failure(task, err), unframed: err instanceof UnframedError || unsplittable(task, err) } satisfies FetchReply),
  );
});
