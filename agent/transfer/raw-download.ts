import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { CHANNEL_OPTIONS, FLOW_CONTROL_WINDOW, loadProto } from '../../shared/proto';
import { clientTlsOptions, type TlsFiles } from '../../shared/tls';
import { framed, FramingError, MessageReader, statusMessage } from './grpc-frames';
import type { GetBackupFileRequest } from '../../shared/generated/pgrepo/v1/GetBackupFileRequest';
import type { GetBackupFilesRequest } from '../../shared/generated/pgrepo/v1/GetBackupFilesRequest';
import type { FileChunk__Output } from '../../shared/generated/pgrepo/v1/FileChunk';
import type { BackupFilesChunk__Output } from '../../shared/generated/pgrepo/v1/BackupFilesChunk';

/*
 * GetBackupFile and GetBackupFiles received on node:http2 directly, for the restore workers: the
 * messages are cut out of the DATA chunks into memory reused for the whole call (grpc-frames.ts)
 * instead of a fresh buffer per message, which is where grpc-js put most of a restoring agent's
 * memory. The connection is the one grpc-js would make: the same mutual-TLS material and server
 * name check, the same HTTP/2 windows and keepalive pings, and a failed call is a ServiceError of
 * the same shape (code, details, metadata), so callers handle both alike.
 */

/** A server-streaming call: its messages, each valid until the next is asked for; cancel() ends it (RST_STREAM CANCEL). */
export interface DownloadCall<T> extends AsyncIterable<T> {
  cancel(): void;
}

const MAX_MESSAGE = CHANNEL_OPTIONS['grpc.max_receive_message_length'] as number;
const KEEPALIVE_MS = CHANNEL_OPTIONS['grpc.keepalive_time_ms'] as number;
const KEEPALIVE_TIMEOUT_MS = CHANNEL_OPTIONS['grpc.keepalive_timeout_ms'] as number;

function serviceError(code: grpc.status, details: string, metadata = new grpc.Metadata()): grpc.ServiceError {
  return Object.assign(new Error(`${code} ${grpc.status[code]}: ${details}`), { code, details, metadata });
}

/** grpc-js's mapping of an HTTP status other than 200 (a proxy or something that is not a gRPC server answered). */
function httpStatusError(status: number): grpc.ServiceError {
  const code = ({ 400: grpc.status.INTERNAL, 401: grpc.status.UNAUTHENTICATED, 403: grpc.status.PERMISSION_DENIED, 404: grpc.status.UNIMPLEMENTED,
    429: grpc.status.UNAVAILABLE, 502: grpc.status.UNAVAILABLE, 503: grpc.status.UNAVAILABLE, 504: grpc.status.UNAVAILABLE } as Record<number, grpc.status>)[status];
  return serviceError(code ?? grpc.status.UNKNOWN, `Received HTTP status code ${status}`);
}

/** A stream reset by the server, in grpc-js's words (describeCallError recognizes them). */
function resetError(rstCode: number): grpc.ServiceError {
  const c = http2.constants;
  switch (rstCode) {
    case c.NGHTTP2_REFUSED_STREAM: return serviceError(grpc.status.UNAVAILABLE, 'Stream refused by server');
    case c.NGHTTP2_CANCEL: return serviceError(grpc.status.CANCELLED, 'Call cancelled');
    case c.NGHTTP2_ENHANCE_YOUR_CALM: return serviceError(grpc.status.RESOURCE_EXHAUSTED, 'Bandwidth exhausted or memory limit exceeded');
    case c.NGHTTP2_INTERNAL_ERROR: return serviceError(grpc.status.INTERNAL, `Received RST_STREAM with code ${rstCode} (Internal server error)`);
    default: return serviceError(grpc.status.INTERNAL, `Received RST_STREAM with code ${rstCode}`);
  }
}

/** The status a response ended with (trailers, or the headers of a trailers-only response), as an error; null for OK; undefined without one. */
export function trailerStatus(trailers: http2.IncomingHttpHeaders | undefined): grpc.ServiceError | null | undefined {
  const raw = trailers?.['grpc-status'];
  if (raw === undefined) return undefined;
  const code = Number(Array.isArray(raw) ? raw[0] : raw);
  if (code === grpc.status.OK) return null;
  const metadata = new grpc.Metadata();
  for (const [key, value] of Object.entries(trailers!)) {
    if (key.startsWith(':') || key === 'grpc-status' || key === 'grpc-message' || key.endsWith('-bin') || value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) metadata.add(key, v);
  }
  const known = Number.isInteger(code) && code > 0 && code <= grpc.status.UNAUTHENTICATED;
  return serviceError(known ? code : grpc.status.UNKNOWN, statusMessage(trailers!['grpc-message']), metadata);
}

