/**
 * The hash thread (shared/stream/sha1-thread.ts) that takes the SHA-1 of a backup's large files
 * off the main threads: streams handed over piece by piece, interleaved, each hash the SHA-1 of
 * its own pieces in order; moved pieces come back for reuse; a closed thread fails the digest
 * instead of answering with a wrong one.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { Sha1Thread } from '../../shared/stream/sha1-thread';

const MiB = 1024 * 1024;

describe('the hash thread', () => {
  const thread = new Sha1Thread();
  afterAll(() => thread.close());

  it('hashes interleaved streams, each in its own order, and gives moved pieces back', async () => {
    const files = [randomBytes(5 * MiB + 123), randomBytes(3 * MiB), Buffer.alloc(0), randomBytes(700)];
    const streams = files.map(() => thread.open(2));
    const back: Uint8Array[] = [];
    let moved = 0;
    // pieces of 1 MiB (moved: memory of their own) and small ones (copied), the streams taking turns
    for (let at = 0; files.some((f) => at < f.length); at += MiB) {
      for (let i = 0; i < files.length; i++) {
        if (at >= files[i].length) continue;
        const piece = Buffer.from(files[i].subarray(at, at + MiB));
        const own = new Uint8Array(new ArrayBuffer(piece.length));
        own.set(piece);
        if (own.length > Buffer.poolSize) moved++;
        await streams[i].update(own, (b) => back.push(b));
      }
    }
    const digests = await Promise.all(streams.map((s) => s.digest()));
    expect(digests).toEqual(files.map((f) => createHash('sha1').update(f).digest('hex')));
    expect(back.length, 'every moved piece came back').toBe(moved);
    expect(back.every((b) => b.byteLength > 0), 'and is usable again').toBe(true);
  });

  it('a closed thread fails the digest of a stream it had not finished', async () => {
    const other = new Sha1Thread();
    const s = other.open();
    await s.update(new Uint8Array(new ArrayBuffer(2 * MiB)));
    await other.close();
    await expect(s.digest()).rejects.toThrow(/hash thread was closed/);
  });

  it('after a thread dies, its streams fail and a new stream gets a new thread', async () => {
    const other = new Sha1Thread();
    const s = other.open();
    await s.update(Buffer.from('first'));
    // the worker ends under it, as a crash would
    await (other as unknown as { worker: { terminate(): Promise<number> } }).worker.terminate();
    await expect(s.digest()).rejects.toThrow(/hash thread exited/);
    const next = other.open();
    await next.update(Buffer.from('again'));
    expect(await next.digest()).toBe(createHash('sha1').update('again').digest('hex'));
    await other.close();
  });
});
