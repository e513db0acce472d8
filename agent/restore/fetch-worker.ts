import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { describeCallError, isServiceError, UserError } from '../../shared/errors';
import { isCodecError } from '../../shared/stream/codec-pool';
import { repositoryClient } from '../transfer/client';
import { dataChunks } from '../transfer/download';
import { fetchBatch } from './batch';
import { checkRestored, modeOf, undecodable } from './file';
import { FileReceiver, ReceiveScratch, UnframedError } from './receive';
import type { FetchFile, FetchReply, FetchTask, FetchWorkerData } from './fetch-pool';

/*
 * A restore worker thread: dials the repository server on a channel of its own and restores whole
 * files, each from the first received byte to the file's mode and time on disk: frames decoded,
 * SHA-1 taken, written, all here. The main thread only hands out files and counts them, so its
 * event loop is not in the data path, and with --process-max N the per-byte work of the
 * transport (TLS, HTTP/2, protobuf, the buffers' garbage) spreads over N cores.
 */
const { server, tls } = workerData as FetchWorkerData;
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

async function run(task: FetchTask): Promise<void> {
  const { stanza, label, files } = task;
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
    () => parentPort!.postMessage({ id: task.id } satisfies FetchReply),
    (err: unknown) => parentPort!.postMessage({ id: task.id, error: failure(task, err), unframed: err instanceof UnframedError } satisfies FetchReply),
  );
});
