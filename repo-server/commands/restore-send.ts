import type * as grpc from '@grpc/grpc-js';
import { BufferRing } from '../../shared/stream/buffer-ring';

/*
 * A restore sends the repository's stored bytes as they are, at hundreds of MiB/s. Through
 * protobufjs every 1 MiB message would cost a fresh read buffer and a fresh copy for the
 * encoding, on top of the copy grpc-js makes into its frame; the garbage of those buffers was
 * the server's biggest cost. Here the stored bytes are read into reused buffers, behind room for
 * the message's few header bytes, and go out as the protobuf encoding as it is (RawChunk): the
 * only per-message allocation left is grpc-js's own frame.
 */

/** Room before the data for the largest header: index (tag + 5-byte varint), data's tag + 5-byte length. */
const HEADROOM = 16;

// buffers come back once grpc-js has copied them into its frame; a buffer not given back is simply garbage
const ring = new BufferRing(32);

/** A message already in its protobuf encoding. Its memory goes back to the ring once serialized. */
export class RawChunk {
  constructor(private readonly bytes: Buffer, private readonly memory: Buffer) {}

  /** For the method's serializer: grpc-js copies the result into its frame before anything else runs, so the memory is free from the next microtask on. */
  serialized(): Buffer {
    queueMicrotask(() => ring.give(this.memory));
    return this.bytes;
  }
}

/** Room after the data for the end mark (tag, true). */
const TAILROOM = 2;

/** A buffer to read the next piece of stored bytes into: a view of a ring buffer, past HEADROOM. */
export function readBuffer(): Buffer {
  const whole = ring.takeWhole();
  return whole.subarray(HEADROOM, whole.length - TAILROOM);
}

function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function putVarint(b: Buffer, at: number, v: number): number {
  while (v >= 0x80) {
    b[at++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  b[at++] = v;
  return at;
}

/**
 * `n` stored bytes read into `buf` (from readBuffer()) as one FileChunk (`data` = 1), or, with
 * `index`, one BackupFilesChunk (`index` = 1, `data` = 2, `end` = 3). Fields at their default are
 * left out, as protobuf does.
 */
export function rawChunk(buf: Buffer, n: number, files?: { index: number; end: boolean }): RawChunk {
  const memory = Buffer.from(buf.buffer, buf.byteOffset - HEADROOM, HEADROOM + buf.length + TAILROOM);
  const dataTag = files ? 0x12 : 0x0a;
  const header = (files && files.index > 0 ? 1 + varintLength(files.index) : 0) + 1 + varintLength(n);
  let at = HEADROOM - header;
  const start = at;
  if (files && files.index > 0) {
    memory[at++] = 0x08;
    at = putVarint(memory, at, files.index);
  }
  memory[at++] = dataTag;
  putVarint(memory, at, n);
  let end = HEADROOM + n;
  if (files?.end) {
    // after the data: the data's own bytes stay where they were read
    memory[end++] = 0x18;
    memory[end++] = 1;
  }
  return new RawChunk(memory.subarray(start, end), memory);
}

/** The service definition with GetBackupFile and GetBackupFiles also sending RawChunks as they are. */
export function withRawChunks(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const raw = (method: grpc.MethodDefinition<unknown, unknown>) => ({
    ...method, responseSerialize: (value: unknown) => (value instanceof RawChunk ? value.serialized() : method.responseSerialize(value)),
  });
  return { ...service, GetBackupFile: raw(service.GetBackupFile), GetBackupFiles: raw(service.GetBackupFiles) };
}
