import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import type { TempFile } from '../storage/posix';
import type { PageChecksum__Output } from '../../shared/generated/pgrepo/v1/PageChecksum';

export interface ReceivedTrailer {
  size: number;
  checksum: string;
  repo_size: number;
  repo_checksum: string;
  checksum_page?: PageChecksum__Output | null;
}

/**
 * Data parts written but not yet known to be: the next part is hashed while the last ones are
 * still being written (each at its own offset), so one upload's bytes are not hashed and written
 * strictly one after the other.
 */
const WRITES_AHEAD = 2;

/**
 * Writes the data parts of an upload into a temp file, then checks the trailer against what
 * actually arrived, so a truncated or damaged transfer is never committed. The returned
 * trailer's repo_checksum is the SHA-1 taken here; a sender may leave it empty (a backup's
 * agent does, to spare its main thread) and then only the size is compared. The messages' data
 * buffers must be their own: up to WRITES_AHEAD of them are still being written when the next
 * message is asked for.
 */
export async function receiveIntoTemp<M extends { part?: string; data?: Buffer; trailer?: ReceivedTrailer | null }>(
  messages: AsyncIterator<M>, temp: TempFile, what: string, opts: { hash?: boolean } = {},
): Promise<ReceivedTrailer> {
  // hash: false when nothing records the stored bytes' SHA-1 and the sender sends none: only the size is checked
  const hash = opts.hash === false ? undefined : createHash('sha1');
  let received = 0;
  const writing: Promise<void>[] = [];
  try {
    for (;;) {
      const { value, done } = await messages.next();
      if (done) throw new StatusError(grpc.status.ABORTED, `${what}: the upload ended before its trailer; nothing was stored`);
      if (value.part === 'data' && value.data) {
        hash?.update(value.data);
        received += value.data.length;
        const written = temp.append(value.data);
        written.catch(() => undefined); // awaited in turn below
        writing.push(written);
        if (writing.length > WRITES_AHEAD) await writing.shift();
      } else if (value.part === 'trailer' && value.trailer) {
        while (writing.length > 0) await writing.shift();
        const trailer = value.trailer;
        const actual = hash ? hash.digest('hex') : '';
        if (trailer.repo_size !== received || (hash && trailer.repo_checksum !== '' && trailer.repo_checksum !== actual)) {
          throw new StatusError(grpc.status.DATA_LOSS,
            `${what}: received ${received} bytes with SHA-1 ${actual}, but the sender sent ${trailer.repo_size} bytes with SHA-1 ${trailer.repo_checksum}; nothing was stored`);
        }
        return { ...trailer, repo_checksum: actual };
      } else {
        throw new StatusError(grpc.status.INVALID_ARGUMENT, `${what}: unexpected '${value.part ?? 'empty'}' message in an upload`);
      }
    }
  } finally {
    // nothing may still be writing into the file once the caller commits or discards it
    await Promise.allSettled(writing);
  }
}

/**
 * The trailer with the original's SHA-1 settled: the sender's; for a file stored uncompressed the
 * stored bytes are the original, so the SHA-1 taken here is the original's too (an agent leaves
 * it out rather than take it twice) and, when the sender gave one, must match it.
 */
export function withOriginalChecksum(trailer: ReceivedTrailer, compressType: string, what: string): ReceivedTrailer {
  if (compressType === 'none') {
    if (trailer.checksum !== '' && trailer.checksum !== trailer.repo_checksum) {
      throw new StatusError(grpc.status.DATA_LOSS,
        `${what}: the sender's SHA-1 ${trailer.checksum} of the file does not match the SHA-1 ${trailer.repo_checksum} of the bytes received; nothing was stored`);
    }
    return { ...trailer, checksum: trailer.repo_checksum };
  }
  if (trailer.checksum === '') throw new StatusError(grpc.status.INVALID_ARGUMENT, `${what}: the trailer lacks the SHA-1 of the original file; nothing was stored`);
  return trailer;
}
