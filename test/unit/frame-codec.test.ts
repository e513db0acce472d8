/**
 * The chunked frame codecs: every codec round-trips, the frames of one file concatenated are
 * one ordinary stream (read by the codec's own decoder, in one piece or cut anywhere), frames
 * written by other encoders are delimited and read too, old single-member gzip files stay
 * readable, and the worker pool (process-max 2) gives the same bytes as one thread.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeFrame, encodeFrame, FRAME_SIZE, frameLength, FRAMED_TYPES } from '../../shared/stream/frame-codec';
import { createDecompressor } from '../../shared/stream/compress';
import { FrameSplitter } from '../../shared/stream/frame-splitter';
import { CodecPool } from '../../shared/stream/codec-pool';
import { decodeFrames, encodeFrames } from '../../shared/stream/parallel';

const LEVEL: Record<string, number> = { gz: 6, lz4: 1, zst: 3 };

/** Half random (incompressible), half repetitive text: both kinds of relation data. */
function sample(size: number): Buffer {
  const text = Buffer.from('the quick brown fox jumps over the lazy dog 0123456789 '.repeat(Math.ceil(size / 110)));
  return Buffer.concat([randomBytes(Math.floor(size / 2)), text]).subarray(0, size);
}

function chunksOf(data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; i += FRAME_SIZE) out.push(Buffer.from(data.subarray(i, i + FRAME_SIZE)));
  return out.length ? out : [Buffer.alloc(0)];
}

/** Frames for `data` as the backup writes them: one per FRAME_SIZE chunk, concatenated. */
function framed(type: string, data: Buffer, level = LEVEL[type]): Buffer {
  return Buffer.concat(chunksOf(data).map((c) => encodeFrame(type, level, c)));
}

/** Cuts at random places, as the network delivers them. */
function randomCuts(data: Buffer, max = 200_000): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < data.length; ) {
    const n = 1 + Math.floor(Math.random() * max);
    out.push(data.subarray(i, i + n));
    i += n;
  }
  return out;
}

async function streamDecode(type: string, pieces: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(pieces), createDecompressor(type), new Writable({ write(c: Buffer, _e, done) { out.push(c); done(); } }));
  return Buffer.concat(out);
}

const sha = (b: Buffer) => createHash('sha1').update(b).digest('hex');

describe.each(FRAMED_TYPES)('%s frames', (type) => {
  it.each([0, 1, 1000, FRAME_SIZE, 3 * FRAME_SIZE + 12345])('round-trip of %i bytes, frame by frame', (size) => {
    const data = sample(size);
    const frames = chunksOf(data).map((c) => encodeFrame(type, LEVEL[type], c));
    const back = Buffer.concat(frames.map((f) => decodeFrame(type, f)));
    expect(sha(back)).toBe(sha(data));
    for (const f of frames) expect(frameLength(type, f, f.length)).toBe(f.length);
  });

  it('concatenated frames are one stream: the splitter finds every frame, cut anywhere', () => {
    const data = sample(3 * FRAME_SIZE + 777);
    const stored = framed(type, data);
    const splitter = new FrameSplitter(type);
    const frames = randomCuts(stored).flatMap((piece) => splitter.push(piece));
    expect(splitter.failed).toBe(false);
    expect(frames).toHaveLength(4);
    expect(splitter.takeRest()).toHaveLength(0);
    expect(sha(Buffer.concat(frames.map((f) => decodeFrame(type, f))))).toBe(sha(data));
  });

  it('concatenated frames decode as one stream with the streaming decompressor', async () => {
    const data = sample(2 * FRAME_SIZE + 99);
    expect(sha(await streamDecode(type, randomCuts(framed(type, data))))).toBe(sha(data));
  });

  it('a truncated file is an error, not a short file', async () => {
    const stored = framed(type, sample(FRAME_SIZE + 10));
    await expect(streamDecode(type, [stored.subarray(0, stored.length - 3)])).rejects.toThrow();
  });

  it('compresses: repetitive data gets smaller', () => {
    const text = Buffer.from('pgrepo '.repeat(100_000));
    expect(encodeFrame(type, LEVEL[type], text).length).toBeLessThan(text.length / 10);
  });
});

describe('gz frames decoded into a buffer of the caller (one inflate context per thread, reset for each member)', () => {
  const out = Buffer.alloc(FRAME_SIZE + 64 * 1024);
  const data = sample(3 * FRAME_SIZE + 4321);
  const frames = chunksOf(data).map((c) => encodeFrame('gz', 6, c));

  it('frame after frame, the same bytes as gunzip, in that buffer', () => {
    const back = frames.map((f) => {
      const got = decodeFrame('gz', f, out);
      expect(got.buffer, 'decoded into the buffer given').toBe(out.buffer);
      expect(got.equals(zlib.gunzipSync(f))).toBe(true);
      return Buffer.from(got);
    });
    expect(sha(Buffer.concat(back))).toBe(sha(data));
  });

  it('a damaged member (CRC, deflate data, cut short) is refused, and the next frame still decodes', () => {
    const crc = Buffer.from(frames[0]);
    crc[crc.length - 6] ^= 1;
    expect(() => decodeFrame('gz', crc, out)).toThrow(/incorrect data check/);
    const body = Buffer.from(frames[1]);
    for (let i = 100; i < 164; i++) body[i] ^= 0x5a;
    expect(() => decodeFrame('gz', body, out)).toThrow();
    expect(() => decodeFrame('gz', frames[2].subarray(0, frames[2].length - 100), out)).toThrow(/unexpected end of file/);
    expect(decodeFrame('gz', frames[1], out).equals(data.subarray(FRAME_SIZE, 2 * FRAME_SIZE))).toBe(true);
  });

  it('a member larger than the buffer is decoded the ordinary way', () => {
    const big = sample(2 * FRAME_SIZE);
    const got = decodeFrame('gz', zlib.gzipSync(big), out);
    expect(got.buffer).not.toBe(out.buffer);
    expect(got.equals(big)).toBe(true);
  });
});

