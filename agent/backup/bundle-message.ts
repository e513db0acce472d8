import { putVarint, varintLength } from '../../shared/stream/raw-message';
import { messageLength, writeMessage, type ProtoFields } from '../../shared/stream/proto-encode';
import type { BlockRange } from '../../shared/stream/page-checksum';

/*
 * The BundleUpload messages of a bundle's files, encoded where the files are read (a reader
 * thread): one message carries the pieces of many small files, and the main thread writes it as
 * it is. Three messages per file, each through protobufjs, grpc-js and HTTP/2 on the main thread
 * and again through the server's, were most of what a bundle of 8 KiB files cost.
 * Field numbers are repository.proto's (BundleUpload.files, BundleFiles.piece, BundlePiece,
 * FileHeader, FileTrailer, PageChecksum, BlockRange); test/unit/bundle-message.test.ts decodes
 * what is written here with the proto itself.
 */
const UPLOAD_FILES = 5;
const FILES_PIECE = 1;

/** Stored bytes per message: a message is cut once it carries this many. */
export const MESSAGE_DATA = 1024 * 1024;
/** Room before the pieces for BundleUpload's tag and BundleFiles' length (a 5-byte varint). */
const OUTER = 6;

export interface PieceHeader {
  name: string;
  timestamp: number;
  mode: string;
  user: string;
  group: string;
  compressType: string;
}

export interface PieceTrailer {
  size: number;
  /** SHA-1 of the original; empty when the file is stored as it is (the server's SHA-1 is then the original's) */
  checksum: string;
  repoSize: number;
  pages?: { valid: boolean; errors: BlockRange[] };
}

function headerFields(h: PieceHeader): ProtoFields {
  return [[2, h.name], [3, h.timestamp], [4, h.mode], [5, h.user], [6, h.group], [7, h.compressType]];
}

function trailerFields(t: PieceTrailer): ProtoFields {
  const pages: ProtoFields | undefined = t.pages
    ? [[1, t.pages.valid], ...t.pages.errors.map(([first, last]) => [2, [[1, first], [2, last]]] as const)]
    : undefined;
  return [[1, t.size], [2, t.checksum], [3, t.repoSize], [5, pages]];
}

/**
 * Builds the messages of a batch of files: add() each piece in order (a file's first has its
 * header, its last its trailer; a small file is one piece with both), then finish(). Each
 * message's memory is its own, to be transferred to the main thread.
 */
export class BundleMessages {
  private buf: Buffer | undefined;
  private at = 0;
  private readonly done: Buffer[] = [];

  add(header: PieceHeader | undefined, data: Uint8Array, trailer: PieceTrailer | undefined): void {
    const piece: ProtoFields = [[1, header ? headerFields(header) : undefined], [2, data], [3, trailer ? trailerFields(trailer) : undefined]];
    const n = messageLength(piece);
    const need = 1 + varintLength(n) + n;
    if (this.buf && this.at + need > this.buf.length) this.flush();
    if (!this.buf) {
      // pages of the buffer that are never written are never resident: a batch of a few small compressed files costs its size
      this.buf = Buffer.allocUnsafeSlow(Math.max(MESSAGE_DATA + 128 * 1024, OUTER + need));
      this.at = OUTER;
    }
    this.buf[this.at++] = (FILES_PIECE << 3) | 2;
    this.at = putVarint(this.buf, this.at, n);
    this.at = writeMessage(this.buf, this.at, piece);
    if (this.at - OUTER >= MESSAGE_DATA) this.flush();
  }

  /** The messages, in order. */
  finish(): Buffer[] {
    this.flush();
    return this.done.splice(0);
  }

  private flush(): void {
    const buf = this.buf;
    if (!buf) return;
    this.buf = undefined;
    const inner = this.at - OUTER;
    const start = OUTER - 1 - varintLength(inner);
    buf[start] = (UPLOAD_FILES << 3) | 2;
    putVarint(buf, start + 1, inner);
    this.done.push(buf.subarray(start, this.at));
  }
}
