/**
 * check and verify on a real cluster through real processes. check passes when WAL reaches the
 * archive and fails clearly when archive_command is wrong or broken; verify passes on an intact
 * repository and, after a byte of a stored backup file is flipped and an archived WAL segment the
 * backup needs is deleted, exits non-zero naming both.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { expectRefused, expectSuccess } from '../harness/expect';
import { useFixture } from '../harness/fixture';
import { archiveMoreWal, query } from '../harness/pg';
import { archiveCommandFor } from '../harness/processes';
import { archivedSegmentFile, archivedSegments, infoBackups, type InfoBackup } from '../harness/repo';
import { scenario } from '../harness/scenario';

interface VerifyJson {
  ok: boolean;
  backups: { label: string; status: string; files: number; valid: number; problems: { kind: string; file: string }[]; wal_missing: { start: string; stop: string }[] }[];
  archives: { archive_id: string; files: number; valid: number; gaps: { start: string; stop: string }[]; ranges: unknown[] }[];
}

describe('check and verify', () => {
  const fixture = useFixture();
  const step = scenario();
  const s: { backup?: InfoBackup; corrupted?: string; deleted?: string } = {};

  async function setArchiveCommand(command: string | null): Promise<void> {
    const c = fixture().cluster1;
    await query(c, command === null ? 'alter system reset archive_command' : `alter system set archive_command = '${command.replace(/'/g, "''")}'`);
    await query(c, 'select pg_reload_conf()');
  }

  const moreWal = (n: number) => archiveMoreWal(fixture().cluster1, n, 'insert into t select g, md5(g::text) from generate_series(1, 2000) g');

  step('a stanza with a full backup and WAL on both sides of it', async () => {
    const fx = fixture();
    expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'stanza-create');
    await query(fx.cluster1, 'create table t (id int, v text)');
    await moreWal(1);
    expectSuccess(await fx.repoctl(['backup', '--stanza', 'main', '--start-fast', '--process-max', '4'], { timeoutMs: 120_000 }), 'backup');
    [s.backup] = await infoBackups(fx);
    await moreWal(2);
  });

  step('check passes: the agent reaches PostgreSQL, the cluster is the stanza\'s, and a switched segment reaches the archive', async () => {
    const fx = fixture();
    const res = await fx.repoctl(['check', '--stanza', 'main']);
    expectSuccess(res, 'repoctl check');
    const m = /WAL segment ([0-9A-F]{24}) was archived to (\S+) /.exec(res.stdout);
    expect(m, res.stdout).not.toBeNull();
    expect(fs.existsSync(path.join(fx.repoDir, m![2])), m![2]).toBe(true);
    expect(archivedSegments(fx)).toContain(m![1]);
    expect(res.stderr).toMatch(/agent 'db1' reached PostgreSQL 15 .* matches stanza 'main'/);
    expectRefused(await fx.repoctl(['check', '--stanza', 'nosuch']), 'check of a stanza that does not exist', /does not exist/);
  });

  step('check fails clearly when archive_command does not archive', async () => {
    const fx = fixture();
    try {
      await setArchiveCommand('false');
      expectRefused(await fx.repoctl(['check', '--stanza', 'main']), 'check with archive_command=false', /archive_command 'false' does not run pgrepo-archive push: set it to '.*pgrepo-archive push /);
      // plausible but broken: the agent socket does not exist, so every archive-push fails
      const broken = (await archiveCommandFor(fx.agent1Socket)).replace(fx.agent1Socket, '/nonexistent/agent.sock');
      await setArchiveCommand(broken);
      expectRefused(await fx.repoctl(['check', '--stanza', 'main', '--archive-timeout', '3']), 'check with a failing archive_command',
        /WAL segment [0-9A-F]{24} did not reach the archive within archive-timeout \(3 s\), so archiving does not work/, /PostgreSQL's archiver/, /nonexistent\/agent\.sock/);
    } finally {
      await setArchiveCommand(null);
    }
    await moreWal(1);
  });

  step('verify passes on the intact repository, reading every file', async () => {
    const fx = fixture();
    const res = await fx.repoctl(['verify', '--stanza', 'main', '--process-max', '2']);
    expectSuccess(res, 'repoctl verify');
    expect(res.stdout).toMatch(/stanza main: verify ok/);
    expect(res.stdout).toMatch(new RegExp(`backup ${s.backup!.label}: valid \\((\\d+)/\\1 files valid`));
    const json = await fx.repoctl(['verify', '--stanza', 'main', '--output', 'json']);
    expectSuccess(json, 'repoctl verify --output json');
    const r = JSON.parse(json.stdout) as VerifyJson;
    expect(r.ok).toBe(true);
    expect(r.backups).toEqual([expect.objectContaining({ label: s.backup!.label, status: 'valid', problems: [], wal_missing: [] })]);
    expect(r.archives[0].gaps).toEqual([]);
    // segments, plus the backup history file pg_backup_stop archived beside them
    const historyFiles = fs.readdirSync(path.join(fx.repoDir, 'archive', 'main', '15-1')).filter((f) => /\.backup-[0-9a-f]{40}/.test(f));
    expect(historyFiles.length).toBeGreaterThan(0);
    expect(r.archives[0].files).toBe(archivedSegments(fx).length + historyFiles.length);
    expect(r.archives[0].valid).toBe(r.archives[0].files);
  });

  step('verify names a flipped byte in a backup file and a deleted WAL segment, and exits non-zero', async () => {
    const fx = fixture();
    const label = s.backup!.label;
    // the biggest stored relation file: flip one byte in the middle of it
    const dataDir = path.join(fx.repoDir, 'backup', 'main', label, 'pg_data', 'base');
    const files = fs.readdirSync(dataDir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile())
      .map((e) => path.join(e.parentPath, e.name)).sort((a, b) => fs.statSync(b).size - fs.statSync(a).size);
    const victim = files[0];
    const bytes = fs.readFileSync(victim);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    fs.writeFileSync(victim, bytes);
    s.corrupted = path.relative(fx.repoDir, victim);
    // a segment the backup needs to be consistent, with archived WAL before and after it
    const segments = archivedSegments(fx);
    s.deleted = s.backup!.archive.stop;
    expect(segments[0] < s.deleted && segments[segments.length - 1] > s.deleted, `${segments.join(',')} around ${s.deleted}`).toBe(true);
    fs.rmSync(archivedSegmentFile(fx, s.deleted));

    const res = await fx.repoctl(['verify', '--stanza', 'main', '--process-max', '2']);
    expectRefused(res, 'repoctl verify of a damaged repository', /verify found missing or corrupt files in stanza 'main'/);
    expect(res.stdout).toMatch(/verify FOUND PROBLEMS/);
    expect(res.stdout).toContain(s.corrupted);
    expect(res.stdout).toMatch(new RegExp(`backup ${label}: invalid`));
    expect(res.stdout).toContain(`missing WAL ${s.deleted}, which the backup needs to be consistent`);
    expect(res.stdout).toContain(`missing WAL ${s.deleted} (a hole in the archive`);

    const json = JSON.parse((await fx.repoctl(['verify', '--stanza', 'main', '--set', label, '--output', 'json'])).stdout) as VerifyJson;
    expect(json.ok).toBe(false);
    const b = json.backups[0];
    expect(b.status).toBe('invalid');
    expect(b.problems.map((p) => p.file)).toEqual([s.corrupted]);
    expect(b.valid).toBe(b.files - 1);
    expect(b.wal_missing).toEqual([{ start: s.deleted, stop: s.deleted }]);
  });
});
