import fs from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type { ConnectionOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { UserError } from './errors';
import type { Options } from './config/options';

export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  certFile: string;
}

function readPem(options: Options, name: string): { data: Buffer; file: string } {
  const file = options.requireStr(name, 'mutual TLS needs a certificate, its key and the CA (see deploy/make-certs.sh)');
  try {
    return { data: fs.readFileSync(file), file };
  } catch (err) {
    throw new UserError(`cannot read --${name} ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

export function readTlsFiles(options: Options): TlsFiles {
  const cert = readPem(options, 'tls-cert');
  const key = readPem(options, 'tls-key');
  const ca = readPem(options, 'tls-ca');
  try {
    new X509Certificate(cert.data);
    new X509Certificate(ca.data);
  } catch (err) {
    throw new UserError(`--tls-cert ${cert.file} or --tls-ca ${ca.file} is not a PEM certificate: ${(err as Error).message}`);
  }
  return { cert: cert.data, key: key.data, ca: ca.data, certFile: cert.file };
}

export function certificateCommonName(pem: Buffer): string {
  const subject = new X509Certificate(pem).subject;
  return /(?:^|\n)CN=([^\n]*)/.exec(subject)?.[1] ?? '';
}

/**
 * grpc-js passes an IP address as the TLS server name when the server is given by address,
 * and Node warns about it on stderr on every start; the certificate is still checked against the IP.
 */
function silenceIpServerNameWarning(): void {
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: string }).code : rest[1];
    if (code === 'DEP0123') return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}

let warningSilenced = false;

function silenceOnce(): void {
  if (!warningSilenced) {
    warningSilenced = true;
    silenceIpServerNameWarning();
  }
}

export function clientCredentials(files: TlsFiles): grpc.ChannelCredentials {
  silenceOnce();
  return grpc.credentials.createSsl(files.ca, files.key, files.cert);
}

/**
 * TLS options for a connection dialed without grpc-js (agent/transfer/raw-download.ts) that checks
 * what grpc-js's credentials above check: the server's certificate must chain to the CA and name
 * `host` (tls.checkServerIdentity, the server name being the host, as grpc-js sets it), and this
 * program shows its own certificate.
 */
export function clientTlsOptions(files: TlsFiles, host: string): Pick<ConnectionOptions, 'ca' | 'key' | 'cert' | 'servername' | 'rejectUnauthorized'> {
  silenceOnce();
  return { ca: files.ca, key: files.key, cert: files.cert, servername: host, rejectUnauthorized: true };
}

/**
 * Server credentials that ask every client for a certificate but let the handshake finish
 * even when it is missing or from another CA. The request is then refused by the call guard
 * with UNAUTHENTICATED and a message that says why: a failed handshake would leave both sides
 * with nothing but "connection dropped". The certificates can be replaced at run time (SIGHUP).
 */
export class ServerTls implements grpc.experimental.CertificateProvider {
  private caListeners = new Set<grpc.experimental.CaCertificateUpdateListener>();
  private identityListeners = new Set<grpc.experimental.IdentityCertificateUpdateListener>();

  constructor(private files: TlsFiles) {}

  credentials(): grpc.ServerCredentials {
    // grpc-js passes its two provider arguments on in swapped order; one object serving both roles sidesteps that
    return grpc.experimental.createCertificateProviderServerCredentials(this, this, false);
  }

  update(files: TlsFiles): void {
    this.files = files;
    for (const l of this.caListeners) l({ caCertificate: files.ca });
    for (const l of this.identityListeners) l({ certificate: files.cert, privateKey: files.key });
  }

  addCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    // grpc-js registers its watcher only after adding listeners: a synchronous first update would be lost
    setImmediate(() => listener({ caCertificate: this.files.ca }));
  }
  removeCaCertificateListener(listener: grpc.experimental.CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
  }
  addIdentityCertificateListener(listener: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.add(listener);
    setImmediate(() => listener({ certificate: this.files.cert, privateKey: this.files.key }));
  }
  removeIdentityCertificateListener(listener: grpc.experimental.IdentityCertificateUpdateListener): void {
    this.identityListeners.delete(listener);
  }
}

/** The CN of a call's client certificate, or undefined when the client has none from our CA. */
export function callerIdentity(call: { getAuthContext(): { sslPeerCertificate?: { subject?: { CN?: string | string[] } } } }): string | undefined {
  const cert = call.getAuthContext().sslPeerCertificate;
  const cn = cert?.subject?.CN;
  // a subject with several CNs is ambiguous: treat it as no identity
  return typeof cn === 'string' && cn !== '' ? cn : undefined;
}

/** A certificate as the server reports it: who, and until when. */
export interface CertificateValidity {
  cn: string;
  notBefore: Date;
  notAfter: Date;
}

export const EXPIRY_WARNING_DAYS = 30;
const DAY_MS = 86_400_000;

/** The certificates in a PEM file (a CA file may hold several). */
export function certificatesIn(pem: Buffer | string): CertificateValidity[] {
  const blocks = String(pem).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((block) => {
    const cert = new X509Certificate(block);
    return { cn: /(?:^|\n)CN=([^\n]*)/.exec(cert.subject)?.[1] ?? cert.subject, notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
  });
}

/** Node's peer-certificate object (tls.getPeerCertificate()) as a validity. */
export function peerValidity(peer: { subject?: { CN?: string | string[] }; valid_from?: string; valid_to?: string }): CertificateValidity {
  const cn = peer.subject?.CN;
  return { cn: Array.isArray(cn) ? cn.join(',') : cn ?? '', notBefore: new Date(peer.valid_from ?? NaN), notAfter: new Date(peer.valid_to ?? NaN) };
}

/** 'expired', 'expiring' (within EXPIRY_WARNING_DAYS), 'not-yet-valid' or 'ok'. */
export function validityState(v: CertificateValidity, now = Date.now()): 'expired' | 'expiring' | 'not-yet-valid' | 'ok' {
  if (v.notAfter.getTime() <= now) return 'expired';
  if (v.notBefore.getTime() > now) return 'not-yet-valid';
  if (v.notAfter.getTime() - now <= EXPIRY_WARNING_DAYS * DAY_MS) return 'expiring';
  return 'ok';
}

export function daysLeft(v: CertificateValidity, now = Date.now()): number {
  return Math.floor((v.notAfter.getTime() - now) / DAY_MS);
}
