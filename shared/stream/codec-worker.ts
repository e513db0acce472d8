import { parentPort, workerData } from 'node:worker_threads';
import { serveMemoryProbe } from '../thread-memory';
import { decodeFrame, encodeFrame } from './frame-codec';
import { transferable, type CodecReply, type CodecTask } from './codec-pool';

/** The task's buffers whose memory the result does not use: they go back for reuse. */
function spareOf(task: CodecTask, result?: Uint8Array): Uint8Array[] {
  return [task.data, task.out].filter((b): b is Uint8Array => b !== undefined && b.buffer !== result?.buffer && transferable(b).length > 0);
}

/**
 * A codec thread: compresses or decompresses one frame per message with the codec's synchronous
 * API (zlib's asynchronous API left cores idle), handing buffers back without copying them.
 */
serveMemoryProbe(workerData);
parentPort!.on('message', (task: CodecTask) => {
  let reply: CodecReply;
  try {
    const input = Buffer.from(task.data.buffer, task.data.byteOffset, task.data.byteLength);
    const out = task.out && Buffer.from(task.out.buffer, task.out.byteOffset, task.out.byteLength);
    const data = task.op === 'encode' ? encodeFrame(task.type, task.level, input) : decodeFrame(task.type, input, out);
    reply = { id: task.id, data, spare: spareOf(task, data) };
  } catch (err) {
    reply = { id: task.id, error: (err as Error).message, code: (err as { code?: string }).code, spare: spareOf(task) };
  }
  const moved = [reply.data, ...(reply.spare ?? [])].flatMap((b) => (b ? transferable(b) : []));
  parentPort!.postMessage(reply, [...new Set(moved)]);
});
