/**
 * The server's side of compress-level-network (repo-server/commands/archive-wire.ts): lz4 frames
 * of a compress-type none upload come out as the original bytes, other parts pass as they are;
 * wire compression is refused with a stored codec or an unknown type; a frame that does not
 * record its size or claims more than one chunk (a decompression bomb) is refused before it is
 * decoded, and a damaged one is refused: nothing that does not decode to what it says is stored.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { unwire } from '../../repo-server/commands/archive-wire';
import { encodeFrame, FRAME_SIZE } from '../../shared/stream/frame-codec';

type Part = { part?: string; data?: Buffer; trailer?: { size: number } };

function parts(list: Part[]): AsyncIterator<Part> {
  let i = 0;
  return { next: async () => (i < list.length ? { done: false, value: list[i++] } : { done: true, value: undefined }) };
}

async function drain(it: AsyncIterator<Part>): Promise<Part[]> {
  const out: Part[] = [];
  for (let r = await it.next(); !r.done; r = await it.next()) out.push({ ...r.value, data: r.value.data && Buffer.from(r.value.data) });
  return out;
}

const text = (n: number) => Buffer.from('wal record '.repeat(Math.ceil(n / 11))).subarray(0, n);

describe('archive-push wire compression (server side)', () => {
  it('lz4 frames of a none upload come out as the original bytes; the trailer passes as it is', async () => {
    const chunks = [text(FRAME_SIZE), randomBytes(1000), Buffer.alloc(0)];
    const out = await drain(unwire(parts([...chunks.map((c) => ({ part: 'data', data: encodeFrame('lz4', 1, c) })), { part: 'trailer', trailer: { size: 1 } }]), 'none', 'lz4', 'push'));
    expect(out.slice(0, 3).map((p) => p.data!.equals(chunks[out.indexOf(p)]))).toEqual([true, true, true]);
    expect(out[3]).toEqual({ part: 'trailer', trailer: { size: 1 }, data: undefined });
  });

  it('a part keeps its bytes while later parts are read (the receiver still writes it then)', async () => {
    // compressible parts, each its own: an incompressible block would come out as a view of its frame
    const chunks = ['first', 'second', 'third'].map((w) => Buffer.from(`${w} record `.repeat(FRAME_SIZE / 8)).subarray(0, FRAME_SIZE));
    const it = unwire(parts(chunks.map((c) => ({ part: 'data', data: encodeFrame('lz4', 1, c) }))), 'none', 'lz4', 'push');
    const held: Buffer[] = [];
    for (let r = await it.next(); !r.done; r = await it.next()) held.push(r.value.data!);
    expect(held.map((d, i) => d.equals(chunks[i]))).toEqual([true, true, true]);
  });

  it('without wire compression the parts are not touched', async () => {
    const frame = encodeFrame('lz4', 1, text(100));
    const [p] = await drain(unwire(parts([{ part: 'data', data: frame }]), 'zst', '', 'push'));
    expect(p.data!.equals(frame)).toBe(true);
  });

  it('is refused with a stored codec or an unknown wire type', () => {
    expect(() => unwire(parts([]), 'zst', 'lz4', 'push x')).toThrow(/wire compression 'lz4' with compress-type 'zst' is not supported/);
    expect(() => unwire(parts([]), 'none', 'gz', 'push x')).toThrow(/wire compression 'gz'/);
  });

  it('a frame claiming more than one chunk, one without its size, or raw bytes are refused before decoding', async () => {
    const big = encodeFrame('lz4', 1, Buffer.alloc(FRAME_SIZE));
    big.writeBigUInt64LE(BigInt(FRAME_SIZE * 4), 6);
    for (const data of [big, randomBytes(64), Buffer.alloc(4)]) {
      await expect(unwire(parts([{ part: 'data', data }]), 'none', 'lz4', 'push x').next()).rejects.toThrow(/not an lz4 frame of at most 1048576 bytes/);
    }
  });

  it('a damaged frame is refused: nothing is stored', async () => {
    const frame = encodeFrame('lz4', 1, text(FRAME_SIZE));
    frame[frame.length - 40] ^= 0xff;
    frame.writeUInt32LE(0x7fffff, 15); // the block claims more bytes than the frame has
    await expect(unwire(parts([{ part: 'data', data: frame }]), 'none', 'lz4', 'push x').next()).rejects.toThrow(/push x: a data part/);
  });
});
