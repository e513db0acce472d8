/**
 * A bundle's messages as the codec threads encode them by hand (agent/backup/bundle-message.ts,
 * shared/stream/proto-encode.ts), checked against protobufjs through the real service
 * definition, and taken apart by the server's BundleReceiver (repo-server/commands/receive-bundle.ts)
 * into a real temp file: every file's bytes at its offset, its trailer checked, pieces out of
 * order and damaged trailers refused.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { loadProto } from '../../shared/proto';
import { BundleMessages, MESSAGE_DATA, type PieceHeader, type PieceTrailer } from '../../agent/backup/bundle-message';
import { encodeMessage } from '../../shared/stream/proto-encode';
import { BundleReceiver, type ReceivedPiece } from '../../repo-server/commands/receive-bundle';
import { PosixStorage } from '../../repo-server/storage/posix';
import type { BundleUpload__Output } from '../../shared/generated/pgrepo/v1/BundleUpload';

const method = () => loadProto().pgrepo.v1.Repository.service.PutBundle;
const decode = (b: Buffer) => method().requestDeserialize(b) as BundleUpload__Output;
const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pgrepo-bundle-message-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

interface TestFile {
  header: PieceHeader;
  frames: Buffer[];
  trailer: PieceTrailer;
}

function file(name: string, frames: Buffer[], opts: { compressType?: string; pages?: PieceTrailer['pages']; timestamp?: number } = {}): TestFile {
  const compressType = opts.compressType ?? 'zst';
  const stored = Buffer.concat(frames);
  return {
    header: { name, timestamp: opts.timestamp ?? 1_764_000_000, mode: '0600', user: 'postgres', group: 'postgres', compressType },
    frames,
    trailer: { size: stored.length * 3, checksum: compressType === 'none' ? '' : sha1(Buffer.concat([stored, stored, stored])), repoSize: stored.length, pages: opts.pages },
  };
}

/** The files as a codec thread adds them: a piece per frame, header on the first, trailer on the last. */
function encode(files: TestFile[]): Buffer[] {
  const out = new BundleMessages();
  for (const f of files) f.frames.forEach((frame, i) => out.add(i === 0 ? f.header : undefined, frame, i === f.frames.length - 1 ? f.trailer : undefined));
  return out.finish();
}

const files = [
  file('pg_data/base/1/1259', [randomBytes(300)], { pages: { valid: false, errors: [[3, 3], [7, 12]] } }),
  file('pg_data/base/1/2600', [Buffer.alloc(0)], { compressType: 'none' }),
  file('pg_data/base/1/ünïcode', [randomBytes(9000)], { pages: { valid: true, errors: [] }, timestamp: -5 }),
  file('pg_data/global/big', [randomBytes(MESSAGE_DATA), randomBytes(MESSAGE_DATA), randomBytes(70_000)], { compressType: 'none' }),
  ...Array.from({ length: 300 }, (_, i) => file(`pg_data/base/5/${16384 + i}`, [randomBytes(8192)], { compressType: 'none' })),
];

describe('bundle messages', () => {
  it('decode with protobufjs as the pieces added, in order, cut after MESSAGE_DATA stored bytes', () => {
    const messages = encode(files);
    expect(messages.length).toBeGreaterThan(3);
    const pieces = messages.flatMap((m) => {
      const decoded = decode(m);
      expect(decoded.part).toBe('files');
      const data = decoded.files!.piece.reduce((n, p) => n + p.data.length, 0);
      expect(data).toBeLessThan(MESSAGE_DATA + 2 * 1024 * 1024);
      return decoded.files!.piece;
    });
    let at = 0;
    for (const f of files) {
      f.frames.forEach((frame, i) => {
        const p = pieces[at++];
        expect(p.data.equals(frame)).toBe(true);
        if (i === 0) {
          expect(p.header).toMatchObject({ name: f.header.name, timestamp: f.header.timestamp, mode: '0600', user: 'postgres', group: 'postgres', compress_type: f.header.compressType });
        } else {
          expect(p.header).toBeNull();
        }
        if (i === f.frames.length - 1) {
          expect(p.trailer).toMatchObject({ size: f.trailer.size, checksum: f.trailer.checksum, repo_size: f.trailer.repoSize, repo_checksum: '' });
          const pages = f.trailer.pages;
          expect(p.trailer!.checksum_page).toEqual(pages ? { valid: pages.valid, error: pages.errors.map(([first, last]) => ({ first, last })) } : null);
        } else {
          expect(p.trailer).toBeNull();
        }
      });
    }
    expect(at).toBe(pieces.length);
  });

  it('are byte for byte what protobufjs writes, an empty nested message and a negative int64 included', () => {
    const ordinary = method().requestSerialize({ files: { piece: [{ header: { name: 'x', timestamp: -1 }, trailer: {} }] } });
    expect(encodeMessage([[5, [[1, [[1, [[2, 'x'], [3, -1]]], [3, []]]]]]]).equals(ordinary)).toBe(true);
  });
});

