import fs from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { encodeFrame, FRAME_SIZE } from '../../shared/stream/frame-codec';
import { transferable } from '../../shared/stream/codec-pool';
import type { WalTask, WalReply } from './wal-threads';

/**
 * A WAL thread (wal-threads.ts): packs whole WAL files. It reads the file, takes the SHA-1 of
 * the original bytes (the repository names the file by it) and compresses each FRAME_SIZE chunk
 * into its own frame, all here, and hands the frames to the main thread as they are ready (moved, not
 * copied), at most `window` ahead of what the main thread has sent. A 16 MiB segment thus costs
 * the main thread a few messages instead of its reading, hashing and a round trip per chunk,
 * and the segments in flight each keep a core busy.
 */

interface Job {
  credits: number;
  cancelled: boolean;
  wake?: () => void;
}

const jobs = new Map<number, Job>();
// chunks are read into this one buffer when what is sent is new memory (a frame); a chunk sent
// as it is (compress-type none, uncompressed on the wire) gets memory of its own
const readBuffer = Buffer.allocUnsafeSlow(FRAME_SIZE);

const post = (reply: WalReply, transfer: ArrayBuffer[] = []) => parentPort!.postMessage(reply, transfer);

function readChunk(fd: number, into: Buffer): number {
  let filled = 0;
  while (filled < into.length) {
    const n = fs.readSync(fd, into, filled, into.length - filled, null);
    if (n === 0) break;
    filled += n;
  }
  return filled;
}

const digest = (hash: Hash, size: number) => ({ size, checksum: hash.digest('hex') });

async function pack(task: Extract<WalTask, { op: 'pack' }>, job: Job): Promise<void> {
  const fd = fs.openSync(task.file, 'r');
  try {
    const none = task.type === 'none';
    // compress-type none stores the original bytes; they may still travel compressed (wire)
    const wire = none ? task.wire : undefined;
    const original = createHash('sha1');
    let originalSize = 0;
    let storedSize = 0;
    for (let first = true; ; first = false) {
      const buffer = none && !wire ? Buffer.allocUnsafeSlow(FRAME_SIZE) : readBuffer;
      const n = readChunk(fd, buffer);
      // an empty file is one empty chunk, so it is still one (empty) frame; the file is read to its end as it is now
      if (n === 0 && !first) break;
      const chunk = buffer.subarray(0, n);
      original.update(chunk);
      originalSize += n;
      const frame = wire ? encodeFrame(wire.type, wire.level, chunk) : none ? chunk : encodeFrame(task.type, task.level, chunk);
      storedSize += none ? n : frame.length;
      while (job.credits === 0 && !job.cancelled) await new Promise<void>((resolve) => { job.wake = resolve; });
      if (job.cancelled) return;
      job.credits--;
      post({ id: task.id, frame }, transferable(frame));
      if (n < FRAME_SIZE) break;
    }
    const o = digest(original, originalSize);
    // compressed bytes are not hashed here: the server takes the SHA-1 of what it receives (and only
    // compares the size with the trailer's, as for a backup's files); stored bytes that are the
    // original ones have the original's
    post({ id: task.id, done: { original: o, stored: none ? { ...o, size: storedSize } : { size: storedSize, checksum: '' } } });
  } finally {
    fs.closeSync(fd);
  }
}

parentPort!.on('message', (task: WalTask) => {
  if (task.op === 'warm') {
    const none = { size: 0, checksum: '' };
    try {
      encodeFrame(task.type, task.level, Buffer.alloc(1)); // loads the codec's native module
      post({ id: task.id, done: { original: none, stored: none } });
    } catch (err) {
      post({ id: task.id, error: (err as Error).message });
    }
    return;
  }
  if (task.op !== 'pack') {
    const job = jobs.get(task.id);
    if (!job) return;
    if (task.op === 'credit') job.credits++;
    else job.cancelled = true;
    job.wake?.();
    job.wake = undefined;
    return;
  }
  const started: Job = { credits: task.window, cancelled: false };
  jobs.set(task.id, started);
  pack(task, started).catch((err: Error & { code?: string }) => post({ id: task.id, error: err.message, code: err.code }))
    .finally(() => jobs.delete(task.id));
});
