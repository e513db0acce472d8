/**
 * Certificates for one test file, made with the project's own deploy/make-certs.sh: the
 * installation's CA with a server certificate for `localhost` and client certificates, plus a
 * second, foreign CA (same client names) for the wrong-CA refusal.
 */
import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir } from './pg';
import { chownToPostgres, describeRun, repoRoot, run } from './system';

export interface CertPair {
  cert: string;
  key: string;
}

export interface CertAuthority {
  dir: string;
  ca: string;
  /** the certificate + key made for this CN */
  client(cn: string): CertPair;
}

export interface CertSet extends CertAuthority {
  server: CertPair;
  /** a different CA that issued certificates for the same client names */
  foreign: CertAuthority;
}

export const SERVER_NAME = 'localhost';
/** db1/db2: agents of stanza main; ops: admin; viewer1: viewer; nobody: a CN without an --auth rule */
export const CLIENT_NAMES = ['db1', 'db2', 'ops', 'viewer1', 'nobody'] as const;

function makeCertsScript(): string {
  return process.env.PGREPO_TEST_MAKE_CERTS ?? path.join(repoRoot(), 'deploy', 'make-certs.sh');
}

function authority(dir: string): CertAuthority {
  return {
    dir,
    ca: path.join(dir, 'ca.crt'),
    client: (cn) => {
      const pair = { cert: path.join(dir, `${cn}.crt`), key: path.join(dir, `${cn}.key`) };
      if (!fs.existsSync(pair.cert) || !fs.existsSync(pair.key)) throw new Error(`no certificate for CN ${cn} in ${dir}`);
      return pair;
    },
  };
}

async function generate(dir: string, names: readonly string[]): Promise<void> {
  const script = makeCertsScript();
  if (!fs.existsSync(script)) throw new Error(`${script} is missing: the tests make their certificates with it`);
  const args = [script, dir, SERVER_NAME, ...names];
  const res = await run('sh', args, { timeoutMs: 60_000 });
  if (res.code !== 0) throw new Error(`making certificates failed: ${describeRun('sh', args, res)}`);
  for (const f of ['ca.crt', `${SERVER_NAME}.crt`, `${SERVER_NAME}.key`, ...names.flatMap((n) => [`${n}.crt`, `${n}.key`])]) {
    if (!fs.existsSync(path.join(dir, f))) throw new Error(`${script} did not create ${path.join(dir, f)}`);
  }
  // the server, the agents and repoctl run as postgres when the tests run as root
  await chownToPostgres(dir, true);
}

let cached: Promise<CertSet> | undefined;

/** Makes (once per test file) the installation's CA + certificates and a foreign CA. */
export function makeCerts(): Promise<CertSet> {
  cached ??= (async () => {
    const dir = await makeTempDir('pgrepo-ca');
    const foreignDir = await makeTempDir('pgrepo-ca2');
    await Promise.all([generate(dir, CLIENT_NAMES), generate(foreignDir, CLIENT_NAMES)]);
    const main = authority(dir);
    return {
      ...main,
      server: { cert: path.join(dir, `${SERVER_NAME}.crt`), key: path.join(dir, `${SERVER_NAME}.key`) },
      foreign: authority(foreignDir),
    };
  })();
  return cached;
}
