import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { serveMemoryProbe } from '../../shared/thread-memory';
import { encodeFrame, FRAME_SIZE } from '../../shared/stream/frame-codec';
import { PageChecksumFilter } from '../../shared/stream/page-checksum';
import { transferable } from '../../shared/stream/codec-pool';
import type { BundleReadReply, BundleReadTask, ReadFileResult } from './bundle-reader';

/** The whole file as it is now (it may have grown since the listing: read to the end); null when it is gone. */
function readWhole(file: string, sizeHint: number): Buffer | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    let buf = Buffer.allocUnsafeSlow(sizeHint + 1);
    let filled = 0;
    for (;;) {
      if (filled === buf.length) {
        const bigger = Buffer.allocUnsafeSlow(buf.length * 2);
        buf.copy(bigger, 0, 0, filled);
        buf = bigger;
      }
      const n = fs.readSync(fd, buf, filled, buf.length - filled, null);
      if (n === 0) return buf.subarray(0, filled);
      filled += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** One file: SHA-1 and size of the original, its pages checked, its frames (FRAME_SIZE of original bytes each, as the chunked path cuts them). */
function readFile(task: BundleReadTask, i: number): ReadFileResult {
  const f = task.files[i];
  const data = readWhole(f.path, f.size);
  if (data === null) return { gone: true, size: 0, checksum: '', frames: [], pageErrors: [] };
  const pages = f.firstBlock === null ? undefined : new PageChecksumFilter(f.firstBlock, task.lsnLimit);
  pages?.update(data);
  pages?.finish();
  const frames: Uint8Array[] = [];
  let offset = 0;
  do {
    const chunk = data.subarray(offset, offset + FRAME_SIZE);
    frames.push(task.type === 'none' ? chunk : encodeFrame(task.type, task.level, chunk));
    offset += FRAME_SIZE;
  } while (offset < data.length);
  return {
    gone: false, size: data.length, checksum: createHash('sha1').update(data).digest('hex'), frames,
    pageErrors: pages ? pages.result().errors : [], pageValid: pages ? pages.result().valid : undefined,
  };
}

/**
 * A backup's small-file reader: open, read, close, SHA-1, page checksums and compression of a
 * batch of small files, off the main thread, which only sends what comes back. Synchronous calls
 * are right here: this thread does nothing else, and several of them overlap their disk waits.
 */
serveMemoryProbe(workerData);
parentPort!.on('message', (task: BundleReadTask) => {
  let reply: BundleReadReply;
  try {
    reply = { id: task.id, results: task.files.map((_f, i) => readFile(task, i)) };
  } catch (err) {
    reply = { id: task.id, error: (err as Error).message, code: (err as NodeJS.ErrnoException).code };
  }
  const moved = (reply.results ?? []).flatMap((r) => r.frames.flatMap((b) => transferable(b)));
  parentPort!.postMessage(reply, [...new Set(moved)]);
});
