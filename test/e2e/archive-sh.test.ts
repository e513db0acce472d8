/**
 * The shell entry point (dist/agent/pgrepo-archive) on its own: what it answers from a spool,
 * how it asks a live agent through the spool (the test plays the agent's part: request in,
 * mark out), and that everything else reaches the real Node client (here with no agent listening, so the
 * client's "not running" error proves it was started, with the socket path intact). Paths with
 * spaces and quotes, the agent's config file, and exit codes: 0 only from an .ok mark or a
 * spooled file, 1 for a fresh .missing mark, 2 for usage errors.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveShPath, nodePath } from '../harness/processes';
import { sleep } from '../harness/system';

const WAL = '000000010000000000000007';

describe('pgrepo-archive (the shell entry point)', () => {
  let sh = '';
  let root = '';
  let spool = '';
  let socket = '';
  let data = '';
  const dir = (...p: string[]) => path.join(spool, 'archive', 'main', ...p);
  const segment = () => path.join(data, 'pg_wal', WAL);

  beforeAll(async () => {
    sh = await archiveShPath();
    root = fs.mkdtempSync(path.join(os.tmpdir(), "pgrepo sh 'x' "));
    spool = path.join(root, 'spool dir');
    socket = path.join(root, "no agent's.sock");
    data = path.join(root, 'data');
    for (const d of [dir('out'), dir('in'), path.join(data, 'pg_wal')]) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(data, 'pg_wal', WAL), 'segment');
  });
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  const flags = () => ['--socket', socket, '--spool-path', spool, '--stanza', 'main', '--node', nodePath];
  const run = (args: string[], cwd = data) => {
    const res = spawnSync(sh, args, { cwd, encoding: 'utf8', timeout: 60_000 });
    return { code: res.status, stderr: res.stderr };
  };
  const startedNode = (stderr: string) => stderr.includes(`no one listens on ${socket}`);

  it('push: 0 at once from an .ok mark for that very file, without starting Node', () => {
    fs.writeFileSync(dir('out', `${WAL}.ok`), `${segment()}\n`);
    expect(run(['push', ...flags(), `pg_wal/${WAL}`])).toEqual({ code: 0, stderr: '' });
    // the same file under another spelling (a symlinked data directory) is the same file
    const link = path.join(root, 'data-link');
    fs.symlinkSync(data, link);
    expect(run(['push', ...flags(), `${link}/pg_wal/${WAL}`])).toEqual({ code: 0, stderr: '' });
  });

  it('push: a mark for another file of that name is not an answer (never a false 0)', () => {
    const other = path.join(root, WAL);
    fs.writeFileSync(other, 'another segment of that name');
    const res = run(['push', ...flags(), other]);
    expect(res.code).toBe(1);
    expect(startedNode(res.stderr), res.stderr).toBe(true);
    fs.rmSync(dir('out', `${WAL}.ok`));
  });

  it('push: a dropped segment answers 0 and passes the warning to PostgreSQL', () => {
    fs.writeFileSync(dir('out', `${WAL}.ok`), `${segment()}\nWAL file X dropped: archive-push-queue-max exceeded\n`);
    const res = run(['push', ...flags(), `pg_wal/${WAL}`]);
    expect(res.code).toBe(0);
    expect(res.stderr).toContain('dropped: archive-push-queue-max exceeded');
    fs.rmSync(dir('out', `${WAL}.ok`));
  });

  it('push: without a mark or a live agent on the spool it starts the Node client and passes on its failure (never a false 0)', () => {
    const res = run(['push', ...flags(), `pg_wal/${WAL}`]);
    expect(res.code).toBe(1);
    expect(startedNode(res.stderr), res.stderr).toBe(true);
    // a pid file left by a dead agent is not a live agent
    fs.writeFileSync(dir('agent.pid'), '999999999\n');
    const dead = run(['push', ...flags(), `pg_wal/${WAL}`]);
    fs.rmSync(dir('agent.pid'));
    expect(dead.code).toBe(1);
    expect(startedNode(dead.stderr)).toBe(true);
    expect(fs.existsSync(dir('out', `${WAL}.request`))).toBe(false);
  });

  it('push: while the agent ships the segment (.pending) it waits for the .ok mark', async () => {
    fs.writeFileSync(dir('out', `${WAL}.pending`), '');
    const child = spawnAsync(sh, ['push', ...flags(), `pg_wal/${WAL}`], data);
    await sleep(300);
    fs.writeFileSync(dir('out', `${WAL}.ok`), `${segment()}\n`);
    fs.rmSync(dir('out', `${WAL}.pending`));
    expect(await child).toEqual({ code: 0, stderr: '' });
    fs.rmSync(dir('out', `${WAL}.ok`));
  });

  it('push: when the shipping fails (.pending goes, no .ok) it asks the agent instead', async () => {
    fs.writeFileSync(dir('out', `${WAL}.pending`), '');
    const child = spawnAsync(sh, ['push', ...flags(), `pg_wal/${WAL}`], data);
    await sleep(300);
    fs.rmSync(dir('out', `${WAL}.pending`));
    const res = await child;
    expect(res.code).toBe(1);
    expect(startedNode(res.stderr)).toBe(true);
  });

  describe('asking a live agent through the spool', () => {
    const request = () => dir('out', `${WAL}.request`);
    beforeAll(() => fs.writeFileSync(dir('agent.pid'), `${process.pid}\n`));
    afterAll(() => fs.rmSync(dir('agent.pid')));

    /** Runs the push, plays the agent's part once the request appears, and returns the run's result. */
    async function pushAnswered(answer: (walPath: string) => void) {
      const child = spawnAsync(sh, ['push', ...flags(), `pg_wal/${WAL}`], data);
      while (!fs.existsSync(request())) await sleep(20);
      await sleep(20); // the line is written right after the file is created
      const walPath = fs.readFileSync(request(), 'utf8');
      fs.rmSync(request());
      answer(walPath);
      return child;
    }

    it('writes out/<wal>.request with the absolute path of %p and exits 0 on the .ok mark', async () => {
      let asked = '';
      const res = await pushAnswered((p) => { asked = p; fs.writeFileSync(dir('out', `${WAL}.ok`), p); });
      expect(asked).toBe(`${path.join(data, 'pg_wal', WAL)}\n`);
      expect(res).toEqual({ code: 0, stderr: '' });
      fs.rmSync(dir('out', `${WAL}.ok`));
    });

    it("exits 1 with the agent's reason on an .error mark, and clears an old one before asking", async () => {
      fs.writeFileSync(dir('out', `${WAL}.error`), 'an old failure\n');
      const res = await pushAnswered(() => {
        expect(fs.existsSync(dir('out', `${WAL}.error`)), 'the old .error is gone before the request').toBe(false);
        fs.writeFileSync(dir('out', `${WAL}.error`), 'cannot reach the repository server\n');
      });
      expect(res.code).toBe(1);
      expect(res.stderr).toBe('pgrepo-archive push: error: cannot reach the repository server\n');
      fs.rmSync(dir('out', `${WAL}.error`));
    });
  });

  it("reads socket, spool-path and stanza from the agent's config file; flags win", () => {
    const conf = path.join(root, 'agent conf');
    fs.writeFileSync(conf, `# the agent's own file\n[global]\n  socket = ${socket}\nspool-path=${spool}  \nstanza=main\n; comment\ntls-cert=/x\n`);
    fs.writeFileSync(dir('out', `${WAL}.ok`), `${segment()}\n`);
    expect(run(['push', '--config', conf, '--node', nodePath, `pg_wal/${WAL}`]).code).toBe(0);
    // another stanza on the command line: its spool has no mark, so the client is asked
    const other = run(['push', '--config', conf, '--stanza', 'other', '--node', nodePath, `pg_wal/${WAL}`]);
    expect(other.code).toBe(1);
    expect(startedNode(other.stderr)).toBe(true);
    fs.rmSync(dir('out', `${WAL}.ok`));
    const missing = run(['push', '--config', path.join(root, 'nope.conf'), `pg_wal/${WAL}`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/cannot read config file/);
  });

  it('get: a prefetched segment is moved to %p (a path with spaces), exit 0', () => {
    fs.writeFileSync(dir('in', WAL), 'prefetched bytes');
    const dest = path.join(data, 'pg_wal', 'RECOVERY XLOG');
    expect(run(['get', ...flags(), WAL, dest])).toEqual({ code: 0, stderr: '' });
    expect(fs.readFileSync(dest, 'utf8')).toBe('prefetched bytes');
    expect(fs.existsSync(dir('in', WAL))).toBe(false);
  });

  it('get: a .missing mark of a live agent answers 1 at once; of a dead one, the client is asked', () => {
    fs.writeFileSync(dir('in', `${WAL}.missing`), `${process.pid}\n`);
    expect(run(['get', ...flags(), WAL, 'pg_wal/RECOVERYXLOG'])).toEqual({ code: 1, stderr: '' });
    fs.writeFileSync(dir('in', `${WAL}.missing`), '999999999\n');
    const dead = run(['get', ...flags(), WAL, 'pg_wal/RECOVERYXLOG']);
    expect(dead.code).toBe(1);
    expect(startedNode(dead.stderr)).toBe(true);
    fs.rmSync(dir('in', `${WAL}.missing`));
  });

  it('names that are not plain WAL file names never touch the spool', () => {
    fs.writeFileSync(dir('in', 'x'), 'not wal');
    const res = run(['get', ...flags(), '../in/x', path.join(root, 'out-x')]);
    expect(res.code).toBe(1);
    expect(fs.existsSync(path.join(root, 'out-x'))).toBe(false);
    expect(startedNode(res.stderr)).toBe(true);
  });

  it('usage errors exit 2', () => {
    expect(run([]).code).toBe(2);
    expect(run(['push']).code).toBe(2);
    expect(run(['get', WAL]).code).toBe(2);
    expect(run(['push', '--bogus', 'x', WAL]).code).toBe(2);
    expect(run(['push', '--socket']).code).toBe(2);
  });
});

function spawnAsync(cmd: string, args: string[], cwd: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => { stderr += d; });
    child.on('close', (code) => resolve({ code, stderr }));
  });
}
