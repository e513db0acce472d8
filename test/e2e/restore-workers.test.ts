/**
 * Restore workers (agent/restore/fetch-pool.ts): each restore worker thread fetches files over a
 * channel of its own. When such a channel breaks in the middle of a file, the restore fails with
 * a message naming what was being restored and why, the file cut short is not left behind looking
 * restored, and pg_control is not written (PostgreSQL refuses the directory). Also: a repository
 * file cut short fails the restore as damage.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { expectRefused, expectSuccess } from '../harness/expect';
import { useFixture } from '../harness/fixture';
import { query, tableDigest } from '../harness/pg';
import { backupBigTable } from '../harness/restore';
import { startRestored } from '../harness/restored';
import { scenario } from '../harness/scenario';

/**
 * A TCP relay to the repository server that breaks every connection once it has carried `limit`
 * bytes from the server: the agent's job channel (little data) survives, a restore worker's
 * channel carrying a large file does not.
 */
async function breakingRelay(target: string, limit: number): Promise<{ address: string; broken: () => number; close: () => Promise<void> }> {
  const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const sockets = new Set<net.Socket>();
  let broken = 0;
  const relay = net.createServer((client) => {
    const server = net.connect(port, host);
    sockets.add(client).add(server);
    let carried = 0;
    const cut = () => {
      client.destroy();
      server.destroy();
    };
    client.on('data', (d) => server.write(d));
    server.on('data', (d) => {
      carried += d.length;
      if (carried > limit) {
        broken++;
        cut();
        return;
      }
      client.write(d);
    });
    for (const s of [client, server]) {
      s.on('error', cut);
      s.on('close', () => {
        cut();
        sockets.delete(s);
      });
    }
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  const address = `127.0.0.1:${(relay.address() as net.AddressInfo).port}`;
  return {
    address,
    broken: () => broken,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      relay.close(() => resolve());
    }),
  };
}

describe('restore worker threads and their own channels', () => {
  const fixture = useFixture();
  const step = scenario();
  const s: { bigFile?: string; digest?: { count: number; sum: string }; target?: string; label?: string } = {};

  step('a full backup of a cluster with one large table file, stored uncompressed', async () => {
    const fx = fixture();
    await query(fx.cluster1, 'create table small (id int)');
    await query(fx.cluster1, 'insert into small select generate_series(1, 100)');
    // ~20 MiB: far more than the relay lets through on one connection
    Object.assign(s, await backupBigTable(fx, 'none'));
  });

  step('a worker channel that breaks mid-file fails the restore, naming the file; nothing cut short stays behind', async () => {
    const fx = fixture();
    const relay = await breakingRelay(fx.server.address, 4 * 1024 * 1024);
    try {
      await fx.startAgent2({ extraArgs: ['--server', relay.address] });
      s.target = path.join(await fx.newDir('broken'), 'data');
      const res = await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', s.target, '--process-max', '2']);
      expectRefused(res, 'a restore whose worker channel breaks',
        new RegExp(`cannot restore (file pg_data/\\S+|\\d+ small files) of backup ${s.label}.*: (lost the connection to|cannot reach) the repository server`));
      expect(relay.broken(), 'the relay broke a connection').toBeGreaterThan(0);
    } finally {
      await relay.close();
    }
    expect(fs.existsSync(path.join(s.target, 'global', 'pg_control')), 'pg_control is written only by a restore that completes').toBe(false);
    expect(fs.existsSync(path.join(s.target, s.bigFile!)), 'the large file, cut short, is not left behind').toBe(false);
  });

  step('the same agent, its channel whole again, restores the backup, and the restored cluster has every row', async () => {
    const fx = fixture();
    await fx.startAgent2();
    // the failed restore wrote no PG_VERSION yet (large files go first), so --delta would refuse that directory: a new one
    s.target = path.join(await fx.newDir('again'), 'data');
    const res = await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', s.target, '--process-max', '2']);
    expectSuccess(res, 'the restore');
    const restored = await startRestored(fx, { name: 'restored', dir: s.target!, port: fx.restorePort, immediate: true });
    expect(await tableDigest(restored, 'big')).toEqual(s.digest);
  });

  step('a repository file cut short fails the restore as damage, naming the file', async () => {
    const fx = fixture();
    await query(fx.cluster1, 'select 1');
    const res = await fx.repoctl(['backup', '--stanza', 'main', '--type', 'full', '--start-fast', '--compress-type', 'zst', '--output', 'json']);
    expectSuccess(res, 'a zst backup');
    const label = (JSON.parse(res.stdout) as { label: string }).label;
    const stored = path.join(fx.repoDir, 'backup', 'main', label, 'pg_data', `${s.bigFile}.zst`);
    const bytes = fs.readFileSync(stored);
    fs.writeFileSync(stored, bytes.subarray(0, Math.floor(bytes.length / 2)));
    try {
      const target = path.join(await fx.newDir('truncated'), 'data');
      const refused = await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', target, '--process-max', '2']);
      expectRefused(refused, 'a restore of a truncated repository file', new RegExp(`file pg_data/${s.bigFile} of backup ${label}: .*the repository is damaged`));
      expect(fs.existsSync(path.join(target, s.bigFile!)), 'the file is not left behind').toBe(false);
    } finally {
      fs.writeFileSync(stored, bytes);
    }
  });
});
