/**
 * Resume, for real: the agent is killed with SIGKILL half way through a full backup. The partial
 * set stays in the repository (never offered as a backup), the next backup of the same kind
 * resumes it under the same label keeping the files already stored, and the result restores to
 * exactly the rows backed up. --no-resume removes a partial set and starts clean.
 * The agent runs with --test-backup-file-delay-ms (a test-only pause after each file) so the
 * kill lands mid-backup every time. The same holds when the repository server is the one killed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { expectRefused, expectSuccess } from '../harness/expect';
import { useFixture } from '../harness/fixture';
import { query, tableDigest } from '../harness/pg';
import { startRestored } from '../harness/restored';
import { startAgent, type Proc } from '../harness/processes';
import { scenario } from '../harness/scenario';
import { waitUntil, type RunResult } from '../harness/system';

const LABEL = /^\d{8}-\d{6}F$/;

describe('a backup killed half way is resumed by the next one', () => {
  const fixture = useFixture();
  const step = scenario();
  const s: { rows?: { count: number; sum: string }; partial?: string; second?: string; storedBeforeKill?: number; resumed?: string } = {};

  const stanzaDir = () => path.join(fixture().repoDir, 'backup', 'main');
  const labels = () => fs.readdirSync(stanzaDir()).filter((n) => LABEL.test(n));
  const storedFiles = (label: string): number => {
    const root = path.join(stanzaDir(), label, 'pg_data');
    if (!fs.existsSync(root)) return 0;
    return (fs.readdirSync(root, { recursive: true }) as string[]).filter((n) => n.endsWith('.zst')).length; // zst: the default compress-type
  };

  /** Replaces agent db1 with one started with the given extra flags. */
  const restartAgent1 = async (extraArgs: string[] = []): Promise<Proc> => {
    const fx = fixture();
    if (fx.agent1.running) await fx.agent1.stop();
    fx.agent1 = await startAgent({
      identity: 'db1', server: fx.server.address, certs: fx.certs, stanza: fx.stanza, pgPath: fx.cluster1.dir, pgPort: fx.cluster1.port,
      pgSocketPath: fx.socketDir, socket: fx.agent1Socket, extraArgs, logFile: path.join(fx.work, 'logs', 'agent-db1.log'),
    });
    return fx.agent1;
  };

  /** Starts a backup, waits until its new directory holds `files` stored files, kills the agent with SIGKILL, returns the label and repoctl's result. */
  const killMidway = async (args: string[], files: number): Promise<{ label: string; stored: number; res: RunResult }> => {
    const fx = fixture();
    const before = new Set(labels());
    const running = fx.repoctl(['backup', '--stanza', 'main', '--start-fast', ...args], { timeoutMs: 120_000 });
    let label = '';
    await waitUntil(`the backup to store ${files} files`, async () => {
      label = labels().find((l) => !before.has(l)) ?? '';
      return label !== '' && storedFiles(label) >= files;
    }, { timeoutMs: 60_000, intervalMs: 50 });
    fx.agent1.signal('SIGKILL');
    await fx.agent1.exited;
    const stored = storedFiles(label);
    return { label, stored, res: await running };
  };

  step('tables with rows, stanza-create, an agent that pauses after each file', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    await query(c, 'create table t_rows (id int primary key, v text)');
    await query(c, "insert into t_rows select g, repeat(md5(g::text), 3) from generate_series(1, 30000) g");
    await query(c, 'vacuum freeze');
    await query(c, 'checkpoint');
    s.rows = await tableDigest(c, 't_rows');
    expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'stanza-create');
    await restartAgent1(['--test-backup-file-delay-ms', '40']);
  });

  step('SIGKILL of the agent mid-backup: the backup fails, and its files are kept as a partial set', async () => {
    const { label, stored, res } = await killMidway(['--type', 'full'], 20);
    s.partial = label;
    expectRefused(res, 'backup whose agent was killed', /disconnected|agent/i);
    expect(res.stderr).toMatch(new RegExp(`backup ${label} failed; the \\d+ file\\(s\\) .* are kept as a partial backup`));
    expect(stored).toBeGreaterThanOrEqual(20);
    const dir = path.join(stanzaDir(), label);
    expect(fs.existsSync(path.join(dir, 'backup.manifest.copy')), 'in-progress manifest').toBe(true);
    expect(fs.existsSync(path.join(dir, 'backup.manifest')), 'no complete manifest').toBe(false);
  });

  step('a partial set is never shown or offered as a backup', async () => {
    const fx = fixture();
    const info = await fx.repoctl(['info', '--stanza', 'main', '--output', 'json']);
    expectSuccess(info, 'info');
    const [stanza] = JSON.parse(info.stdout);
    expect(stanza.backup).toEqual([]);
    expect(stanza.status.code).toBe(2);
    expect(fs.readFileSync(path.join(stanzaDir(), 'backup.info'), 'utf8')).not.toContain(s.partial);
    const target = path.join(await fx.newDir('refused-parent'), 'pg');
    expectRefused(await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--set', s.partial!, '--pg-path', target]),
      'restore of a partial set', /no backups to restore/);
    expectRefused(await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', target]), 'restore with only a partial set', /no backups/);
  });

  step('--no-resume removes the partial set and starts clean (killed again, leaving a new partial set)', async () => {
    await restartAgent1(['--test-backup-file-delay-ms', '40']);
    const { label, stored, res } = await killMidway(['--no-resume'], 20);
    expect(res.stderr).toContain(`backup ${s.partial} cannot be resumed: resume is disabled (--no-resume); removing it`);
    expect(fs.existsSync(path.join(stanzaDir(), s.partial!)), `${s.partial} removed`).toBe(false);
    expect(label).not.toBe(s.partial);
    expect(label > s.partial!).toBe(true);
    s.second = label;
    s.storedBeforeKill = stored;
  });

  step('the next backup of the same type resumes it: same label, stored files kept, the rest sent', async () => {
    const fx = fixture();
    await restartAgent1();
    const res = await fx.repoctl(['backup', '--stanza', 'main', '--start-fast', '--process-max', '4'], { timeoutMs: 120_000 });
    expectSuccess(res, 'resumed backup');
    const keptMatch = new RegExp(`resumable backup ${s.second} of the same type exists: (\\d+) file\\(s\\) verified and kept`).exec(res.stderr);
    expect(keptMatch, res.stderr).not.toBeNull();
    const kept = Number(keptMatch![1]);
    const summary = new RegExp(`^full backup ${s.second} complete`, 'm');
    expect(res.stdout).toMatch(summary);
    const resumed = Number(/resumed: (\d+) files/.exec(res.stdout)?.[1] ?? 0);
    // the files being sent when the agent died may be missing from the partial manifest: at most a few
    expect(resumed, res.stdout).toBeGreaterThan(0);
    expect(resumed).toBeGreaterThanOrEqual(s.storedBeforeKill! - 4);
    expect(resumed).toBeLessThanOrEqual(kept);
    const sent = Number(/sent: (\d+) files/.exec(res.stdout)![1]);
    const total = Number(/database: (\d+) files/.exec(res.stdout)![1]);
    expect(sent + resumed).toBe(total);
    const dir = path.join(stanzaDir(), s.second!);
    expect(fs.existsSync(path.join(dir, 'backup.manifest'))).toBe(true);
    s.resumed = s.second;
    const info = JSON.parse((await fx.repoctl(['info', '--stanza', 'main', '--output', 'json'])).stdout)[0];
    expect(info.backup.map((b: { label: string }) => b.label)).toEqual([s.second]);
  });

  step('the resumed backup restores, and the restored cluster has exactly the rows', async () => {
    const fx = fixture();
    const res = await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', fx.restoreDir, '--process-max', '4'], { timeoutMs: 120_000 });
    expectSuccess(res, 'restore of the resumed backup');
    const restored = await startRestored(fx, { name: 'restored', dir: fx.restoreDir, port: fx.restorePort, immediate: true });
    expect(await tableDigest(restored, 't_rows')).toEqual(s.rows);
    await query(restored, 'create extension if not exists amcheck');
    await query(restored, "select bt_index_check('t_rows_pkey'::regclass, true)");
  });

  step('SIGKILL of the repository server mid-backup: repoctl says the server went away, the restarted server takes the next backup, verify finds the repository whole', async () => {
    const fx = fixture();
    await restartAgent1(['--test-backup-file-delay-ms', '40']);
    // agent db2 still serves the restored copy, a promoted primary of the same system: which one to back up is ambiguous
    const ambiguous = await fx.repoctl(['backup', '--stanza', 'main', '--start-fast', '--type', 'full']);
    expectRefused(ambiguous, 'backup with two primaries and no --host', /more than one agent of stanza 'main' reaches a running primary: .*db1.*db2|more than one agent of stanza 'main' reaches a running primary: .*db2.*db1/);
    expect(ambiguous.stderr).toContain('--host');
    const before = new Set(labels());
    const running = fx.repoctl(['backup', '--stanza', 'main', '--host', 'db1', '--start-fast', '--type', 'full'], { timeoutMs: 120_000 });
    let label = '';
    let ended: RunResult | undefined;
    void running.then((r) => (ended = r));
    await waitUntil('the backup to store 10 files', async () => {
      if (ended) throw new Error(`the backup ended before the kill: ${ended.stdout}${ended.stderr}`);
      label = labels().find((l) => !before.has(l)) ?? '';
      return label !== '' && storedFiles(label) >= 10;
    }, { timeoutMs: 60_000, intervalMs: 50 });
    fx.server.proc.signal('SIGKILL');
    await fx.server.proc.exited;
    const res = await running;
    expectRefused(res, 'backup whose server was killed', /server|unavailable|connection/i);
    expect(res.stderr).not.toMatch(/^\s+at /m); // a sentence, not a stack trace
    expect(res.stderr).toContain('lost the connection to the repository server');

    await fx.startServer();
    await restartAgent1();
    const next = await fx.repoctl(['backup', '--stanza', 'main', '--host', 'db1', '--start-fast', '--type', 'full'], { timeoutMs: 120_000 });
    expectSuccess(next, 'the backup after the server restart');
    // the interrupted set is either resumed (same label) or removed with a reason: never left behind half-written
    const done = /^full backup (\S+) complete/m.exec(next.stdout)?.[1];
    expect(done, next.stdout).toBeDefined();
    if (done !== label) {
      expect(next.stderr).toContain(`backup ${label} cannot be resumed`);
      expect(fs.existsSync(path.join(stanzaDir(), label)), `${label} removed`).toBe(false);
    }
    const info = JSON.parse((await fx.repoctl(['info', '--stanza', 'main', '--output', 'json'])).stdout)[0];
    expect(info.backup.map((b: { label: string }) => b.label)).toContain(done);
    expectSuccess(await fx.repoctl(['verify', '--stanza', 'main'], { timeoutMs: 120_000 }), 'verify after the server was killed');
    expect(fs.readdirSync(path.join(stanzaDir(), done!), { recursive: true }).filter((n) => /\.tmp|\.partial/.test(String(n))), 'no half-written files').toEqual([]);
  });
});
