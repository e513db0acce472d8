import { createHash, hash as sha1Of, type Hash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import { validateManifestPath } from '../../shared/validate';
import type { TempFile } from '../storage/posix';
import type { FileHeader__Output } from '../../shared/generated/pgrepo/v1/FileHeader';
import { checkReceived, withOriginalChecksum, type ReceivedTrailer } from './receive-file';

/** A piece of a bundle's file as it arrives (BundlePiece). */
export interface ReceivedPiece {
  header: FileHeader__Output | null;
  data: Buffer;
  trailer: ReceivedTrailer | null;
}

/** A file stored in the bundle: its header, its trailer checked against what arrived, where its bytes start. */
export interface BundledFile {
  name: string;
  header: FileHeader__Output;
  trailer: ReceivedTrailer;
  offset: number;
}

interface OpenFile {
  name: string;
  header: FileHeader__Output;
  what: string;
  offset: number;
  received: number;
  hash: Hash | undefined;
}

/**
 * The pieces of a bundle's files, in the order they arrive, written one after the other into
 * the bundle's temp file. Each file's trailer is checked as it arrives (its size, and the SHA-1
 * of its stored bytes, taken here: the manifest records the repository's own); a piece out of
 * order is refused. A file of one piece is hashed in one call, without a Hash object of its own.
 */
export class BundleReceiver {
  readonly files: BundledFile[] = [];
  private end = 0;
  private open: OpenFile | undefined;
  /** the previous message's writes: they go on while the next message is taken apart, no further */
  private writing: Promise<unknown> = Promise.resolve();

  constructor(private readonly temp: TempFile, private readonly bundleId: number) {}

  /** The pieces of one message; the bytes of the message before may still be being written when this returns. */
  async add(pieces: readonly ReceivedPiece[]): Promise<void> {
    const writes: Promise<void>[] = [];
    for (const piece of pieces) {
      const file = this.start(piece);
      const data = piece.data;
      if (data.length > 0) {
        writes.push(this.temp.append(data));
        file.received += data.length;
        this.end += data.length;
      }
      if (piece.header && piece.trailer) {
        this.finish(file, piece.trailer, sha1Of('sha1', data, 'hex'));
      } else {
        file.hash ??= createHash('sha1');
        file.hash.update(data);
        if (piece.trailer) this.finish(file, piece.trailer, file.hash.digest('hex'));
      }
    }
    const previous = this.writing;
    this.writing = Promise.all(writes);
    this.writing.catch(() => undefined); // awaited with the next message, or by done()/settle()
    await previous;
  }

  /** Every file's bytes written; refuses a bundle whose last file has no trailer. */
  async done(): Promise<BundledFile[]> {
    await this.writing;
    if (this.open) throw new StatusError(grpc.status.ABORTED, `${this.open.what}: the upload ended before its trailer; nothing was stored`);
    return this.files;
  }

  /** Nothing is still being written into the temp file once this resolves (before it is committed or discarded). */
  async settle(): Promise<void> {
    await this.writing.catch(() => undefined);
  }

  /** The file a piece belongs to: a new one when it has a header, else the one open. */
  private start(piece: ReceivedPiece): OpenFile {
    if (!piece.header) {
      if (!this.open) throw new StatusError(grpc.status.INVALID_ARGUMENT, `bundle ${this.bundleId}: a piece of a file came before the file's header`);
      return this.open;
    }
    if (this.open) {
      throw new StatusError(grpc.status.INVALID_ARGUMENT, `${this.open.what}: the next file (${piece.header.name}) began before this one's trailer`);
    }
    const name = validateManifestPath(piece.header.name);
    this.open = { name, header: piece.header, what: `backup file ${name} (bundle ${this.bundleId})`, offset: this.end, received: 0, hash: undefined };
    return this.open;
  }

  private finish(file: OpenFile, trailer: ReceivedTrailer, actual: string): void {
    const checked = withOriginalChecksum(checkReceived(trailer, file.received, actual, file.what), file.header.compress_type, file.what);
    this.files.push({ name: file.name, header: file.header, trailer: checked, offset: file.offset });
    this.open = undefined;
  }
}
