import { putVarint, varintLength } from './raw-message';

/*
 * A protobuf encoder for messages built where protobufjs is not loaded (a backup's reader
 * threads encode the bundle messages the main thread then sends as they are). A message is a
 * list of [field number, value]: an integer or boolean is a varint, a string or bytes a
 * length-delimited field, a list a nested message; a repeated field is the same number again.
 * Unset (undefined) and proto3 default values (0, false, '', empty bytes) are left out, as
 * protobufjs leaves them out; a nested message is always written, empty or not.
 */
export type ProtoValue = number | boolean | string | Uint8Array | ProtoFields | undefined;
export type ProtoFields = ReadonlyArray<readonly [number, ProtoValue]>;

const VARINT = 0;
const LENGTH_DELIMITED = 2;

/** A negative int64 is its 64-bit two's complement: ten bytes. */
function negativeVarint(v: number): Uint8Array {
  let u = BigInt.asUintN(64, BigInt(v));
  const out = new Uint8Array(10);
  for (let i = 0; i < 10; i++) {
    out[i] = Number(u & 0x7fn) | (i < 9 ? 0x80 : 0);
    u >>= 7n;
  }
  return out;
}

function checkInteger(field: number, v: number): void {
  if (!Number.isSafeInteger(v)) throw new Error(`protobuf field ${field}: ${v} is not an integer this encoder writes`);
}

function isDefault(v: ProtoValue): boolean {
  return v === undefined || v === 0 || v === false || v === '' || (v instanceof Uint8Array && v.length === 0);
}

function valueLength(field: number, v: Exclude<ProtoValue, undefined>): number {
  if (typeof v === 'boolean') return 1;
  if (typeof v === 'number') {
    checkInteger(field, v);
    return v < 0 ? 10 : varintLength(v);
  }
  const n = typeof v === 'string' ? Buffer.byteLength(v) : v instanceof Uint8Array ? v.length : messageLength(v);
  return varintLength(n) + n;
}

/** The encoded length of a message. */
export function messageLength(fields: ProtoFields): number {
  let n = 0;
  for (const [field, v] of fields) {
    if (isDefault(v)) continue;
    n += varintLength(field << 3) + valueLength(field, v!);
  }
  return n;
}

/** Writes the message at `at` in `buf` (which has room for it); returns where it ends. */
export function writeMessage(buf: Buffer, at: number, fields: ProtoFields): number {
  for (const [field, v] of fields) {
    if (isDefault(v)) continue;
    if (typeof v === 'number' || typeof v === 'boolean') {
      at = putVarint(buf, at, (field << 3) | VARINT);
      if (typeof v === 'number' && v < 0) {
        buf.set(negativeVarint(v), at);
        at += 10;
      } else {
        at = putVarint(buf, at, Number(v));
      }
      continue;
    }
    at = putVarint(buf, at, (field << 3) | LENGTH_DELIMITED);
    if (typeof v === 'string') {
      const n = Buffer.byteLength(v);
      at = putVarint(buf, at, n);
      at += buf.write(v, at, n, 'utf8');
    } else if (v instanceof Uint8Array) {
      at = putVarint(buf, at, v.length);
      buf.set(v, at);
      at += v.length;
    } else {
      at = putVarint(buf, at, messageLength(v as ProtoFields));
      at = writeMessage(buf, at, v as ProtoFields);
    }
  }
  return at;
}

/** The message's encoding, in memory of its own (so it can be transferred to another thread). */
export function encodeMessage(fields: ProtoFields): Buffer {
  const buf = Buffer.allocUnsafeSlow(messageLength(fields));
  const end = writeMessage(buf, 0, fields);
  if (end !== buf.length) throw new Error(`protobuf encoder: wrote ${end} bytes of ${buf.length}`);
  return buf;
}
