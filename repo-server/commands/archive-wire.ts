import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import { decodeFrame, FRAME_SIZE } from '../../shared/stream/frame-codec';

const LZ4_MAGIC = 0x184d2204;

/**
 * The original size an lz4 frame of the wire says it holds, refused unless the frame records it
 * and it is at most one chunk: that bounds what decoding it may produce (no decompression bombs).
 */
function wireFrameSize(frame: Buffer, what: string): number {
  const recordsSize = frame.length >= 15 && frame.readUInt32LE(0) === LZ4_MAGIC && (frame[4] >> 3) & 1;
  const size = recordsSize ? Number(frame.readBigUInt64LE(6)) : -1;
  if (size < 0 || size > FRAME_SIZE) {
    throw new StatusError(grpc.status.INVALID_ARGUMENT, `${what}: a data part is not an lz4 frame of at most ${FRAME_SIZE} bytes that records its size; nothing was stored`);
  }
  return size;
}

/**
 * The data parts of a WAL upload as they are to be stored. With compress-type none an agent may
 * send them lz4-compressed (its compress-level-network): they are decompressed here, one frame
 * per part, so only the stored bytes are hashed and checked against the trailer. Each part gets a
 * buffer of its own: the receiver asks for the next part while earlier ones are still being
 * written (receiveIntoTemp), so a buffer reused from part to part would be overwritten under
 * those writes and the segment stored damaged behind a correct checksum.
 */
export function unwire<M extends { part?: string; data?: Buffer }>(messages: AsyncIterator<M>, compressType: string, wireType: string,
  what: string): AsyncIterator<M> {
  if (!wireType) return messages;
  if (wireType !== 'lz4' || compressType !== 'none') {
    throw new StatusError(grpc.status.INVALID_ARGUMENT, `${what}: wire compression '${wireType}' with compress-type '${compressType}' is not supported (only lz4 with none)`);
  }
  return {
    async next() {
      const next = await messages.next();
      if (next.done || next.value.part !== 'data' || !next.value.data) return next;
      const frame = next.value.data;
      const size = wireFrameSize(frame, what);
      let data: Buffer;
      try {
        data = decodeFrame('lz4', frame, Buffer.allocUnsafe(Math.max(size, 1)));
      } catch (err) {
        throw new StatusError(grpc.status.DATA_LOSS, `${what}: a data part does not decompress (${(err as Error).message.replace(/:.*$/, '')}); nothing was stored`);
      }
      if (data.length !== size) throw new StatusError(grpc.status.DATA_LOSS, `${what}: a data part decompressed to ${data.length} bytes, not the ${size} it records; nothing was stored`);
      return { done: false, value: { ...next.value, data } };
    },
  };
}
