/**
 * The OS side of the harness: who runs what (root → the `postgres` user, since PostgreSQL
 * refuses root), running a command with a timeout, ownership, polling, and where the
 * checkout is.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { onExitSync } from './cleanup';

export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

let pgUser: OsUser | undefined;

/** The `postgres` OS user Debian's package creates (only needed, and only looked up, when root). */
export function postgresUser(): OsUser {
  if (pgUser) return pgUser;
  const res = spawnSync('getent', ['passwd', 'postgres'], { encoding: 'utf8' });
  const fields = res.status === 0 ? res.stdout.trim().split(':') : [];
  if (fields.length < 6) {
    throw new Error('running as root but there is no `postgres` OS user: install postgresql-15 (it creates the user), or run the tests as a normal user');
  }
  pgUser = { name: fields[0], uid: Number(fields[2]), gid: Number(fields[3]), home: fields[5] };
  return pgUser;
}

/** Programs that touch PostgreSQL files run as `postgres` when the tests run as root. */
export function runsAsPostgres(): boolean {
  return isRoot;
}

/** spawn() options that drop to the postgres user when root (uid/gid: direct signals, no PAM, no wrapper process). */
export function identityOptions(asPostgres: boolean): { uid?: number; gid?: number } {
  if (!asPostgres || !isRoot) return {};
  const u = postgresUser();
  return { uid: u.uid, gid: u.gid };
}

/**
 * Environment for children: no stray libpq variables (PGHOST, PGPORT, PGDATA, ... would
 * redirect pg_ctl or an agent to the wrong cluster), C locale, and the postgres user's HOME
 * when running as postgres.
 */
export function childEnv(asPostgres: boolean, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^PG[A-Z_]*$/.test(k)) continue;
    if (k === 'NODE_OPTIONS' || k.startsWith('VITEST') || k === 'TEST' || k === 'NODE_ENV') continue;
    env[k] = v;
  }
  env.LC_ALL = 'C';
  env.LANG = 'C';
  if (asPostgres && isRoot) {
    const u = postgresUser();
    env.HOME = fs.existsSync(u.home) ? u.home : '/tmp';
    env.USER = u.name;
    env.LOGNAME = u.name;
  }
  return { ...env, ...extra };
}

export interface RunResult {
  /** exit code; -1 when killed by a signal or on timeout */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface RunOptions {
  asPostgres?: boolean;
  timeoutMs?: number;
  env?: Record<string, string>;
  cwd?: string;
  input?: string;
}

/**
 * Runs a command to completion and collects its output. Never hangs: after timeoutMs the
 * whole process group gets SIGTERM, then SIGKILL 5 s later, and the result says timedOut.
 */
export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const asPostgres = opts.asPostgres ?? false;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? (asPostgres && isRoot ? '/tmp' : undefined),
      env: childEnv(asPostgres, opts.env),
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      detached: true,
      ...identityOptions(asPostgres),
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    let timedOut = false;
    const killGroup = (sig: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, sig);
      } catch {
        // already gone
      }
    };
    const unhook = onExitSync(() => killGroup('SIGKILL'));
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), 5_000);
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      unhook();
      reject(new Error(`cannot run ${cmd}: ${e.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      unhook();
      resolve({
        code: code ?? -1,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    });
  });
}

/** One line for error messages: the command, how it ended, and the end of its output. */
export function describeRun(cmd: string, args: string[], res: RunResult, tailLines = 30): string {
  const how = res.timedOut ? 'timed out' : res.signal ? `killed by ${res.signal}` : `exit code ${res.code}`;
  const tail = (s: string) => s.trimEnd().split('\n').slice(-tailLines).join('\n');
  return `${[cmd, ...args].join(' ')}: ${how}\n--- stdout ---\n${tail(res.stdout)}\n--- stderr ---\n${tail(res.stderr)}`;
}

/** Runs and throws (with output) unless the exit code is 0. */
export async function runOk(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const res = await run(cmd, args, opts);
  if (res.code !== 0) throw new Error(describeRun(cmd, args, res));
  return res;
}

/** Gives a path (recursively for directories) to the postgres user when running as root. */
export async function chownToPostgres(p: string, recursive = false): Promise<void> {
  if (!isRoot) return;
  const { uid, gid } = postgresUser();
  await fsp.lchown(p, uid, gid);
  if (!recursive) return;
  const st = await fsp.lstat(p);
  if (!st.isDirectory()) return;
  for (const name of await fsp.readdir(p)) await chownToPostgres(path.join(p, name), true);
}

/** Polls `fn` until it returns a value other than undefined/false, or throws after timeoutMs. */
export async function waitUntil<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 60_000, intervalMs = 250, describeLast }: { timeoutMs?: number; intervalMs?: number; describeLast?: () => Promise<string> | string } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
      lastErr = undefined;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) {
      const extra = describeLast ? `\n${await describeLast()}` : '';
      const why = lastErr ? ` (last error: ${(lastErr as Error).message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}${extra}`);
    }
    await sleep(intervalMs);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

let root: string | undefined;

/** The checkout: the nearest directory upwards from the cwd whose package.json is pgrepo's. */
export function repoRoot(): string {
  if (root) return root;
  let dir = process.cwd();
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        if ((JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'pgrepo') return (root = dir);
      } catch {
        // keep looking
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find pgrepo's package.json above ${process.cwd()}: run the tests from the checkout`);
    dir = parent;
  }
}

/** Whether the postgres user (when root; else we) can read a file. */
export function readableByRunner(file: string): boolean {
  if (!isRoot) return fs.existsSync(file);
  const res = spawnSync('test', ['-r', file], { ...identityOptions(true) });
  return res.status === 0;
}

/** Shell single-quoting. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
