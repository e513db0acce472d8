import fs from 'node:fs';
import path from 'node:path';
import { randomBytes, X509Certificate } from 'node:crypto';
import { UserError } from '../../shared/errors';
import type { Options } from '../../shared/config/options';

const KINDS = ['server', 'agent', 'operator'] as const;

export const CERT_USAGE = `repoctl cert init [--cert-dir DIR]                         make the installation's CA (ca.crt, ca.key)
repoctl cert issue server|agent|operator CN [CN...] [--san NAME]... [--days N] [--cert-dir DIR]`;

/** Writes a file under a temp name and renames it into place, so no reader ever sees half of it. */
function writeAtomic(file: string, data: string, mode: number): void {
  const tmp = `${file}.tmp.${randomBytes(4).toString('hex')}`;
  fs.writeFileSync(tmp, data, { mode, flag: 'wx' });
  fs.renameSync(tmp, file);
}

function describe(file: string): { cn: string; notAfter: string } {
  const cert = new X509Certificate(fs.readFileSync(file));
  return { cn: /CN=([^\n]*)/.exec(cert.subject)?.[1] ?? cert.subject, notAfter: new Date(cert.validTo).toISOString() };
}

export interface CertResult {
  text: string;
  json: Record<string, unknown>;
}

/** `repoctl cert init|issue`: local work on the CA directory, no server involved. */
export async function certCommand(options: Options, words: string[]): Promise<CertResult> {
  const dir = path.resolve(options.str('cert-dir')!);
  const days = options.int('days');
  // loaded only here: the X.509 library and its polyfill are not needed by any other command
  const { LIFETIME_DAYS, checkCommonName, createCa, issueCertificate, validityFor } = require('./certificates') as typeof import('./certificates');
  const caCert = path.join(dir, 'ca.crt');
  const caKey = path.join(dir, 'ca.key');
  const [sub, kindWord, cn, ...extra] = words;
  if (sub === 'init') {
    if (kindWord) throw new UserError(`cert init takes no arguments (got '${kindWord}')\n${CERT_USAGE}`);
    if (fs.existsSync(caCert) || fs.existsSync(caKey)) {
      throw new UserError(`${dir} already has a CA (ca.crt or ca.key): refusing to replace it, since every certificate it signed would stop working; move both away to start over`);
    }
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const ca = await createCa(options.str('ca-name')!, validityFor(days ?? LIFETIME_DAYS.ca));
    writeAtomic(caKey, ca.key, 0o600);
    writeAtomic(caCert, ca.cert, 0o644);
    const d = describe(caCert);
    return {
      text: `wrote ${caCert} and ${caKey} (CA '${d.cn}', valid until ${d.notAfter}); keep ca.key offline, give ca.crt to every host`,
      json: { cert: caCert, key: caKey, cn: d.cn, kind: 'ca', notAfter: d.notAfter },
    };
  }
  if (sub === 'issue') {
    const kind = KINDS.find((k) => k === kindWord);
    const names = [cn, ...extra].filter((n): n is string => n !== undefined);
    if (!kind || names.length === 0) throw new UserError(`cert issue needs a kind (${KINDS.join(', ')}) and a CN\n${CERT_USAGE}`);
    for (const name of names) {
      try {
        checkCommonName(name);
      } catch (err) {
        throw new UserError((err as Error).message);
      }
      if (name === 'ca') throw new UserError("'ca' is the CA's own file name; choose another CN");
    }
    if (!fs.existsSync(caCert) || !fs.existsSync(caKey)) throw new UserError(`no CA in ${dir}: run 'repoctl cert init --cert-dir ${dir}' first`);
    const ca = { cert: fs.readFileSync(caCert, 'utf8'), key: fs.readFileSync(caKey, 'utf8') };
    const results: CertResult[] = [];
    for (const name of names) {
      const pair = await issueCertificate({ ca, cn: name, kind, san: options.list('san'), validity: validityFor(days ?? LIFETIME_DAYS[kind]) })
        .catch((err: Error) => { throw new UserError(`cannot issue the certificate: ${err.message}`); });
      const certFile = path.join(dir, `${name}.crt`);
      const keyFile = path.join(dir, `${name}.key`);
      const renewed = fs.existsSync(certFile);
      writeAtomic(keyFile, pair.key, 0o600);
      writeAtomic(certFile, pair.cert, 0o644);
      const d = describe(certFile);
      const use = kind === 'server' ? 'tls-cert/tls-key of pgrepo-server' : kind === 'agent' ? `tls-cert/tls-key of the agent; authorize it with auth=${name}=agent:STANZA` : `tls-cert/tls-key of repoctl; authorize it with auth=${name}=admin (or viewer)`;
      results.push({
        text: `${renewed ? 'renewed' : 'wrote'} ${certFile} and ${keyFile} (${kind} '${name}', valid until ${d.notAfter}): the ${use}`,
        json: { cert: certFile, key: keyFile, cn: name, kind, notAfter: d.notAfter, renewed },
      });
    }
    return results.length === 1 ? results[0] : { text: results.map((r) => r.text).join('\n'), json: { certificates: results.map((r) => r.json) } };
  }
  throw new UserError(`unknown cert command '${sub ?? ''}'\n${CERT_USAGE}`);
}
