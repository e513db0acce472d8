import { PassThrough } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { CertificateWatch } from '../../repo-server/cert-watch';
import { createCa, issueCertificate, validityFor } from '../../repo-server/repoctl/certificates';
import { certificatesIn, validityState } from '../../shared/tls';

const DAY = 86_400_000;

function logger() {
  const out = new PassThrough();
  const lines: Record<string, unknown>[] = [];
  out.on('data', (c: Buffer) => c.toString().trim().split('\n').forEach((l) => lines.push(JSON.parse(l))));
  return { log: pino({ level: 'info' }, out), lines };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('certificate lifetimes', () => {
  it('issues certificates with the lifetime asked for, signed by the CA', async () => {
    const ca = await createCa('test CA', validityFor(3650));
    const agent = await issueCertificate({ ca, cn: 'db1', kind: 'agent', validity: validityFor(825) });
    const [v] = certificatesIn(agent.cert);
    expect(v.cn).toBe('db1');
    expect(Math.round((v.notAfter.getTime() - Date.now()) / DAY)).toBe(825);
    expect(validityState(v)).toBe('ok');
  });

  it("warns 30 days before the server's own certificate expires, once a day, and errors once it has", async () => {
    const ca = await createCa('test CA', validityFor(3650));
    const server = await issueCertificate({ ca, cn: 'backup', kind: 'server', validity: validityFor(40) });
    let now = Date.now();
    const { log, lines } = logger();
    const watch = new CertificateWatch(log, () => now);
    const files = { cert: Buffer.from(server.cert), key: Buffer.from(server.key), ca: Buffer.from(ca.cert), certFile: 'server.crt' };

    watch.checkOwn(files);
    await flush();
    expect(lines).toEqual([]);

    now += 15 * DAY; // 25 days left
    watch.checkOwn(files);
    watch.checkOwn(files);
    await flush();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, cn: 'backup', certificate: 'server certificate', daysLeft: 24 });
    expect(String(lines[0].msg)).toMatch(/expires within 30 days/);

    now += 30 * DAY; // expired
    watch.checkOwn(files);
    await flush();
    expect(lines[1]).toMatchObject({ level: 50, cn: 'backup' });
    expect(String(lines[1].msg)).toMatch(/'backup' is expired/);
  });

  it('warns about a client certificate it sees that expires soon', async () => {
    const { log, lines } = logger();
    const watch = new CertificateWatch(log);
    const soon = new Date(Date.now() + 3 * DAY).toUTCString();
    watch.checkPeer({ subject: { CN: 'ops' }, valid_from: new Date(Date.now() - DAY).toUTCString(), valid_to: soon, fingerprint256: 'AA' });
    await flush();
    expect(lines[0]).toMatchObject({ level: 40, cn: 'ops', certificate: 'client certificate' });
  });
});