/** One HTTP/2 connection to the repository server and what is known of its fate. */
class Connection {
  readonly session: http2.ClientHttp2Session;
  connected = false;
  lost?: Error;
  private active = 0;
  private readonly keepalive: NodeJS.Timeout;

  constructor(address: string, tls: TlsFiles, private readonly onGone: (c: Connection) => void) {
    const host = /^\[(.*)\]:\d+$/.exec(address)?.[1] ?? address.replace(/:\d+$/, '');
    this.session = http2.connect(`https://${address}`, {
      ...clientTlsOptions(tls, host),
      settings: { initialWindowSize: FLOW_CONTROL_WINDOW },
      maxSendHeaderBlockLength: Number.MAX_SAFE_INTEGER,
      // as grpc-js: Node's http2 misbehaves when this limit is reached; the windows bound what is held
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
    });
    this.session.once('connect', () => {
      this.connected = true;
      this.session.setLocalWindowSize(FLOW_CONTROL_WINDOW);
    });
    this.session.on('error', (err) => {
      this.lost ??= err;
    });
    this.session.on('goaway', () => this.onGone(this));
    this.session.once('close', () => {
      clearInterval(this.keepalive);
      this.lost ??= new Error('the connection was closed');
      this.onGone(this);
    });
    this.session.unref();
    // grpc-js's keepalive: a ping every KEEPALIVE_MS; no answer in KEEPALIVE_TIMEOUT_MS and the connection is given up
    this.keepalive = setInterval(() => this.ping(), KEEPALIVE_MS);
    this.keepalive.unref();
  }

  private ping(): void {
    if (!this.connected || this.session.destroyed) return;
    const timeout = setTimeout(() => this.session.destroy(new Error('keepalive ping timed out')), KEEPALIVE_TIMEOUT_MS);
    timeout.unref();
    try {
      this.session.ping(() => clearTimeout(timeout));
    } catch {
      clearTimeout(timeout);
    }
  }

  /** Holds the event loop open while calls are in flight (the session alone does not: a worker must be able to end). */
  hold(delta: 1 | -1): void {
    this.active += delta;
    if (this.active === 1 && delta === 1) this.session.ref();
    if (this.active === 0) this.session.unref();
  }

  /** Why a call on this connection failed when the stream gives no better reason. */
  failure(err: Error | undefined): grpc.ServiceError {
    const why = this.lost ?? err;
    if (!this.connected) return serviceError(grpc.status.UNAVAILABLE, `No connection established. Last error: ${why?.message ?? 'connection closed'}`);
    return serviceError(grpc.status.UNAVAILABLE, why ? `Connection dropped (${why.message})` : 'Connection dropped');
  }
}

class Call<T> implements DownloadCall<T> {
  private readonly stream: http2.ClientHttp2Stream;
  private readonly reader = new MessageReader(MAX_MESSAGE);
  private headers?: http2.IncomingHttpHeaders;
  private trailers?: http2.IncomingHttpHeaders;
  private cancelled = false;
  private finished = false;

  constructor(private readonly connection: Connection, path: string, body: Buffer, authority: string, private readonly decode: (b: Buffer) => T) {
    connection.hold(1);
    this.stream = connection.session.request({
      ':method': 'POST', ':path': path, ':authority': authority, ':scheme': 'https',
      'content-type': 'application/grpc', te: 'trailers', 'grpc-accept-encoding': 'identity', 'user-agent': 'pgrepo-agent',
    });
    this.stream.on('response', (h) => {
      this.headers = h;
    });
    this.stream.on('trailers', (t) => {
      this.trailers = t;
    });
    // the iterator below reports errors; without a listener one would be thrown out of the event loop
    this.stream.on('error', () => undefined);
    this.stream.once('close', () => this.done());
    this.stream.end(body);
  }

