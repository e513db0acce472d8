/**
 * One set of threads for a backup's per-byte work: the codec threads (shared/stream/codec-pool.ts)
 * also read, hash, compress and encode the batches of bundled small files (CodecPool.run,
 * agent/backup/bundle-reader.ts + bundle-read.ts), queued with the chunks they compress. Real
 * threads, real files: both kinds complete side by side with their own results, a failure of
 * either kind reaches its caller (with what went wrong) and leaves the threads free for the
 * next task, and a closed pool fails what was still waiting.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { CodecPool, isCodecError } from '../../shared/stream/codec-pool';
import { decodeFrame, FRAME_SIZE } from '../../shared/stream/frame-codec';
import { loadProto } from '../../shared/proto';
import { readBundleBatch, type BundleReadTask } from '../../agent/backup/bundle-reader';
import type { BundleUpload__Output } from '../../shared/generated/pgrepo/v1/BundleUpload';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pgrepo-codec-pool-run-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');
const decode = (b: Buffer) => loadProto().pgrepo.v1.Repository.service.PutBundle.requestDeserialize(b) as BundleUpload__Output;

/** Half random, half zeros: compresses, but not to nothing. */
function content(size: number): Buffer {
  const b = Buffer.alloc(size);
  randomBytes(size >> 1).copy(b);
  return b;
}

/** `count` files of their own sizes on disk, and the batch task that reads them. */
function batch(tag: string, sizes: number[]): { task: BundleReadTask; data: Buffer[] } {
  const data = sizes.map(content);
  const files = data.map((d, i) => {
    const p = path.join(root, `${tag}-${i}`);
    fs.writeFileSync(p, d);
    return { path: p, size: d.length, firstBlock: null, name: `pg_data/base/1/${tag}-${i}`, mtime: 1_764_000_000, mode: '0600', user: 'postgres', group: 'postgres' };
  });
  return { task: { type: 'zst', level: 3, lsnLimit: 0n, files }, data };
}

/** Every file of a batch as its messages carry it: name, original bytes (decoded), and the trailer's size and SHA-1. */
function filesIn(messages: Buffer[]): Array<{ name: string; original: Buffer; size: number; checksum: string }> {
  const out: Array<{ name: string; frames: Buffer[]; size: number; checksum: string }> = [];
  for (const m of messages) {
    for (const piece of decode(m).files!.piece) {
      if (piece.header) out.push({ name: piece.header.name, frames: [], size: -1, checksum: '' });
      const f = out[out.length - 1];
      f.frames.push(decodeFrame('zst', piece.data));
      if (piece.trailer) Object.assign(f, { size: Number(piece.trailer.size), checksum: piece.trailer.checksum });
    }
  }
  return out.map((f) => ({ name: f.name, original: Buffer.concat(f.frames), size: f.size, checksum: f.checksum }));
}

describe('the codec threads read bundles too (process-max 2)', () => {
  const pool = new CodecPool(2);
  afterAll(() => pool.close());

  it('bundle batches and chunk compressions submitted together all complete, each with its own bytes', async () => {
    // batches of many small files, one with a file larger than a frame (several pieces, several messages)
    const batches = [0, 1, 2, 3, 4].map((n) => batch(`b${n}`, n === 2 ? [8192, FRAME_SIZE + 12345, 100] : Array.from({ length: 40 }, (_, i) => 8192 * (1 + (i % 3)))));
    const chunks = Array.from({ length: 8 }, () => content(FRAME_SIZE));
    const chunkSums = chunks.map(sha1);
    const reads = batches.map((b) => readBundleBatch(pool, b.task));
    const encodes = chunks.map((c) => pool.encodeChunk('zst', 3, c, { hash: true }));
    const [read, encoded] = await Promise.all([Promise.all(reads), Promise.all(encodes)]);

    encoded.forEach((r, i) => {
      expect(r.sha1).toBe(chunkSums[i]);
      expect(sha1(decodeFrame('zst', r.data))).toBe(chunkSums[i]);
    });
    read.forEach((r, n) => {
      const { task, data } = batches[n];
      expect(r.results).toEqual(data.map((d) => ({ gone: false, size: d.length, pageErrors: [] })));
      // each message is its own memory: those of earlier batches are intact after later ones were built
      const files = filesIn(r.messages);
      expect(files.map((f) => f.name)).toEqual(task.files.map((f) => f.name));
      files.forEach((f, i) => {
        expect(sha1(f.original)).toBe(sha1(data[i]));
        expect(f).toMatchObject({ size: data[i].length, checksum: sha1(data[i]) });
      });
    });
    // a batch of small compressible files is carried in messages of their size, not of a whole message's room
    expect(read[0].messages.reduce((n, m) => n + m.buffer.byteLength, 0)).toBeLessThan(FRAME_SIZE / 2);
  });

  it('a file gone since the listing is reported gone, not an error', async () => {
    const { task } = batch('gone', [8192, 8192]);
    fs.rmSync(task.files[0].path);
    const r = await readBundleBatch(pool, task);
    expect(r.results.map((x) => x.gone)).toEqual([true, false]);
    expect(filesIn(r.messages).map((f) => f.name)).toEqual([task.files[1].name]);
  });

  it('failures of either kind reach their callers, and the threads are free again afterwards', async () => {
    const bad = batch('bad', [8192]);
    bad.task.files.push({ ...bad.task.files[0], path: root, name: 'pg_data/a-directory' });
    // not a zstd frame, and larger than what the main thread decodes itself: a worker finds out
    const frame = randomBytes(256 * 1024);
    // more failures than the threads hold at once (2 each): a failed task that kept its thread busy would stall the rest
    const failures = [
      ...Array.from({ length: 3 }, () => readBundleBatch(pool, bad.task)),
      ...Array.from({ length: 3 }, () => pool.decode('zst', Buffer.from(frame))),
    ];
    const settled = await Promise.allSettled(failures);
    for (const s of settled.slice(0, 3)) {
      expect(s.status).toBe('rejected');
      expect((s as PromiseRejectedResult).reason).toMatchObject({ code: 'EISDIR' });
      expect(isCodecError((s as PromiseRejectedResult).reason)).toBe(false);
    }
    for (const s of settled.slice(3)) {
      expect(s.status).toBe('rejected');
      expect(isCodecError((s as PromiseRejectedResult).reason)).toBe(true);
    }
    const good = batch('after', [8192, 16384]);
    const again = await Promise.all([
      ...Array.from({ length: 5 }, () => readBundleBatch(pool, good.task)),
      ...Array.from({ length: 5 }, () => pool.encodeChunk('zst', 3, content(FRAME_SIZE))),
    ]);
    expect(again).toHaveLength(10);
  });

  it('closing the pool fails what was still queued or running, and later tasks, of both kinds', async () => {
    const local = new CodecPool(1);
    const { task } = batch('closed', [8192, 8192, 8192]);
    const queued = [
      ...Array.from({ length: 4 }, () => readBundleBatch(local, task)),
      ...Array.from({ length: 4 }, () => local.encodeChunk('zst', 3, content(FRAME_SIZE))),
    ];
    const settled = Promise.allSettled(queued);
    await local.close();
    for (const s of await settled) {
      expect(s.status).toBe('rejected');
      expect(String((s as PromiseRejectedResult).reason)).toMatch(/closed/);
    }
    await expect(readBundleBatch(local, task)).rejects.toThrow(/closed/);
    await expect(local.encodeChunk('zst', 3, content(FRAME_SIZE))).rejects.toThrow(/closed/);
  });
});
