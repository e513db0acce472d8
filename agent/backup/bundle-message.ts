import { putVarint, varintLength } from '../../shared/stream/raw-message';
import { messageLength, writeMessage, type ProtoFields } from '../../shared/stream/proto-encode';
import type { BlockRange } from '../../shared/stream/page-checksum';

/*
 * The BundleUpload messages of a bundle's files, encoded where the files are read (a codec
 * thread, bundle-read.ts): one message carries the pieces of many small files, and the main thread writes it as
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
 * Where this thread builds a message before copying it out at its size. A message of compressed
 * small files is mostly far below MESSAGE_DATA (128 one-page tables at zst-3: ~30 KB), and a
 * fresh buffer of MESSAGE_DATA per message, touched at its start only, came from glibc's arena
 * of the thread that built it and went back to it once the main thread had sent it: tens of MiB
 * of arenas per thread at the peak of a bundled backup. Messages are built one at a time, each
 * within one synchronous task, so one per thread is enough.
 */
let scratch: Buffer | undefined;

/**
 * Builds the messages of a batch of files: add() each piece in order (a file's first has its
 * header, its last its trailer; a small file is one piece with both), then finish(). Each
 * message's memory is its own and of its size, to be transferred to the main thread. One batch
 * at a time per thread (they share this thread's scratch buffer).
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
      if (!scratch || scratch.length < OUTER + need) scratch = Buffer.allocUnsafeSlow(Math.max(MESSAGE_DATA + 128 * 1024, OUTER + need));
      this.buf = scratch;
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
    const message = Buffer.allocUnsafeSlow(this.at - start);
    buf.copy(message, 0, start, this.at);
    this.done.push(message);
  }
}
