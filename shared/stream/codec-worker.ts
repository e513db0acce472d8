import { parentPort, workerData } from 'node:worker_threads';
import { serveMemoryProbe } from '../thread-memory';
import { transferable, type CodecReply, type RunTask, type TaskModule } from './codec-pool';
import { runCodecTask, type CodecTask } from './codec-task';

/** The task's buffers whose memory the result does not use: they go back for reuse. */
function spareOf(task: CodecTask, result?: Uint8Array, input?: Uint8Array): Uint8Array[] {
  return [task.data, task.out].filter((b): b is Uint8Array => b !== undefined && b.buffer !== result?.buffer && b.buffer !== input?.buffer && transferable(b).length > 0);
}

function codecReply(task: CodecTask): { reply: CodecReply; moved: ArrayBuffer[] } {
  let reply: CodecReply;
  try {
    const { data, badBlocks, sha1, input, read } = runCodecTask(task);
    reply = { id: task.id, data, badBlocks, sha1, input, read, spare: spareOf(task, data, input) };
  } catch (err) {
    reply = { id: task.id, error: (err as Error).message, code: (err as { code?: string }).code, spare: spareOf(task) };
  }
  return { reply, moved: [reply.data, reply.input, ...(reply.spare ?? [])].flatMap((b) => (b ? transferable(b) : [])) };
}

/** A RunTask: its module is loaded once, on first use, so a restore's threads never load a backup's modules. */
function runReply(task: RunTask): { reply: CodecReply; moved: ArrayBuffer[] } {
  try {
    const { result, transfer } = (require(task.module) as TaskModule).runTask(task.payload);
    return { reply: { id: task.id, result }, moved: transfer };
  } catch (err) {
    return { reply: { id: task.id, error: (err as Error).message, code: (err as { code?: string }).code }, moved: [] };
  }
}

/**
 * A codec thread: compresses or decompresses one frame per message with the codec's synchronous
 * API (zlib's asynchronous API left cores idle), with a backup chunk's page checks (and the
 * SHA-1 of a file that is one chunk), handing buffers back without copying them; and the pool's
 * other work (RunTask: a backup's bundled small files).
 */
serveMemoryProbe(workerData);
parentPort!.on('message', (task: CodecTask | RunTask) => {
  const { reply, moved } = task.op === 'run' ? runReply(task) : codecReply(task);
  parentPort!.postMessage(reply, [...new Set(moved)]);
});
