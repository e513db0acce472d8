/**
 * The restore workers' own receive path (agent/transfer/grpc-frames.ts, raw-download.ts): gRPC's
 * length-prefixed messages cut out of DATA chunks however the chunks fall, the reused buffer, a
 * message cut short, and the status a response's trailers carry, decoded with the real service
 * definition as the workers decode them.
 */
import { describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { loadProto } from '../../shared/proto';
import { framed, FramingError, MessageReader, statusMessage } from '../../agent/transfer/grpc-frames';
import { trailerStatus } from '../../agent/transfer/raw-download';
import { describeCallError, isServiceError } from '../../shared/errors';

const methods = () => loadProto().pgrepo.v1.Repository.service;

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (seed * 31 + i * 7) & 0xff;
  return b;
}

/** Every message `reader` gives for `chunks`, copied out at once (a message is valid only until the next is asked for). */
function readAll(reader: MessageReader, chunks: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  for (const c of chunks) {
    reader.push(c);
    for (let m; (m = reader.next()) !== undefined;) out.push(Buffer.from(m));
  }
  return out;
}

function cut(stream: Buffer, at: number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of [...at, stream.length]) {
    chunks.push(stream.subarray(from, p));
    from = p;
  }
  return chunks;
}

describe('MessageReader', () => {
  const messages = [bytes(40, 1), bytes(0, 2), bytes(17, 3), bytes(130, 4)];
  const stream = Buffer.concat(messages.map(framed));
  const same = (got: Buffer[]) => got.length === messages.length && got.every((m, i) => m.equals(messages[i]));

  it('gives the same messages wherever the stream is cut in two, and wherever in three', () => {
    const wrong: number[][] = [];
    for (let a = 0; a <= stream.length; a++) {
      if (!same(readAll(new MessageReader(1 << 20), cut(stream, [a])))) wrong.push([a]);
      for (let b = a; b <= stream.length; b++) if (!same(readAll(new MessageReader(1 << 20), cut(stream, [a, b])))) wrong.push([a, b]);
    }
    expect(wrong).toEqual([]);
  });

  it('gives the same messages from one chunk holding them all, and from one-byte chunks', () => {
    expect(readAll(new MessageReader(1 << 20), [stream])).toEqual(messages);
    expect(readAll(new MessageReader(1 << 20), [...stream].map((b) => Buffer.from([b])))).toEqual(messages);
  });

  it('reuses one buffer for messages that span chunks, and grows it for a larger message', () => {
    const small = bytes(70_000, 5);
    const large = bytes(200_000, 6);
    const reader = new MessageReader(1 << 20);
    const halves = (m: Buffer) => cut(framed(m), [1000]);
    for (const c of halves(small)) reader.push(c);
    const first = reader.next()!;
    expect(first.equals(small)).toBe(true);
    for (const c of halves(small)) reader.push(c);
    const second = reader.next()!;
    expect(second.buffer).toBe(first.buffer);
    for (const c of halves(large)) reader.push(c);
    const third = reader.next()!;
    expect(third.equals(large)).toBe(true);
    for (const c of halves(small)) reader.push(c);
    expect(reader.next()!.buffer).toBe(third.buffer);
  });

  it('gives a message that lies within one chunk as a view of that chunk', () => {
    const chunk = framed(bytes(500, 7));
    const reader = new MessageReader(1 << 20);
    reader.push(chunk);
    expect(reader.next()!.buffer).toBe(chunk.buffer);
  });

  it('keeps a message cut short as bytes still buffered, which the call reports', () => {
    const reader = new MessageReader(1 << 20);
    const whole = framed(bytes(400, 8));
    readAll(reader, [framed(bytes(10, 9)), whole.subarray(0, 250)]);
    expect(reader.next()).toBeUndefined();
    expect(reader.buffered).toBe(250);
  });

  it('refuses a message over the limit, a compressed message and an unknown flag', () => {
    const over = new MessageReader(100);
    over.push(framed(bytes(101, 1)).subarray(0, 5));
    expect(() => over.next()).toThrow(/larger than max \(101 vs\. 100\)/);
    const compressed = framed(bytes(10, 1));
    compressed[0] = 1;
    const r = new MessageReader(100);
    r.push(compressed);
    expect(() => r.next()).toThrow(FramingError);
    compressed[0] = 0x80;
    const u = new MessageReader(100);
    u.push(compressed);
    expect(() => u.next()).toThrow(/unknown flag byte 128/);
  });

  it('decodes FileChunk and BackupFilesChunk with their data a view of the received bytes', () => {
    const data = bytes(4096, 10);
    const fc = methods().GetBackupFile;
    const reader = new MessageReader(1 << 20);
    const chunks = cut(framed(fc.responseSerialize({ data, original_offset: 12345 })), [3, 2000]);
    const [m] = readAll(reader, chunks).map((b) => fc.responseDeserialize(b));
    expect(m.original_offset).toBe(12345);
    expect(Buffer.compare(m.data, data)).toBe(0);
    const bf = methods().GetBackupFiles;
    const one = framed(bf.responseSerialize({ index: 7, data, end: true }));
    const r2 = new MessageReader(1 << 20);
    r2.push(one);
    const view = r2.next()!;
    const decoded = bf.responseDeserialize(view);
    expect(decoded).toMatchObject({ index: 7, end: true });
    expect(decoded.data.buffer).toBe(one.buffer);
  });
});

describe('trailerStatus', () => {
  it('is null for OK and undefined without a grpc-status', () => {
    expect(trailerStatus({ 'grpc-status': '0' })).toBeNull();
    expect(trailerStatus({ 'content-type': 'application/grpc' })).toBeUndefined();
    expect(trailerStatus(undefined)).toBeUndefined();
  });

  it('maps an error status to a ServiceError as grpc-js makes it: code, percent-decoded details, metadata', () => {
    const err = trailerStatus({ 'grpc-status': '9', 'grpc-message': "file%20'base/1/2'%20is%20not%20in%20backup%2050%25", 'x-extra': 'a' })!;
    expect(isServiceError(err)).toBe(true);
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toBe("file 'base/1/2' is not in backup 50%");
    expect(err.message).toBe("9 FAILED_PRECONDITION: file 'base/1/2' is not in backup 50%");
    expect(err.metadata.get('x-extra')).toEqual(['a']);
    expect(describeCallError(err, 'h:1')).toBe("file 'base/1/2' is not in backup 50%");
  });

  it('keeps a grpc-message that is not valid percent-encoding as it came, and maps an unknown code to UNKNOWN', () => {
    expect(statusMessage('100%')).toBe('100%');
    const err = trailerStatus({ 'grpc-status': '99', 'grpc-message': 'odd' })!;
    expect(err.code).toBe(grpc.status.UNKNOWN);
    expect(err.details).toBe('odd');
  });
});