async function receive(bundle: string, messages: ReceivedPiece[][]) {
  const storage = new PosixStorage(root);
  const temp = await storage.openTemp(bundle);
  const receiver = new BundleReceiver(temp, 1);
  try {
    for (const pieces of messages) await receiver.add(pieces);
    const got = await receiver.done();
    await temp.commit();
    return { got, stored: fs.readFileSync(storage.path(bundle)) };
  } finally {
    await receiver.settle();
    await temp.discard();
  }
}

const piecesOf = (messages: Buffer[]) => messages.map((m) => decode(m).files!.piece as ReceivedPiece[]);

describe('BundleReceiver', () => {
  it('stores every file at its offset, with the SHA-1 of its stored bytes (the original too when stored as it is)', async () => {
    const { got, stored } = await receive('b/1', piecesOf(encode(files)));
    expect(got.map((f) => f.name)).toEqual(files.map((f) => f.header.name));
    expect(stored.equals(Buffer.concat(files.flatMap((f) => f.frames)))).toBe(true);
    got.forEach((g, i) => {
      const bytes = stored.subarray(g.offset, g.offset + g.trailer.repo_size);
      expect(bytes.equals(Buffer.concat(files[i].frames))).toBe(true);
      expect(g.trailer.repo_checksum).toBe(sha1(bytes));
      expect(g.trailer.checksum).toBe(files[i].header.compressType === 'none' ? sha1(bytes) : files[i].trailer.checksum);
    });
  });

  const [a, b] = [file('pg_data/a', [randomBytes(100)]), file('pg_data/b', [randomBytes(50), randomBytes(60)])];
  const pieces = piecesOf(encode([a, b]))[0];

  it('refuses pieces out of order, a file without its trailer, and a trailer that does not match what arrived', async () => {
    await expect(receive('b/2', [[pieces[2]]])).rejects.toThrow(/bundle 1: a piece of a file came before the file's header/);
    await expect(receive('b/3', [[pieces[1], pieces[0]]])).rejects.toThrow(/pg_data\/b \(bundle 1\): the next file \(pg_data\/a\) began before this one's trailer/);
    await expect(receive('b/4', [[pieces[0]], [pieces[1]]])).rejects.toThrow(/pg_data\/b \(bundle 1\): the upload ended before its trailer/);
    const short = { ...pieces[0], trailer: { ...pieces[0].trailer!, repo_size: 99 } };
    await expect(receive('b/5', [[short]])).rejects.toThrow(/pg_data\/a \(bundle 1\): received 100 bytes .* but the sender sent 99 bytes/);
    const damaged = { ...pieces[0], trailer: { ...pieces[0].trailer!, repo_checksum: sha1(Buffer.from('other')) } };
    await expect(receive('b/6', [[damaged]])).rejects.toThrow(/nothing was stored/);
    const traversal = { ...pieces[0], header: { ...pieces[0].header!, name: 'pg_data/../../etc/passwd' } };
    await expect(receive('b/7', [[traversal]])).rejects.toThrow();
    expect(fs.readdirSync(path.join(root, 'b')), 'nothing of a refused bundle is left').toEqual(['1']);
  });
});
