import type * as grpc from '@grpc/grpc-js';

/*
 * Messages that carry up to a frame of stored bytes, written and read as protobuf encodings by
 * hand, so the bytes are never copied by protobufjs. Sending: the bytes are read or compressed
 * into memory that leaves room before them (HEADROOM), the field's tag and length are written
 * into that room, and the message goes to grpc-js as the encoding it already is (RawMessage).
 * Receiving: a message that is one bytes field is a view of the received buffer. grpc-js still
 * copies each message once into its own frame on the sending side and joins it from HTTP/2
 * frames on the receiving side; that copy is its own and stays.
 */

/** Room before the data for the largest header: a tag and a 5-byte varint, twice. */
export const HEADROOM = 16;

/** A message already in its protobuf encoding. */
export class RawMessage {
  constructor(readonly bytes: Buffer, private readonly onSerialized?: () => void) {}

  /** For the method's serializer. */
  serialized(): Buffer {
    this.onSerialized?.();
    return this.bytes;
  }
}

export function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

export function putVarint(b: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    b[at++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  b[at++] = v;
  return at;
}

/** The tag byte of a length-delimited field (field numbers 1-15). */
export function lengthTag(field: number): number {
  return (field << 3) | 2;
}

/**
 * `data` as the encoding of a message whose only field is `field` (bytes) = data, written into
 * the HEADROOM bytes before it: the caller guarantees they are its own (memory it allocated with
 * that room) and unused. No byte of `data` is copied.
 */
export function bytesFieldInPlace(data: Buffer, field: number): Buffer {
  if (data.byteOffset < HEADROOM) throw new Error('bytesFieldInPlace: no room before the data');
  const header = 1 + varintLength(data.length);
  const start = data.byteOffset - header;
  const whole = Buffer.from(data.buffer, start, header + data.length);
  whole[0] = lengthTag(field);
  putVarint(whole, 1, data.length);
  return whole;
}

/**
 * The bytes of `field` when `message` is exactly that one length-delimited field (a view of
 * `message`, not a copy); undefined for anything else (the caller decodes it the ordinary way,
 * which also rejects what is malformed).
 */
export function onlyBytesField(message: Buffer, field: number): Buffer | undefined {
  if (message.length < 2 || message[0] !== lengthTag(field)) return undefined;
  let length = 0;
  let shift = 1;
  let at = 1;
  for (;;) {
    if (at >= message.length || at > 5) return undefined;
    const b = message[at++];
    length += (b & 0x7f) * shift;
    if (b < 0x80) break;
    shift *= 128;
  }
  return at + length === message.length ? message.subarray(at) : undefined;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Method = grpc.MethodDefinition<any, any>;

/** A method that also sends RawMessages (responses) as they are. */
export function rawResponses<M extends Method>(method: M): M {
  return { ...method, responseSerialize: (value: unknown) => (value instanceof RawMessage ? value.serialized() : method.responseSerialize(value)) };
}

/** A method whose requests may be RawMessages, sent as they are (the others are encoded the ordinary way). */
export function rawRequests<M extends Method>(method: M): M {
  return { ...method, requestSerialize: (value: unknown) => (value instanceof RawMessage ? value.serialized() : method.requestSerialize(value)) };
}

/**
 * An upload method (FileUpload: `data` = 2 in the oneof `part`) whose requests may be RawMessages,
 * sent as they are, and whose data messages are read as views of what arrived; any other message
 * is encoded and decoded the ordinary way.
 */
export function rawUploads<M extends Method>(method: M): M {
  return {
    ...rawRequests(method),
    requestDeserialize: (bytes: Buffer) => {
      const data = onlyBytesField(bytes, UPLOAD_DATA_FIELD);
      return data ? { part: 'data', data } : method.requestDeserialize(bytes);
    },
  };
}

/** FileUpload's `data` field. */
export const UPLOAD_DATA_FIELD = 2;
