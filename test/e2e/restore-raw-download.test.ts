/**
 * The restore workers' own receive path on node:http2 (agent/transfer/raw-download.ts) against a
 * real repository server over real mutual TLS: what it receives is exactly what the repository
 * stores, one file per call and many per call, and a file restored through it matches byte for
 * byte; the server's refusals arrive as the server worded them (a file not in the backup, a
 * stanza outside the agent's rule, a certificate from another CA, a server certificate the client does not trust), and a repository file gone
 * missing fails the operator's restore with a message naming the file and the damage.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect } from 'vitest';
import { RawDownloadClient } from '../../agent/transfer/raw-download';
import { describeCallError, isServiceError } from '../../shared/errors';
import { expectRefused } from '../harness/expect';
import { useFixture, type Fixture } from '../harness/fixture';
import { backupBigTable, restoreWith, type BigTableBackup } from '../harness/restore';
import { scenario } from '../harness/scenario';

/** A client with `cn`'s certificate, from the installation's CA or the foreign one, trusting the installation's CA or not. */
function clientFor(fx: Fixture, cn: string, o: { foreignCert?: boolean; foreignCa?: boolean } = {}): RawDownloadClient {
  const pair = o.foreignCert ? fx.certs.foreign.client(cn) : fx.certs.client(cn);
  return new RawDownloadClient(fx.server.address, {
    cert: fs.readFileSync(pair.cert), key: fs.readFileSync(pair.key), ca: fs.readFileSync(o.foreignCa ? fx.certs.foreign.ca : fx.certs.ca), certFile: pair.cert,
  });
}

/** The error a call ends with (it must end with one). */
async function failureOf(messages: AsyncIterable<unknown>): Promise<grpc.ServiceError> {
  try {
    for await (const m of messages) void m;
  } catch (err) {
    expect(isServiceError(err), `a ServiceError, not ${String(err)}`).toBe(true);
    return err as grpc.ServiceError;
  }
  throw new Error('the call succeeded');
}

describe('the restore workers receive files on node:http2', () => {
  const fixture = useFixture();
  const step = scenario();
  const s: Partial<BigTableBackup> & { stored?: string } = {};
  const clients: RawDownloadClient[] = [];
  afterAll(() => clients.forEach((c) => c.close()));

  step('a full backup stored uncompressed: the repository holds the original bytes', async () => {
    const fx = fixture();
    Object.assign(s, await backupBigTable(fx, 'none'));
    s.stored = path.join(fx.repoDir, 'backup', 'main', s.label!, 'pg_data', s.bigFile!);
    expect(fs.statSync(s.stored).size, 'the large file is stored on its own').toBeGreaterThan(12 * 1024 * 1024);
  });

  step('GetBackupFile and GetBackupFiles bring exactly the stored bytes, messages reused or not', async () => {
    const fx = fixture();
    const client = clientFor(fx, 'db2');
    clients.push(client);
    const whole: Buffer[] = [];
    // each message is copied at once: its memory is reused for the next
    for await (const m of client.GetBackupFile({ stanza: 'main', label: s.label, name: `pg_data/${s.bigFile}` })) whole.push(Buffer.from(m.data));
    expect(whole.length, 'the large file came in many messages').toBeGreaterThan(4);
    expect(Buffer.concat(whole).equals(fs.readFileSync(s.stored!)), 'the received bytes are the stored bytes').toBe(true);

    const names = ['pg_data/PG_VERSION', `pg_data/${s.bigFile}`, 'pg_data/global/pg_filenode.map'];
    const got = names.map(() => [] as Buffer[]);
    let ends = 0;
    for await (const m of client.GetBackupFiles({ stanza: 'main', label: s.label, names })) {
      got[m.index].push(Buffer.from(m.data));
      if (m.end) ends++;
    }
    expect(ends).toBe(names.length);
    expect(Buffer.concat(got[0]).toString()).toBe(fs.readFileSync(path.join(fx.cluster1.dir, 'PG_VERSION'), 'utf8'));
    expect(Buffer.concat(got[1]).equals(fs.readFileSync(s.stored!))).toBe(true);
    expect(Buffer.concat(got[2]).length).toBe(512);
  });

  step('a restore through the workers writes the large file byte for byte as stored', async () => {
    const fx = fixture();
    await fx.startAgent2();
    const target = path.join(await fx.newDir('restored'), 'data');
    await restoreWith(fx, 'db2', ['--pg-path', target, '--process-max', '2']);
    expect(fs.readFileSync(path.join(target, s.bigFile!)).equals(fs.readFileSync(s.stored!)), 'restored = stored').toBe(true);
  });

  step("the server's refusals arrive with its code and words", async () => {
    const fx = fixture();
    const client = clientFor(fx, 'db2');
    clients.push(client);
    const missing = await failureOf(client.GetBackupFile({ stanza: 'main', label: s.label, name: 'pg_data/no/such/file' }));
    expect(missing.code).toBe(grpc.status.NOT_FOUND);
    expect(missing.details).toBe(`backup ${s.label} has no file 'pg_data/no/such/file'`);
    const stanza = await failureOf(client.GetBackupFiles({ stanza: 'other', label: s.label, names: ['pg_data/PG_VERSION'] }));
    expect(stanza.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(describeCallError(stanza, fx.server.address)).toBe("'db2' is not authorized for stanza 'other'");

    const foreign = clientFor(fx, 'db2', { foreignCert: true });
    const wrongCa = clientFor(fx, 'db2', { foreignCa: true });
    clients.push(foreign, wrongCa);
    const refused = await failureOf(foreign.GetBackupFile({ stanza: 'main', label: s.label, name: 'pg_data/PG_VERSION' }));
    expect(refused.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(refused.details).toMatch(/refused this client/);
    // the server's certificate does not chain to the CA this client trusts: grpc-js's error, and the same advice
    const untrusted = await failureOf(wrongCa.GetBackupFile({ stanza: 'main', label: s.label, name: 'pg_data/PG_VERSION' }));
    expect(untrusted.code).toBe(grpc.status.UNAVAILABLE);
    expect(describeCallError(untrusted, fx.server.address)).toMatch(/^TLS handshake with \S+ failed \(No connection established\. Last error: .*certificate.*\): check that --tls-ca/);
  });

  step('a stored file gone from the repository fails the restore, naming the file and the damage; it is not left behind', async () => {
    const fx = fixture();
    const aside = `${s.stored}.aside`;
    fs.renameSync(s.stored!, aside);
    try {
      const target = path.join(await fx.newDir('damaged'), 'data');
      const res = await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', target, '--process-max', '2']);
      expectRefused(res, 'a restore of a backup whose file is missing',
        new RegExp(`cannot restore file pg_data/${s.bigFile} of backup ${s.label}: backup ${s.label} of stanza 'main' is damaged: its file \\S+ is missing from the repository`));
      expect(fs.existsSync(path.join(target, s.bigFile!)), 'nothing of it is left behind').toBe(false);
    } finally {
      fs.renameSync(aside, s.stored!);
    }
  });
});
