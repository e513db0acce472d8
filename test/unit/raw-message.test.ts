/**
 * The upload messages written and read by hand (shared/stream/raw-message.ts) against protobufjs
 * through the real service definition: what the agent sends raw must decode as the FileUpload it
 * stands for, what the server reads raw must be exactly the data sent, and anything that is not
 * one whole data field must go the ordinary way (which rejects what is malformed).
 */
import { describe, expect, it } from 'vitest';
import { loadProto } from '../../shared/proto';
import { bytesFieldInPlace, HEADROOM, onlyBytesField, putVarint, RawMessage, rawUploads, UPLOAD_DATA_FIELD, varintLength } from '../../shared/stream/raw-message';

const method = () => loadProto().pgrepo.v1.Repository.service.PutBackupFile;

/** `n` bytes of data behind HEADROOM bytes of room, as the agent's chunk memory is laid out. */
function withRoom(n: number, fill = 0x5a): Buffer {
  const memory = Buffer.alloc(HEADROOM + n + 8, 0xee);
  const data = memory.subarray(HEADROOM, HEADROOM + n);
  for (let i = 0; i < n; i++) data[i] = (fill + i * 7) & 0xff;
  return data;
}

describe('raw upload messages', () => {
  it('a data message written around its bytes is the encoding protobufjs writes, without copying them', () => {
    for (const n of [0, 1, 127, 128, 16383, 16384, 1024 * 1024, 1024 * 1024 + 64 * 1024]) {
      const data = withRoom(n);
      const copy = Buffer.from(data);
      const raw = bytesFieldInPlace(data, UPLOAD_DATA_FIELD);
      expect(raw.buffer, 'same memory').toBe(data.buffer);
      expect(raw.equals(method().requestSerialize({ data: copy })), `${n} bytes`).toBe(true);
      expect(raw.subarray(raw.length - n).equals(copy)).toBe(true);
      // the bytes after the data are not touched
      expect(data.buffer.byteLength).toBe(HEADROOM + n + 8);
      expect(Buffer.from(data.buffer, HEADROOM + n, 8).every((b) => b === 0xee)).toBe(true);
    }
  });

  it('refuses to write a header where there is no room', () => {
    expect(() => bytesFieldInPlace(Buffer.alloc(10), UPLOAD_DATA_FIELD)).toThrow(/no room/);
  });

  it('the wrapped method sends a RawMessage as it is and anything else through protobufjs', () => {
    const raw = rawUploads(method());
    let serialized = 0;
    const bytes = bytesFieldInPlace(withRoom(1000), UPLOAD_DATA_FIELD);
    expect(raw.requestSerialize(new RawMessage(bytes, () => serialized++) as never)).toBe(bytes);
    expect(serialized).toBe(1);
    const header = { header: { job_id: 'j', name: 'pg_data/PG_VERSION', compress_type: 'lz4' } };
    expect(raw.requestSerialize(header).equals(method().requestSerialize(header))).toBe(true);
  });

  it('the server reads a data message as a view of what arrived, equal to what protobufjs decodes', () => {
    const raw = rawUploads(method());
    for (const n of [0, 1, 200, 70000]) {
      const wire = method().requestSerialize({ data: withRoom(n, n) });
      const got = raw.requestDeserialize(wire) as { part: string; data: Buffer };
      const ordinary = method().requestDeserialize(wire) as { part: string; data: Buffer };
      expect(got.part).toBe('data');
      expect(got.data.equals(ordinary.data), `${n} bytes`).toBe(true);
      if (n > 0) expect(got.data.buffer, 'a view, not a copy').toBe(wire.buffer);
    }
    // header and trailer messages are decoded the ordinary way
    const trailer = { trailer: { size: 5, checksum: 'a'.repeat(40), repo_size: 3, repo_checksum: '' } };
    expect((raw.requestDeserialize(method().requestSerialize(trailer)) as { part: string }).part).toBe('trailer');
  });

  it('anything but exactly one whole data field is left to protobufjs, which rejects what is malformed', () => {
    const data = Buffer.from('hello');
    const wire = method().requestSerialize({ data });
    expect(onlyBytesField(wire, UPLOAD_DATA_FIELD)?.equals(data)).toBe(true);
    // truncated: the length says more than arrived
    expect(onlyBytesField(wire.subarray(0, wire.length - 1), UPLOAD_DATA_FIELD)).toBeUndefined();
    expect(() => rawUploads(method()).requestDeserialize(wire.subarray(0, wire.length - 1))).toThrow();
    // trailing bytes after the field
    expect(onlyBytesField(Buffer.concat([wire, Buffer.from([0x18, 0x01])]), UPLOAD_DATA_FIELD)).toBeUndefined();
    // another field, an empty message, a lone tag, a varint that never ends, one longer than 5 bytes
    expect(onlyBytesField(Buffer.from([0x0a, 0x00]), UPLOAD_DATA_FIELD)).toBeUndefined();
    expect(onlyBytesField(Buffer.alloc(0), UPLOAD_DATA_FIELD)).toBeUndefined();
    expect(onlyBytesField(Buffer.from([0x12]), UPLOAD_DATA_FIELD)).toBeUndefined();
    expect(onlyBytesField(Buffer.from([0x12, 0x80, 0x80]), UPLOAD_DATA_FIELD)).toBeUndefined();
    expect(onlyBytesField(Buffer.from([0x12, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), UPLOAD_DATA_FIELD)).toBeUndefined();
    expect(() => rawUploads(method()).requestDeserialize(Buffer.from([0x12, 0x80, 0x80]))).toThrow();
    // a length past 32 bits is not mistaken for a small one
    const huge = Buffer.alloc(8);
    const end = putVarint(huge, 1, 2 ** 33 + 3);
    huge[0] = 0x12;
    expect(end).toBe(1 + varintLength(2 ** 33 + 3));
    expect(onlyBytesField(huge.subarray(0, end + 3), UPLOAD_DATA_FIELD)).toBeUndefined();
  });
});
