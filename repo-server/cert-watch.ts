import type { TLSSocket } from 'node:tls';
import type * as grpc from '@grpc/grpc-js';
import type { Logger } from '../shared/log';
import { certificatesIn, daysLeft, peerValidity, validityState, EXPIRY_WARNING_DAYS, type CertificateValidity, type TlsFiles } from '../shared/tls';

type PeerCertificate = Parameters<typeof peerValidity>[0] & { issuer?: { CN?: string | string[] } };

const iso = (d: Date) => (Number.isNaN(d.getTime()) ? 'an unreadable date' : d.toISOString());

/**
 * Watches certificate lifetimes: the server's own (at start, on SIGHUP and daily) and each
 * client's (as it calls), warning EXPIRY_WARNING_DAYS before expiry, once a day per certificate.
 */
export class CertificateWatch {
  private readonly warned = new Map<string, number>();

  constructor(private readonly log: Logger, private readonly now: () => number = Date.now) {}

  checkOwn(files: TlsFiles): void {
    for (const [what, pem] of [['server certificate', files.cert], ['CA certificate', files.ca]] as const) {
      for (const v of certificatesIn(pem)) this.check(v, what);
    }
  }

  checkPeer(peer: PeerCertificate & { fingerprint256?: string }): void {
    this.check(peerValidity(peer), 'client certificate', peer.fingerprint256);
  }

  private check(v: CertificateValidity, what: string, id = `${what}/${v.cn}/${v.notAfter.getTime()}`): void {
    const state = validityState(v, this.now());
    if (state === 'ok') return;
    const last = this.warned.get(id);
    if (last !== undefined && this.now() - last < 86_400_000) return;
    this.warned.set(id, this.now());
    const fields = { cn: v.cn, notAfter: iso(v.notAfter), certificate: what };
    if (state === 'expiring') {
      this.log.warn({ ...fields, daysLeft: daysLeft(v, this.now()) },
        `${what} '${v.cn}' expires within ${EXPIRY_WARNING_DAYS} days: issue a new one (repoctl cert issue) and reload (SIGHUP)`);
    } else {
      this.log.error({ ...fields, notBefore: iso(v.notBefore) }, `${what} '${v.cn}' is ${state === 'expired' ? 'expired' : 'not valid yet'}`);
    }
  }
}

interface RefusedHandshake {
  error: string;
  cert?: PeerCertificate;
}

/**
 * Why a client's certificate failed verification. The server lets such handshakes finish (so
 * the client hears why it is refused rather than a dropped connection), and grpc-js then shows
 * a call no certificate at all: this remembers each unverified connection's certificate and
 * error, by peer address, so the refusal can name the CN and the expiry date.
 */
export class RefusedCertificates {
  private readonly byPeer = new Map<string, RefusedHandshake>();

  /** Listens to the TLS handshakes of a bound grpc-js server; false when grpc-js does not expose them. */
  attach(server: grpc.Server): boolean {
    // grpc-js keeps its http2 servers in a private map; when that changes, refusals just say less
    const http2Servers = (server as unknown as { http2Servers?: Map<NodeJS.EventEmitter, unknown> }).http2Servers;
    if (!(http2Servers instanceof Map) || http2Servers.size === 0) return false;
    for (const http2Server of http2Servers.keys()) http2Server.on('secureConnection', (socket: TLSSocket) => this.onHandshake(socket));
    return true;
  }

  private onHandshake(socket: TLSSocket): void {
    if (socket.authorized) return;
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    const cert = socket.getPeerCertificate();
    this.byPeer.set(key, { error: String(socket.authorizationError ?? 'unverified'), cert: cert && Object.keys(cert).length ? cert : undefined });
    socket.once('close', () => this.byPeer.delete(key));
  }

  /** Why the client at `peer` (grpc's "address:port") has no verified certificate, for logs and its error. */
  explain(peer: string): { reason: string; cn?: string; notAfter?: string } | undefined {
    const refused = this.byPeer.get(peer);
    if (!refused?.cert) return undefined;
    const v = peerValidity(refused.cert);
    const issuer = refused.cert.issuer;
    switch (refused.error) {
      case 'CERT_HAS_EXPIRED':
        return { cn: v.cn, notAfter: iso(v.notAfter), reason: `its certificate CN '${v.cn}' expired on ${iso(v.notAfter)}: issue a new one (repoctl cert issue)` };
      case 'CERT_NOT_YET_VALID':
        return { cn: v.cn, notAfter: iso(v.notAfter), reason: `its certificate CN '${v.cn}' is not valid before ${iso(v.notBefore)} (check the clocks)` };
      default:
        return { cn: v.cn, notAfter: iso(v.notAfter), reason: `its certificate CN '${v.cn}' (issued by '${issuer?.CN ?? '?'}') is not signed by this installation's CA (${refused.error})` };
    }
  }
}
