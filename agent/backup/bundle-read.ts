import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { encodeFrame, FRAME_SIZE } from '../../shared/stream/frame-codec';
import { PageChecksumFilter } from '../../shared/stream/page-checksum';
import { transferable } from '../../shared/stream/transferable';
import { BundleMessages } from './bundle-message';
import type { BundleBatchRead, BundleReadTask, ReadFileResult } from './bundle-reader';

/*
 * Memory this thread reads files into and compresses frames into, used again for every file: a
 * file's bytes only pass through on their way into the batch's messages (which copy them).
 */
let readBuffer = Buffer.allocUnsafeSlow(64 * 1024);
let frameBuffer: Buffer | undefined;

/** The whole file as it is now (it may have grown since the listing: read to the end), in readBuffer; null when it is gone. */
function readWhole(file: string, sizeHint: number): Buffer | null {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    if (readBuffer.length < sizeHint + 1) readBuffer = Buffer.allocUnsafeSlow(sizeHint + 1);
    let filled = 0;
    for (;;) {
      if (filled === readBuffer.length) {
        const bigger = Buffer.allocUnsafeSlow(readBuffer.length * 2);
        readBuffer.copy(bigger, 0, 0, filled);
        readBuffer = bigger;
      }
      const n = fs.readSync(fd, readBuffer, filled, readBuffer.length - filled, null);
      if (n === 0) return readBuffer.subarray(0, filled);
      filled += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** A frame of `chunk` as stored: into frameBuffer (copied into the message before the next one), or the chunk itself uncompressed. */
function frameOf(task: BundleReadTask, chunk: Buffer): Buffer {
  if (task.type === 'none') return chunk;
  frameBuffer ??= Buffer.allocUnsafeSlow(FRAME_SIZE + 64 * 1024);
  return encodeFrame(task.type, task.level, chunk, frameBuffer);
}

/**
 * One file: SHA-1 and size of the original, its pages checked, its frames (FRAME_SIZE of
 * original bytes each, as the chunked path cuts them) added to the batch's messages. Stored
 * uncompressed, the server's SHA-1 of what it stores is the original's: none is taken here.
 */
function readFile(task: BundleReadTask, i: number, out: BundleMessages): ReadFileResult {
  const f = task.files[i];
  const data = readWhole(f.path, f.size);
  if (data === null) return { gone: true, size: 0, pageErrors: [] };
  const pages = f.firstBlock === null ? undefined : new PageChecksumFilter(f.firstBlock, task.lsnLimit);
  pages?.update(data);
  pages?.finish();
  const pageResult = pages?.result();
  const checksum = task.type === 'none' ? '' : createHash('sha1').update(data).digest('hex');
  const header = { name: f.name, timestamp: f.mtime, mode: f.mode, user: f.user, group: f.group, compressType: task.type };
  let repoSize = 0;
  let offset = 0;
  do {
    const frame = frameOf(task, data.subarray(offset, offset + FRAME_SIZE));
    repoSize += frame.length;
    offset += FRAME_SIZE;
    const last = offset >= data.length;
    out.add(offset === FRAME_SIZE ? header : undefined, frame,
      last ? { size: data.length, checksum, repoSize, pages: pageResult } : undefined);
  } while (offset < data.length);
  return { gone: false, size: data.length, pageErrors: pageResult?.errors ?? [] };
}

/**
 * A batch of a bundle's small files, on a thread of the backup's CodecPool (its RunTask; see
 * bundle-reader.ts): open, read, close, SHA-1, page checksums, compression and the messages
 * that carry them, off the main thread, which only writes what comes back. Synchronous calls
 * are right here: the thread does nothing else meanwhile, and several threads overlap their
 * disk waits. A failure (a file that cannot be read) throws, with its code.
 */
export function runTask(payload: unknown): { result: BundleBatchRead; transfer: ArrayBuffer[] } {
  const task = payload as BundleReadTask;
  const out = new BundleMessages();
  const results = task.files.map((_f, i) => readFile(task, i, out));
  const messages = out.finish();
  return { result: { results, messages }, transfer: [...new Set(messages.flatMap((b) => transferable(b)))] };
}
