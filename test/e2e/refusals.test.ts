/**
 * Everything the installation must refuse, against one shared set-up: clients without the
 * right certificate or rule, roles doing what they may not, restores that would destroy
 * something, names from the wire that would escape the repository, WAL that conflicts with
 * what is archived, a cluster that is not the stanza's, and a corrupted repository file.
 * Each refusal must be clean: non-zero exit, a message that says why, no stack trace.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectRefused, expectSuccess } from '../harness/expect';
import { useFixture, type Fixture } from '../harness/fixture';
import { GrpcStatus, probeCall } from '../harness/grpc-probe';
import { freePort, initCluster, query, startCluster, stopCluster, switchWal, systemIdentifier, waitForArchived } from '../harness/pg';
import { startAgent, type LogEntry } from '../harness/processes';
import { chownToPostgres } from '../harness/system';

/** A warning (or worse) from the server that says it refused/denied something. */
const refusalLog = (extra: (e: LogEntry) => boolean = () => true) => (e: LogEntry) =>
  (e.level ?? 0) >= 40 && /refus|denied|reject|not authori|unauthori/i.test(String(e.msg ?? '')) && extra(e);

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out;
}

async function copyOwned(src: string, dest: string): Promise<void> {
  fs.copyFileSync(src, dest);
  await chownToPostgres(dest);
}