  cancel(): void {
    if (this.finished || this.cancelled) return;
    this.cancelled = true;
    if (!this.stream.closed && !this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  private done(): void {
    if (this.finished) return;
    this.finished = true;
    this.connection.hold(-1);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    // the stream's iterator is driven by hand: left early (the consumer failed or stopped), the
    // finally below resets the stream with CANCEL, as grpc-js's cancel() does
    const chunks = this.stream[Symbol.asyncIterator]();
    let ok = false;
    try {
      for (;;) {
        let next: IteratorResult<Buffer>;
        try {
          next = await chunks.next();
        } catch (err) {
          throw this.errorFor(err as Error);
        }
        if (next.done) break;
        this.reader.push(next.value);
        for (let m; (m = this.next()) !== undefined;) yield this.decodeOrFail(m);
      }
      const status = trailerStatus(this.trailers ?? this.headers);
      if (status) throw status;
      if (status === undefined) throw await this.noStatus();
      if (this.reader.buffered > 0) {
        throw serviceError(grpc.status.INTERNAL, `the server ended the call ${this.reader.buffered} bytes into a message that did not arrive whole`);
      }
      ok = true;
    } finally {
      if (!ok) this.cancel();
    }
  }

  /**
   * Why a response ended without a status: the server went away (its socket closes just after the
   * stream ends, so the stream's close and one more turn of the event loop are awaited, as grpc-js
   * does), reset the stream, or something that is not a gRPC server answered.
   */
  private async noStatus(): Promise<grpc.ServiceError> {
    if (!this.stream.closed) await new Promise((resolve) => this.stream.once('close', resolve));
    await new Promise((resolve) => setImmediate(resolve));
    const http = Number(this.headers?.[':status'] ?? 0);
    if (http !== 0 && http !== 200) return httpStatusError(http);
    return this.errorFor(new Error('the server ended the call without a gRPC status'));
  }

  private next(): Buffer | undefined {
    try {
      return this.reader.next();
    } catch (err) {
      if (err instanceof FramingError) throw serviceError(err.tooLarge ? grpc.status.RESOURCE_EXHAUSTED : grpc.status.INTERNAL, err.message);
      throw err;
    }
  }

  private decodeOrFail(message: Buffer): T {
    try {
      return this.decode(message);
    } catch (err) {
      throw serviceError(grpc.status.INTERNAL, `Response message parsing error: ${(err as Error).message}`);
    }
  }

  /** A stream error as the ServiceError grpc-js would give: the server's status when it sent one, else what broke. */
  private errorFor(err: Error): grpc.ServiceError {
    const status = trailerStatus(this.trailers ?? this.headers);
    if (status) return status;
    if (this.cancelled) return serviceError(grpc.status.CANCELLED, 'Cancelled on client');
    if (this.connection.lost || !this.connection.connected || this.connection.session.destroyed) return this.connection.failure(err);
    const rst = this.stream.rstCode;
    if (rst !== undefined && rst !== http2.constants.NGHTTP2_NO_ERROR) return resetError(rst);
    return serviceError(grpc.status.UNKNOWN, `No status information received (${err.message})`);
  }
}

/**
 * The repository's two download methods on a connection of their own (dialed at the first call,
 * dialed again after it is lost), for a restore worker thread.
 */
export class RawDownloadClient {
  private connection?: Connection;
  private readonly methods = loadProto().pgrepo.v1.Repository.service;

  constructor(private readonly address: string, private readonly tls: TlsFiles) {}

  GetBackupFile(request: GetBackupFileRequest): DownloadCall<FileChunk__Output> {
    const m = this.methods.GetBackupFile;
    return this.call(m.path, m.requestSerialize(request), (b) => m.responseDeserialize(b) as FileChunk__Output);
  }

  GetBackupFiles(request: GetBackupFilesRequest): DownloadCall<BackupFilesChunk__Output> {
    const m = this.methods.GetBackupFiles;
    return this.call(m.path, m.requestSerialize(request), (b) => m.responseDeserialize(b) as BackupFilesChunk__Output);
  }

  close(): void {
    this.connection?.session.close();
    this.connection = undefined;
  }

  private call<T>(path: string, request: Buffer, decode: (b: Buffer) => T): DownloadCall<T> {
    if (!this.connection || this.connection.session.closed || this.connection.session.destroyed) {
      this.connection = new Connection(this.address, this.tls, (gone) => {
        if (this.connection === gone) this.connection = undefined;
      });
    }
    return new Call(this.connection, path, framed(request), this.address, decode);
  }
}
