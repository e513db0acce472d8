// X.509 for the installation: a CA and the certificates it signs. Node's crypto cannot sign a
// certificate, so @peculiar/x509 builds them; keys are WebCrypto EC P-256. Loaded only by
// `repoctl cert` (its reflect polyfill is needed by the library's dependency injection).
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

export type CertKind = 'server' | 'agent' | 'operator';

/** Lifetimes: the CA outlives everything it signs; people's certificates are renewed most often. */
export const LIFETIME_DAYS: Record<CertKind | 'ca', number> = { ca: 3650, server: 825, agent: 825, operator: 365 };

export interface PemPair {
  cert: string;
  key: string;
}

export interface Validity {
  notBefore: Date;
  notAfter: Date;
}

/** From now (less five minutes of clock skew) for `days`. */
export function validityFor(days: number, now = Date.now()): Validity {
  return { notBefore: new Date(now - 5 * 60_000), notAfter: new Date(now + days * DAY_MS) };
}

const serial = () => {
  const bytes = randomBytes(16);
  bytes[0] &= 0x7f; // positive
  return bytes.toString('hex');
};

async function newKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function keyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`;
}

/** CN values become part of a distinguished name: keep them to a safe alphabet. */
export function checkCommonName(cn: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(cn)) {
    throw new Error(`'${cn}' is not usable as a certificate name: letters, digits, '.', '_' and '-' only, up to 64, not starting with a symbol`);
  }
  return cn;
}

export async function createCa(cn: string, validity: Validity): Promise<PemPair> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(), name: `CN=${cn}`, ...validity, keys, signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await keyPem(keys.privateKey) };
}

export interface IssueRequest {
  ca: PemPair;
  cn: string;
  kind: CertKind;
  /** extra DNS names or IP addresses (servers) */
  san?: string[];
  validity: Validity;
}

function sanFor(req: IssueRequest): x509.JsonGeneralName[] {
  if (req.kind !== 'server') return [];
  const names = [...new Set([req.cn, 'localhost', '127.0.0.1', '::1', ...(req.san ?? [])])];
  return names.map((n) => (isIP(n) ? { type: 'ip', value: n } : { type: 'dns', value: n }));
}

/** A certificate for a server (serverAuth, with subjectAltNames) or a client (clientAuth), signed by the CA. */
export async function issueCertificate(req: IssueRequest): Promise<PemPair> {
  const caCert = new x509.X509Certificate(req.ca.cert);
  const caKey = await webcrypto.subtle.importKey('pkcs8', pemBody(req.ca.key), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])
    .catch((err: Error) => { throw new Error(`the CA key is not an EC P-256 private key in PKCS#8 PEM: ${err.message}`); });
  const keys = await newKeys();
  const san = sanFor(req);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(), subject: `CN=${checkCommonName(req.cn)}`, issuer: caCert.subject, ...req.validity,
    publicKey: keys.publicKey, signingKey: caKey, signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([req.kind === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
      ...(san.length ? [new x509.SubjectAlternativeNameExtension(san)] : []),
    ],
  });
  return { cert: cert.toString('pem') + '\n', key: await keyPem(keys.privateKey) };
}

function pemBody(pem: string): Buffer {
  const m = /-----BEGIN PRIVATE KEY-----([\s\S]+?)-----END PRIVATE KEY-----/.exec(pem);
  if (!m) throw new Error('the CA key is not a PKCS#8 PEM private key (BEGIN PRIVATE KEY)');
  return Buffer.from(m[1].replace(/\s+/g, ''), 'base64');
}
