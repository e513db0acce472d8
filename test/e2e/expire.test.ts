/**
 * Retention and expire on a real cluster through real processes: the server keeps two fulls for
 * stanza main (--stanza-option); expire with --repo-retention-full 1 removes the older full and
 * the WAL only it needed, keeps the WAL the newer one needs; --dry-run changes nothing; --set
 * expires one backup and refuses the last full; a backup and an expire of one stanza never run at once.
 */
import { describe, expect } from 'vitest';
import { expectRefused, expectSuccess } from '../harness/expect';
import { useFixture } from '../harness/fixture';
import { archiveMoreWal, query } from '../harness/pg';
import { archivedSegments, backupDirs, infoBackups, listTree, type InfoBackup } from '../harness/repo';
import { scenario } from '../harness/scenario';
import { repoctl } from '../harness/processes';
import { segmentsBetween } from '../../shared/wal';

const SEGMENT_SIZE = 16 * 1024 * 1024;

describe('expire', () => {
  const fixture = useFixture({ serverArgs: ['--stanza-option', 'main:repo-retention-full=2'] });
  const step = scenario();
  const s: { f1?: InfoBackup; f2?: InfoBackup; f3?: InfoBackup } = {};

  async function backup(): Promise<InfoBackup> {
    const fx = fixture();
    const res = await fx.repoctl(['backup', '--stanza', 'main', '--type', 'full', '--start-fast', '--process-max', '4'], { timeoutMs: 120_000 });
    expectSuccess(res, 'repoctl backup');
    expect(res.stdout).toMatch(/^expire: expired no backups/m);
    const backups = await infoBackups(fx);
    return backups[backups.length - 1];
  }

  const moreWal = (n: number) => archiveMoreWal(fixture().cluster1, n, 'insert into t select g from generate_series(1, 1000) g');

  step('two full backups with WAL between them; the server keeps both (repo-retention-full=2 for main)', async () => {
    const fx = fixture();
    expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'stanza-create');
    await query(fx.cluster1, 'create table t (v int)');
    s.f1 = await backup();
    await moreWal(3);
    s.f2 = await backup();
    expect(backupDirs(fx)).toEqual([s.f1.label, s.f2.label]);
    // the expire after the second backup already removed WAL from before the first backup's start
    const segments = archivedSegments(fx);
    expect(segments[0] >= s.f1.archive.start, `oldest segment ${segments[0]} vs ${s.f1.archive.start}`).toBe(true);
    expect(segments.some((x) => x > s.f1!.archive.stop && x < s.f2!.archive.start), 'WAL between the backups').toBe(true);
  });

  step('--dry-run says what would go and changes nothing', async () => {
    const fx = fixture();
    const before = listTree(fx.repoDir);
    const res = await fx.repoctl(['expire', '--stanza', 'main', '--repo-retention-full', '1', '--dry-run']);
    expectSuccess(res, 'repoctl expire --dry-run');
    expect(res.stdout).toContain(`would expire 1 backup (${s.f1!.label})`);
    expect(res.stderr).toMatch(new RegExp(`\\[dry-run\\] expire full backup ${s.f1!.label}: repo-retention-full=1`));
    expect(res.stderr).toMatch(/\[dry-run\] 15-1: remove WAL [0-9A-F]{24}/);
    expect(listTree(fx.repoDir)).toEqual(before);
    expect((await infoBackups(fx)).map((b) => b.label)).toEqual([s.f1!.label, s.f2!.label]);
  });

  step('expire --repo-retention-full 1 removes the older full and the WAL only it needed, keeping what the newer one needs', async () => {
    const fx = fixture();
    const mark = fx.server.proc.mark();
    const res = await fx.repoctl(['expire', '--stanza', 'main', '--repo-retention-full', '1', '--output', 'json']);
    expectSuccess(res, 'repoctl expire');
    const report = JSON.parse(res.stdout) as { backup: { label: string; set: string[] }[]; archive: { id: string; start: string; stop: string }[] };
    expect(report.backup).toEqual([expect.objectContaining({ label: s.f1!.label, set: [s.f1!.label] })]);
    expect(report.archive.length).toBeGreaterThan(0);
    for (const r of report.archive) expect(r.stop < s.f2!.archive.start, `${r.start}..${r.stop}`).toBe(true);

    expect(backupDirs(fx)).toEqual([s.f2!.label]);
    expect((await infoBackups(fx)).map((b) => b.label)).toEqual([s.f2!.label]);
    const segments = archivedSegments(fx);
    expect(segments.filter((x) => x < s.f2!.archive.start), 'WAL older than the kept backup').toEqual([]);
    for (const needed of segmentsBetween(s.f2!.archive.start, s.f2!.archive.stop, SEGMENT_SIZE)) expect(segments).toContain(needed);
    // every removal is in the server's log, with why
    await fx.server.proc.waitForLog(new RegExp(`^expire full backup ${s.f1!.label}: repo-retention-full=1: 2 full backups`), 5_000, mark);
    await fx.server.proc.waitForLog(/^15-1: remove WAL [0-9A-F]{24}.*older than/, 5_000, mark);
  });

  step('while a backup runs, an expire (or a second backup) of the stanza is refused as already running', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    // with archiving broken the backup waits for its WAL, holding the stanza's lock until archiving is fixed
    await query(c, "alter system set archive_command = 'false'");
    await query(c, 'select pg_reload_conf()');
    const mark = fx.server.proc.mark();
    const running = repoctl(fx.connection(), ['backup', '--stanza', 'main', '--type', 'full', '--start-fast', '--process-max', '4', '--archive-timeout', '120'], 150_000);
    try {
      await fx.server.proc.waitForLog('waiting for WAL segment', 90_000, mark);
      expectRefused(await fx.repoctl(['expire', '--stanza', 'main']), 'expire during a backup', /a backup of stanza 'main' is already running/);
      expectRefused(await fx.repoctl(['backup', '--stanza', 'main']), 'backup during a backup', /a backup of stanza 'main' is already running/);
    } finally {
      await query(c, 'alter system reset archive_command');
      await query(c, 'select pg_reload_conf()');
    }
    const res = await running;
    expectSuccess(res, 'the backup that held the lock');
    const backups = await infoBackups(fx);
    s.f3 = backups[backups.length - 1];
    expect(backupDirs(fx)).toEqual([s.f2!.label, s.f3.label]);
  });

  step('--set expires that backup; the only full left cannot be expired', async () => {
    const fx = fixture();
    const res = await fx.repoctl(['expire', '--stanza', 'main', '--set', s.f2!.label]);
    expectSuccess(res, 'repoctl expire --set');
    expect(res.stdout).toContain(`expired 1 backup (${s.f2!.label})`);
    expect(res.stderr).toContain(`expire full backup ${s.f2!.label}: requested with --set`);
    expect(backupDirs(fx)).toEqual([s.f3!.label]);
    expectRefused(await fx.repoctl(['expire', '--stanza', 'main', '--set', s.f3!.label]), 'expire of the only full',
      new RegExp(`full backup ${s.f3!.label} cannot be expired until another full backup has been created`));
    expectRefused(await fx.repoctl(['expire', '--stanza', 'main', '--set', '20200101-000000F']), 'expire of an unknown label', /does not exist/);
    expectRefused(await fx.repoctl(['expire', '--stanza', 'main', '--set', 'latest']), 'expire of a bad label', /invalid backup label/);
    expectRefused(await fx.repoctl(['expire', '--stanza', 'main', '--repo-retention-full-type', 'weeks']), 'a bad retention type', /count or time/);
    expect(backupDirs(fx)).toEqual([s.f3!.label]);
    expect((await infoBackups(fx)).map((b) => b.label)).toEqual([s.f3!.label]);
  });
});
