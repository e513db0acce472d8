import type * as grpc from '@grpc/grpc-js';
import { BufferRing } from '../../shared/stream/buffer-ring';
import { HEADROOM, lengthTag, putVarint, RawMessage, rawResponses, rawUploads, varintLength } from '../../shared/stream/raw-message';

/*
 * A restore sends the repository's stored bytes as they are, at hundreds of MiB/s. Through
 * protobufjs every 1 MiB message would cost a fresh read buffer and a fresh copy for the
 * encoding, on top of the copy grpc-js makes into its frame; the garbage of those buffers was
 * the server's biggest cost. Here the stored bytes are read into reused buffers, behind room for
 * the message's few header bytes, and go out as the protobuf encoding as it is (RawMessage): the
 * only per-message allocation left is grpc-js's own frame.
 */

// buffers come back once grpc-js has copied them into its frame; a buffer not given back is simply garbage
const ring = new BufferRing(32);

/**
 * A message already in its protobuf encoding whose memory goes back to the ring once serialized:
 * grpc-js's server copies the result into its frame before anything else runs, so the memory is
 * free from the next microtask on.
 */
function rawChunkOf(bytes: Buffer, memory: Buffer): RawMessage {
  return new RawMessage(bytes, () => queueMicrotask(() => ring.give(memory)));
}

/** Room after the data for the end mark (tag, true). */
const TAILROOM = 2;

/** A buffer to read the next piece of stored bytes into: a view of a ring buffer, past HEADROOM. */
export function readBuffer(): Buffer {
  const whole = ring.takeWhole();
  return whole.subarray(HEADROOM, whole.length - TAILROOM);
}

/**
 * `n` stored bytes read into `buf` (from readBuffer()) as one FileChunk (`data` = 1), or, with
 * `index`, one BackupFilesChunk (`index` = 1, `data` = 2, `end` = 3). Fields at their default are
 * left out, as protobuf does.
 */
export function rawChunk(buf: Buffer, n: number, files?: { index: number; end: boolean }): RawMessage {
  const memory = Buffer.from(buf.buffer, buf.byteOffset - HEADROOM, HEADROOM + buf.length + TAILROOM);
  const dataTag = lengthTag(files ? 2 : 1);
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
  return rawChunkOf(memory.subarray(start, end), memory);
}

/**
 * The service definition with GetBackupFile and GetBackupFiles also sending RawMessages as they
 * are, and PutBackupFile's data messages read as views of what arrived (shared/stream/raw-message.ts).
 */
export function withRawMessages(service: grpc.ServiceDefinition): grpc.ServiceDefinition {
  return {
    ...service,
    GetBackupFile: rawResponses(service.GetBackupFile),
    GetBackupFiles: rawResponses(service.GetBackupFiles),
    PutBackupFile: rawUploads(service.PutBackupFile),
  };
}