describe('refusals', { timeout: 240_000 }, () => {
  const fixture = useFixture();

  let backup: Promise<string> | undefined;
  /** stanza-create + one full backup, once, for the tests that need something to restore; resolves to its label */
  function ensureBackup(fx: Fixture): Promise<string> {
    backup ??= (async () => {
      expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'repoctl stanza-create');
      expectSuccess(await fx.repoctl(['backup', '--stanza', 'main', '--type', 'full', '--start-fast'], { timeoutMs: 200_000 }), 'repoctl backup');
      const stanzaDir = path.join(fx.repoDir, 'backup', 'main');
      const labels = fs.readdirSync(stanzaDir).filter((n) => /^\d{8}-\d{6}F$/.test(n)).sort();
      expect(labels.length).toBeGreaterThanOrEqual(1);
      return labels[labels.length - 1];
    })();
    return backup;
  }

  describe('who may connect', () => {
    it('a client without a certificate is refused, with a clear message on both sides', async () => {
      const fx = fixture();
      expectRefused(await fx.repoctl(['info'], { as: null }), 'repoctl without a certificate', /certificate/i);

      // the server's side, without repoctl's own checks in between
      const mark = fx.server.proc.mark();
      const probe = await probeCall({ address: fx.server.address, ca: fx.certs.ca, method: 'Info', request: { stanza: '' } });
      expect(probe.code, JSON.stringify(probe)).not.toBe(GrpcStatus.OK);
      expect(probe.details).toMatch(/certificate/i);
      await fx.server.proc.waitForLog(refusalLog(), 10_000, mark);
    });

    it("a certificate from another CA is refused, even with an authorized CN", async () => {
      const fx = fixture();
      const mark = fx.server.proc.mark();
      expectRefused(await fx.repoctl(['info'], { as: 'ops', foreign: true }), 'repoctl with a foreign CA certificate', /certificate|\bCA\b|authori/i);
      await fx.server.proc.waitForLog(refusalLog(), 10_000, mark);

      const probe = await probeCall({ address: fx.server.address, ca: fx.certs.ca, ...fx.certs.foreign.client('ops'), method: 'Info' });
      expect(probe.code, JSON.stringify(probe)).not.toBe(GrpcStatus.OK);
    });

    it('a certificate whose CN has no --auth rule is refused', async () => {
      const fx = fixture();
      const mark = fx.server.proc.mark();
      expectRefused(await fx.repoctl(['info'], { as: 'nobody' }), 'repoctl as CN nobody', /nobody/, /authori|no rule|not allowed|permission/i);
      await fx.server.proc.waitForLog(refusalLog((e) => JSON.stringify(e).includes('nobody')), 10_000, mark);
    });

    it('a viewer may run info but not backup, stanza-create or restore', async () => {
      const fx = fixture();
      expectSuccess(await fx.repoctl(['info'], { as: 'viewer1' }), 'repoctl info as viewer');
      expectSuccess(await fx.repoctl(['info', '--output', 'json'], { as: 'viewer1' }), 'repoctl info --output json as viewer');
      const denied = /viewer|permission|not allowed|may not|not authori/i;
      expectRefused(await fx.repoctl(['backup', '--stanza', 'main', '--type', 'full'], { as: 'viewer1' }), 'backup as viewer', denied);
      expectRefused(await fx.repoctl(['stanza-create', '--stanza', 'main'], { as: 'viewer1' }), 'stanza-create as viewer', denied);
      const target = path.join(fx.work, 'viewer-restore');
      expectRefused(await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', target], { as: 'viewer1' }), 'restore as viewer', denied);
      expect(fs.existsSync(target)).toBe(false);
    });

    it("an agent's certificate is not an operator's, and reaches no other stanza", async () => {
      const fx = fixture();
      expectRefused(await fx.repoctl(['backup', '--stanza', 'main', '--type', 'full'], { as: 'db1' }), 'backup with an agent certificate', /agent|permission|not allowed|may not|not authori/i);
      const db1 = fx.certs.client('db1');
      const other = await probeCall({ address: fx.server.address, ca: fx.certs.ca, ...db1, method: 'ArchiveGet', request: { stanza: 'other', name: '000000010000000000000001' } });
      expect(other.code, JSON.stringify(other)).toBe(GrpcStatus.PERMISSION_DENIED);
      expect(other.details).toMatch(/other/);
      const escape = await probeCall({ address: fx.server.address, ca: fx.certs.ca, ...db1, method: 'ArchiveGet', request: { stanza: '../main', name: '000000010000000000000001' } });
      expect([GrpcStatus.INVALID_ARGUMENT, GrpcStatus.PERMISSION_DENIED], JSON.stringify(escape)).toContain(escape.code);
    });
  });

  describe('stanza names', () => {
    it('stanza-create is refused for a stanza no agent serves', async () => {
      const fx = fixture();
      expectRefused(await fx.repoctl(['stanza-create', '--stanza', 'other']), 'stanza-create --stanza other', /other/);
      expect(fs.existsSync(path.join(fx.repoDir, 'backup', 'other'))).toBe(false);
      expect(fs.existsSync(path.join(fx.repoDir, 'archive', 'other'))).toBe(false);
    });

    it('bad stanza names are refused by repoctl and by the server, and nothing is created', async () => {
      const fx = fixture();
      const evil = `evil${process.pid}`;
      for (const name of [`../${evil}`, `/tmp/${evil}`, `a/../../${evil}`, '']) {
        expectRefused(await fx.repoctl(['stanza-create', '--stanza', name]), `stanza-create --stanza '${name}'`, /stanza/i);
      }
      const probe = await probeCall({ address: fx.server.address, ca: fx.certs.ca, ...fx.certs.client('ops'), method: 'StanzaCreate', request: { stanza: `../${evil}` } });
      expect(probe.code, JSON.stringify(probe)).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(probe.details).toMatch(/stanza/i);
      const created = listFiles(fx.work).filter((p) => p.includes(evil));
      expect(created).toEqual([]);
      expect(fs.existsSync(`/tmp/${evil}`)).toBe(false);
      expect(fs.existsSync(path.resolve(fx.repoDir, '..', evil))).toBe(false);
    });
  });

  describe('archive-push', () => {
    it('the same segment twice succeeds; different content under the same name fails and overwrites nothing', async () => {
      const fx = fixture();
      await ensureBackup(fx);
      const c = fx.cluster1;
      await query(c, 'create table if not exists push_t (x int)');
      await query(c, 'insert into push_t select generate_series(1, 100)');
      const seg = await switchWal(c);
      await waitForArchived(c, seg);
      // copy right away: checkpoint_timeout is 1h, so the segment is not recycled under us
      const dir = await fx.newDir('push');
      const original = path.join(dir, seg);
      await copyOwned(path.join(c.dir, 'pg_wal', seg), original);
      const originalBytes = fs.readFileSync(original);

      expectSuccess(await fx.archivePush(original), 'archive-push of an already archived segment, same content');

      const changed = path.join(await fx.newDir('push-changed'), seg);
      const bytes = Buffer.from(originalBytes);
      bytes[1000] ^= 0xff;
      fs.writeFileSync(changed, bytes);
      await chownToPostgres(changed);
      expectRefused(await fx.archivePush(changed), 'archive-push of different content under an archived name', /differ|exist|checksum|mismatch|already/i);

      const back = path.join(await fx.newDir('push-get'), 'RECOVERYXLOG');
      expectSuccess(await fx.archiveGet(seg, back), 'archive-get of the segment');
      expect(fs.readFileSync(back).equals(originalBytes), 'the archived segment is still the original').toBe(true);

      const missing = await fx.archiveGet('00000001000000FF000000FE', path.join(path.dirname(back), 'missing'));
      expect(missing.code, 'archive-get of a segment that does not exist exits 1, as PostgreSQL expects').toBe(1);
    });
  });

  describe('restore', () => {
    it('into a non-empty directory is refused and touches nothing', async () => {
      const fx = fixture();
      await ensureBackup(fx);
      const dir = await fx.newDir('nonempty');
      fs.writeFileSync(path.join(dir, 'keep.txt'), 'precious\n');
      await chownToPostgres(path.join(dir, 'keep.txt'));
      expectRefused(
        await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', dir]),
        'restore into a non-empty directory',
        /not empty|non-empty|contains/i,
      );
      expect(fs.readdirSync(dir)).toEqual(['keep.txt']);
      expect(fs.readFileSync(path.join(dir, 'keep.txt'), 'utf8')).toBe('precious\n');
    });

    it('over a running cluster is refused, and the cluster keeps running', async () => {
      const fx = fixture();
      await ensureBackup(fx);
      const c = fx.cluster1;
      expectRefused(
        await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db1', '--pg-path', c.dir]),
        'restore into the running cluster 1',
        /running/i,
      );
      const [one] = await query<{ one: number }>(c, 'select 1 as one');
      expect(one.one).toBe(1);
      expect(fs.existsSync(path.join(c.dir, 'postmaster.pid'))).toBe(true);
    });

    // the largest file comes in a call of its own; a small one in a call with many others (GetBackupFiles)
    it.each(['largest', 'small'])('a corrupted repository file (the %s) fails the restore, naming the file', async (which) => {
      const fx = fixture();
      const label = await ensureBackup(fx);
      const pgData = path.join(fx.repoDir, 'backup', 'main', label, 'pg_data');
      const files = listFiles(pgData).map((p) => ({ p, size: fs.statSync(p).size })).sort((a, b) => b.size - a.size);
      const victim = which === 'largest' ? files[0].p : files.find((f) => f.size > 1024 && f.size < 64 * 1024)!.p;
      const rel = path.relative(pgData, victim).replace(/\.(gz|lz4|zst)$/, '');
      const original = fs.readFileSync(victim);
      const corrupt = Buffer.from(original);
      corrupt[Math.floor(corrupt.length / 2)] ^= 0xff;
      fs.writeFileSync(victim, corrupt);
      try {
        const target = path.join(await fx.newDir(`corrupt-target-${which}`), 'data');
        const res = await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', target], { timeoutMs: 200_000 });
        expectRefused(res, `restore with ${victim} corrupted`);
        expect(res.stderr, `the error names ${rel}`).toContain(rel);
        expect(res.stderr).toMatch(/the repository is damaged/);
      } finally {
        fs.writeFileSync(victim, original);
      }
    });
  });

  describe('a cluster that is not the stanza', () => {
    it('is refused by archive-push and backup, naming both system identifiers', async () => {
      const fx = fixture();
      await ensureBackup(fx);
      const work = await fx.newDir('other-cluster');
      const other = await initCluster({ name: 'other', dir: path.join(work, 'data'), port: await freePort(), socketDir: fx.socketDir, archiveMode: false });
      fx.clusters.push(other);
      await startCluster(other);
      const otherSocket = path.join(fx.socketDir, 'agentB.sock');
      try {
        const [ours, theirs] = [await systemIdentifier(fx.cluster1), await systemIdentifier(other)];
        expect(theirs).not.toBe(ours);

        // agent db2 now serves the other cluster, for stanza main
        await fx.stopAgent2();
        await fx.startAgent2({ pgPath: other.dir, pgPort: other.port, pgSocketPath: fx.socketDir, socket: otherSocket });

        // a completed segment of the other cluster, named past anything cluster 1 archived (so only the identity can conflict)
        const [cur] = await query<{ seg: string }>(fx.cluster1, 'select pg_walfile_name(pg_current_wal_lsn()) as seg');
        await query(other, 'create table w (x int)');
        let seg = '';
        for (let i = 0; i < 64 && seg <= cur.seg; i++) {
          await query(other, 'insert into w values (1)');
          seg = await switchWal(other);
        }
        expect(seg > cur.seg, `${seg} > ${cur.seg}`).toBe(true);
        const file = path.join(work, seg);
        await copyOwned(path.join(other.dir, 'pg_wal', seg), file);

        const push = await fx.archivePush(file, otherSocket);
        const pushMsg = expectRefused(push, 'archive-push from a cluster with another system identifier');
        expect(pushMsg).toContain(ours);
        expect(pushMsg).toContain(theirs);

        const res = await fx.repoctl(['backup', '--stanza', 'main', '--type', 'full', '--start-fast', '--host', 'db2'], { timeoutMs: 200_000 });
        const backupMsg = expectRefused(res, 'backup --host db2 of a cluster with another system identifier');
        expect(backupMsg).toContain(ours);
        expect(backupMsg).toContain(theirs);
      } finally {
        // give agent db2 back its restore target for the other tests
        await fx.stopAgent2();
        await stopCluster(other);
        await fx.startAgent2();
      }
    }, 240_000);
  });
});
