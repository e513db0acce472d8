import { parentPort } from 'node:worker_threads';
import { decodeFrame, encodeFrame } from './frame-codec';
import { transferable, type CodecReply, type CodecTask } from './codec-pool';

/**
 * A codec thread: compresses or decompresses one frame per message with the codec's synchronous
 * API (zlib's asynchronous API left cores idle), handing buffers back without copying them.
 */
parentPort!.on('message', (task: CodecTask) => {
  let reply: CodecReply;
  try {
    const input = Buffer.from(task.data.buffer, task.data.byteOffset, task.data.byteLength);
    const data = task.op === 'encode' ? encodeFrame(task.type, task.level, input) : decodeFrame(task.type, input);
    reply = { id: task.id, data };
  } catch (err) {
    reply = { id: task.id, error: (err as Error).message, code: (err as { code?: string }).code };
  }
  parentPort!.postMessage(reply, reply.data ? transferable(reply.data) : []);
});