describe('frames from other encoders', () => {
  it('gzip: concatenated members read by zlib, and a single-member file written by gzip itself', async () => {
    const data = sample(2 * FRAME_SIZE + 3);
    expect(sha(zlib.gunzipSync(framed('gz', data)))).toBe(sha(data));
    // an old backup or WAL file: one member without our length field goes through zlib's stream
    const legacy = zlib.gzipSync(data);
    expect(frameLength('gz', legacy, legacy.length)).toBe('unknown');
    expect(sha(await streamDecode('gz', randomCuts(legacy)))).toBe(sha(data));
  });

  it('zstd: frames with a checksum and without a content size, as the zstd tool writes them', async () => {
    const { Compressor, CompressStream, decompress } = await import('zstd-napi');
    const data = sample(FRAME_SIZE + 100);
    const c = new Compressor();
    c.setParameters({ compressionLevel: 5, checksumFlag: true });
    const a = c.compress(data.subarray(0, 1000));
    const streamed: Buffer[] = [];
    await pipeline(Readable.from([data.subarray(1000)]), new CompressStream({ compressionLevel: 1 }), new Writable({ write(x: Buffer, _e, done) { streamed.push(x); done(); } }));
    const stored = Buffer.concat([a, ...streamed]);
    expect(frameLength('zst', stored, stored.length)).toBe(a.length);
    expect(sha(decompress(framed('zst', data)))).toBe(sha(data));
    expect(sha(await streamDecode('zst', randomCuts(stored)))).toBe(sha(data));
  });

  it('lz4: frames of 64 KiB blocks with block and content checksums, as the lz4 tool writes them', async () => {
    const utils = createRequire(import.meta.url)('lz4/lib/utils') as {
      bindings: { compress(s: Buffer, d: Buffer): number; compressBound(n: number): number };
      descriptorChecksum(d: Buffer): number; blockChecksum(d: Buffer): number;
    };
    const data = sample(300_000);
    const parts: Buffer[] = [Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x74, 0x40, 0])]; // magic, FLG: indep + block & content checksums, BD: 64 KiB
    parts[0][6] = utils.descriptorChecksum(parts[0].subarray(4, 6));
    const word = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n >>> 0); return b; };
    for (let i = 0; i < data.length; i += 65536) {
      const block = data.subarray(i, i + 65536);
      const packed = Buffer.alloc(utils.bindings.compressBound(block.length));
      const n = utils.bindings.compress(block, packed);
      const body = n > 0 && n < block.length ? packed.subarray(0, n) : block;
      parts.push(word(body === block ? 0x80000000 | block.length : n), body, word(utils.blockChecksum(body)));
    }
    parts.push(word(0), word(0x12345678)); // end mark, content checksum (SHA-1 of the whole file is what is checked)
    const foreign = Buffer.concat(parts);
    expect(frameLength('lz4', foreign, foreign.length)).toBe(foreign.length);
    expect(frameLength('lz4', foreign, foreign.length - 1)).toBe('more');
    expect(sha(decodeFrame('lz4', foreign))).toBe(sha(data));
  });
});

describe('the codec worker pool (process-max 2)', () => {
  const pool = new CodecPool(2);
  afterAll(() => pool.close());

  async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
    const out: Buffer[] = [];
    for await (const b of it) out.push(b);
    return Buffer.concat(out);
  }
  async function* from(pieces: Buffer[]): AsyncGenerator<Buffer> {
    yield* pieces;
  }

  it.each([...FRAMED_TYPES, 'none'])('%s: frames compressed in parallel come back in order and read as one stream', async (type) => {
    const data = sample(5 * FRAME_SIZE + 4321);
    const stored = await collect(encodeFrames(from(chunksOf(data)), type, LEVEL[type] ?? 0, pool));
    expect(sha(await streamDecode(type, [stored]))).toBe(sha(data));
    expect(sha(await collect(decodeFrames(from(randomCuts(stored)), type, pool)))).toBe(sha(data));
  });

  it.each(FRAMED_TYPES)('%s: decoding into reused buffers gives every byte, in order, to a consumer that is done with each before the next', async (type) => {
    const data = sample(5 * FRAME_SIZE + 4321);
    const stored = await collect(encodeFrames(from(chunksOf(data)), type, LEVEL[type] ?? 0, pool));
    for (let round = 0; round < 2; round++) {
      const hash = createHash('sha1');
      for await (const b of decodeFrames(from(randomCuts(stored)), type, pool, true)) hash.update(b);
      expect(hash.digest('hex')).toBe(sha(data));
    }
  });

  it('an old single-member gzip file is read through the streaming fallback', async () => {
    const data = sample(2 * FRAME_SIZE);
    expect(sha(await collect(decodeFrames(from(randomCuts(zlib.gzipSync(data))), 'gz', pool)))).toBe(sha(data));
  });

  it('a damaged frame is a codec error', async () => {
    const stored = framed('gz', sample(FRAME_SIZE));
    stored[stored.length >> 1] ^= 0xff;
    await expect(collect(decodeFrames(from([stored]), 'gz', pool))).rejects.toThrow();
  });
});
