/**
 * The three programs as real processes: pgrepo-server and pgrepo-agent daemons (output
 * collected, pino JSON lines parsed, waitForLog), and one-shot runs of repoctl and the
 * archive-push/get clients. Everything runs as postgres when the tests run as root, and every
 * daemon is stopped at cleanup (SIGTERM to its process group, SIGKILL after 5 s).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { CertPair, CertSet } from './certs';
import { onCleanup, onExitSync } from './cleanup';
import { makeTempDir } from './pg';
import { childEnv, describeRun, identityOptions, isRoot, readableByRunner, repoRoot, run, runOk, runsAsPostgres, type RunResult } from './system';

export type Program = 'server' | 'agent' | 'repoctl';

export const PROGRAM_FILES: Record<Program, string> = {
  server: 'dist/repo-server/main.js',
  agent: 'dist/agent/main.js',
  repoctl: 'dist/repo-server/repoctl/main.js',
};

/** Node itself, by absolute path (the archive_command and the postgres user need it). */
export const nodePath = process.execPath;

let app: Promise<string> | undefined;

/**
 * The directory holding dist/ (and node_modules/) that the programs run from: the checkout,
 * or, when the checkout is not readable by the postgres user (a clone under /root), a copy
 * in a temp dir that is.
 */
export function appRoot(): Promise<string> {
  app ??= (async () => {
    const root = repoRoot();
    for (const file of Object.values(PROGRAM_FILES)) {
      if (!fs.existsSync(path.join(root, file))) {
        throw new Error(`${path.join(root, file)} is missing: build first (npm run build; npm test does it)`);
      }
    }
    if (!isRoot || readableByRunner(path.join(root, PROGRAM_FILES.agent))) return root;
    if (!readableByRunner(nodePath)) throw new Error(`the postgres user cannot run ${nodePath}`);
    const copy = path.join(await makeTempDir('pgrepo-app'), 'app');
    fs.mkdirSync(copy, { mode: 0o755 });
    const parts = ['package.json', 'dist', 'node_modules', 'proto'].filter((p) => fs.existsSync(path.join(root, p)));
    await runOk('cp', ['-a', ...parts.map((p) => path.join(root, p)), copy], { timeoutMs: 120_000 });
    await runOk('chmod', ['-R', 'a+rX', copy]);
    return copy;
  })();
  return app;
}

export async function programPath(program: Program): Promise<string> {
  return path.join(await appRoot(), PROGRAM_FILES[program]);
}

/** One parsed pino line (or a non-JSON line as { msg }). */
export interface LogEntry {
  level?: number;
  msg?: string;
  [key: string]: unknown;
}

export type LogPredicate = string | RegExp | ((entry: LogEntry) => boolean);

function matches(pred: LogPredicate, entry: LogEntry): boolean {
  if (typeof pred === 'function') return pred(entry);
  const msg = typeof entry.msg === 'string' ? entry.msg : '';
  return typeof pred === 'string' ? msg === pred : pred.test(msg);
}

function describePredicate(pred: LogPredicate): string {
  return typeof pred === 'function' ? pred.toString().slice(0, 120) : String(pred);
}

/** A running daemon and everything it printed so far. */
export class Proc {
  readonly lines: { stream: 'stdout' | 'stderr'; text: string }[] = [];
  readonly logs: LogEntry[] = [];
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;
  readonly exited: Promise<void>;
  private waiters = new Set<() => void>();
  private unregister: Array<() => void> = [];

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly command: string,
    /** every line also goes here as it arrives (survives a crashed test worker) */
    readonly logFile?: string,
  ) {
    for (const stream of ['stdout', 'stderr'] as const) {
      let partial = '';
      child[stream]!.setEncoding('utf8');
      child[stream]!.on('data', (chunk: string) => {
        partial += chunk;
        let nl: number;
        while ((nl = partial.indexOf('\n')) >= 0) {
          this.addLine(stream, partial.slice(0, nl));
          partial = partial.slice(nl + 1);
        }
      });
      child[stream]!.on('end', () => {
        if (partial) this.addLine(stream, partial);
        partial = '';
      });
    }
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        this.notify();
        resolve();
      });
      child.on('error', (err) => {
        this.addLine('stderr', `[harness] cannot start ${name}: ${err.message}`);
        this.exitCode = -1;
        this.notify();
        resolve();
      });
    });
    this.unregister.push(onExitSync(() => this.signal('SIGKILL')));
    this.unregister.push(onCleanup(`stop ${name}`, () => this.stop()));
  }

  get running(): boolean {
    return this.exitCode === null && this.exitSignal === null;
  }

  private addLine(stream: 'stdout' | 'stderr', text: string): void {
    this.lines.push({ stream, text });
    if (this.logFile) {
      try {
        fs.appendFileSync(this.logFile, `${stream === 'stderr' ? '[err] ' : ''}${text}\n`);
      } catch {
        // the log copy is only for post-mortems
      }
    }
    const trimmed = text.trim();
    if (trimmed.startsWith('{')) {
      try {
        this.logs.push(JSON.parse(trimmed) as LogEntry);
        this.notify();
        return;
      } catch {
        // not JSON after all
      }
    }
    if (trimmed) this.logs.push({ msg: trimmed, stream, raw: true });
    this.notify();
  }

  private notify(): void {
    for (const w of this.waiters) w();
  }

  /** How many log entries so far: pass as `since` to wait only for later ones. */
  mark(): number {
    return this.logs.length;
  }

  /** The first log entry (at index >= since) matching pred; rejects on timeout or exit, with the output's tail. */
  waitForLog(pred: LogPredicate, timeoutMs = 30_000, since = 0): Promise<LogEntry> {
    return new Promise((resolve, reject) => {
      let scanned = since;
      let timer: NodeJS.Timeout | undefined;
      const done = (fn: () => void) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        fn();
      };
      const check = () => {
        for (; scanned < this.logs.length; scanned++) {
          const entry = this.logs[scanned];
          if (matches(pred, entry)) return done(() => resolve(entry));
        }
        if (!this.running) {
          done(() => reject(new Error(`${this.name} exited (${this.exitCode ?? this.exitSignal}) before logging ${describePredicate(pred)}\n${this.tail()}`)));
        }
      };
      timer = setTimeout(() => done(() => reject(new Error(`${this.name} did not log ${describePredicate(pred)} within ${timeoutMs} ms\n${this.tail()}`))), timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** The log entries at index >= since that match pred (no waiting). */
  findLogs(pred: LogPredicate, since = 0): LogEntry[] {
    return this.logs.slice(since).filter((e) => matches(pred, e));
  }

  /** The last lines of output, for failure messages. */
  tail(n = 40): string {
    const body = this.lines.slice(-n).map((l) => (l.stream === 'stderr' ? `[err] ${l.text}` : l.text)).join('\n');
    return `--- ${this.name} (${this.command}) last ${n} lines ---\n${body || '(no output)'}`;
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.running || !this.child.pid) return;
    try {
      process.kill(-this.child.pid, sig); // its process group (spawned detached)
    } catch {
      try {
        this.child.kill(sig);
      } catch {
        // gone
      }
    }
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves when it has exited. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.running) {
      this.signal('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          this.signal('SIGKILL');
          resolve();
        }, graceMs);
      });
      await Promise.race([this.exited, killed]);
      clearTimeout(timer);
      await Promise.race([this.exited, new Promise((r) => setTimeout(r, 2_000))]);
    }
    for (const u of this.unregister.splice(0)) u();
  }
}

export interface SpawnOptions {
  asPostgres?: boolean;
  env?: Record<string, string>;
  cwd?: string;
  /** also append the output to this file */
  logFile?: string;
}

/** The node flags a program's `#!/usr/bin/env -S node FLAGS` line gives it when run as a bin, so `node FILE` runs it the same way. */
function shebangFlags(file: string): string[] {
  const first = fs.readFileSync(file, 'utf8').split('\n', 1)[0];
  const m = /^#!\S*env -S node\s+(.*)$/.exec(first);
  return m ? m[1].split(/\s+/).filter(Boolean) : [];
}

/** Starts a program as a daemon (its own process group) and collects its output. */
export async function startProgram(name: string, program: Program, args: string[], opts: SpawnOptions = {}): Promise<Proc> {
  const asPostgres = opts.asPostgres ?? runsAsPostgres();
  const file = await programPath(program);
  // PGREPO_CPU_PROF_DIR=DIR: daemons write V8 CPU profiles there when they stop (where the time goes, for the benchmark)
  const profileDir = process.env.PGREPO_CPU_PROF_DIR;
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
  const flags = shebangFlags(file);
  const child = spawn(nodePath, [...flags, ...profile, file, ...args], {
    cwd: opts.cwd ?? '/tmp',
    env: childEnv(asPostgres, opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    ...identityOptions(asPostgres),
  });
  if (opts.logFile) fs.appendFileSync(opts.logFile, `--- ${new Date().toISOString()} ${nodePath} ${file} ${args.join(' ')}\n`);
  return new Proc(name, child, `${path.basename(path.dirname(file))}/${path.basename(file)} ${args.join(' ')}`, opts.logFile);
}

/** Runs a program to completion (repoctl, archive-push, archive-get). Never hangs: killed after timeoutMs. */
export async function runProgram(program: Program, args: string[], opts: SpawnOptions & { timeoutMs?: number } = {}): Promise<RunResult> {
  const asPostgres = opts.asPostgres ?? runsAsPostgres();
  return run(nodePath, [await programPath(program), ...args], { asPostgres, timeoutMs: opts.timeoutMs ?? 120_000, env: opts.env, cwd: opts.cwd ?? '/tmp' });
}

/** Like runProgram but throws (with the output) unless it exits 0. */
export async function runProgramOk(program: Program, args: string[], opts: SpawnOptions & { timeoutMs?: number } = {}): Promise<RunResult> {
  const res = await runProgram(program, args, opts);
  if (res.code !== 0) throw new Error(describeRun(PROGRAM_FILES[program], args, res));
  return res;
}

export function waitForLog(proc: Proc, pred: LogPredicate, timeoutMs = 30_000, since = 0): Promise<LogEntry> {
  return proc.waitForLog(pred, timeoutMs, since);
}

// ---- the server --------------------------------------------------------------------------

export interface ServerHandle {
  proc: Proc;
  /** 127.0.0.1:PORT */
  address: string;
  port: number;
}

export interface ServerOptions {
  repoPath: string;
  certs: CertSet;
  /** --auth values, e.g. db1=agent:main */
  auth: string[];
  logLevel?: string;
  extraArgs?: string[];
  name?: string;
  logFile?: string;
  /** HOST:PORT to listen on (default 127.0.0.1:0, a port from the OS) */
  listen?: string;
}

/** Starts pgrepo-server on 127.0.0.1:0 and waits for its "listening" line (which has the real port). */
export async function startServer(o: ServerOptions): Promise<ServerHandle> {
  const args = [
    '--listen', o.listen ?? '127.0.0.1:0',
    '--repo-path', o.repoPath,
    '--tls-cert', o.certs.server.cert,
    '--tls-key', o.certs.server.key,
    '--tls-ca', o.certs.ca,
    ...o.auth.flatMap((a) => ['--auth', a]),
    '--log-level', o.logLevel ?? 'info',
    ...(o.extraArgs ?? []),
  ];
  const proc = await startProgram(o.name ?? 'pgrepo-server', 'server', args, { logFile: o.logFile });
  const entry = await proc.waitForLog('listening', 30_000);
  const address = String(entry.address ?? '');
  const m = /:(\d+)$/.exec(address);
  if (!m || Number(m[1]) === 0) throw new Error(`pgrepo-server logged "listening" without a real address: ${JSON.stringify(entry)}`);
  return { proc, address: `127.0.0.1:${m[1]}`, port: Number(m[1]) };
}

// ---- agents ------------------------------------------------------------------------------

export interface AgentOptions {
  /** the agent's certificate CN (db1, db2) */
  identity: string;
  server: string;
  certs: CertSet;
  stanza: string;
  pgPath: string;
  pgPort: number;
  pgSocketPath: string;
  /** the unix socket it serves archive-push/get on */
  socket: string;
  /** --spool-path (default: spool-<identity> beside the socket, so agents on one machine never share one) */
  spoolPath?: string;
  logLevel?: string;
  extraArgs?: string[];
  logFile?: string;
}

/** The spool path the harness gives an agent unless told otherwise. */
export function agentSpoolPath(socket: string, identity: string): string {
  return path.join(path.dirname(socket), `spool-${identity}`);
}

/** Starts pgrepo-agent and waits until its job channel to the server is up. */
export async function startAgent(o: AgentOptions): Promise<Proc> {
  const pair = o.certs.client(o.identity);
  const args = [
    '--server', o.server,
    '--stanza', o.stanza,
    '--pg-path', o.pgPath,
    '--pg-port', String(o.pgPort),
    '--pg-socket-path', o.pgSocketPath,
    '--socket', o.socket,
    '--spool-path', o.spoolPath ?? agentSpoolPath(o.socket, o.identity),
    '--tls-cert', pair.cert,
    '--tls-key', pair.key,
    '--tls-ca', o.certs.ca,
    '--log-level', o.logLevel ?? 'info',
    ...(o.extraArgs ?? []),
  ];
  const proc = await startProgram(`pgrepo-agent ${o.identity}`, 'agent', args, { logFile: o.logFile });
  await proc.waitForLog('attached to repository server', 30_000);
  return proc;
}

// ---- one-shot clients --------------------------------------------------------------------

export interface RepoctlConnection {
  server: string;
  /** CA the client trusts the server with */
  ca: string;
  /** client certificate; null = none (for the refusal test) */
  client: CertPair | null;
}

/** Runs `repoctl --server ... --tls-* ... <args>`. */
export function repoctl(conn: RepoctlConnection, args: string[], timeoutMs = 100_000): Promise<RunResult> {
  const tls = conn.client ? ['--tls-cert', conn.client.cert, '--tls-key', conn.client.key] : [];
  return runProgram('repoctl', ['--server', conn.server, ...tls, '--tls-ca', conn.ca, ...args], { timeoutMs });
}

/** `pgrepo-agent archive-push --socket S FILE`, as PostgreSQL's archive_command would (as postgres). */
export function archivePush(socket: string, file: string, timeoutMs = 60_000): Promise<RunResult> {
  return runProgram('agent', ['archive-push', '--socket', socket, file], { timeoutMs, cwd: path.dirname(file) });
}

/** `pgrepo-agent archive-get --socket S NAME DEST`, as PostgreSQL's restore_command would. */
export function archiveGet(socket: string, name: string, dest: string, timeoutMs = 60_000): Promise<RunResult> {
  return runProgram('agent', ['archive-get', '--socket', socket, name, dest], { timeoutMs, cwd: path.dirname(dest) });
}

/** The shell entry point PostgreSQL runs (dist/agent/pgrepo-archive). */
export async function archiveShPath(): Promise<string> {
  return path.join(path.dirname(await programPath('agent')), 'pgrepo-archive');
}

/**
 * The archive_command for a cluster whose agent serves `socket`: the shell entry point, as the
 * README says; with the agent's spool and stanza it answers from the spool when it can.
 */
export async function archiveCommandFor(socket: string, spoolPath?: string, stanza?: string): Promise<string> {
  const spool = spoolPath && stanza ? ` --spool-path ${spoolPath} --stanza ${stanza}` : '';
  return `${await archiveShPath()} push --socket ${socket}${spool} --node ${nodePath} %p`;
}

/** Runs the shell entry point (`pgrepo-archive push|get ...`) as PostgreSQL would, in `cwd`. */
export async function runArchiveSh(args: string[], cwd: string, timeoutMs = 60_000): Promise<RunResult> {
  return run(await archiveShPath(), args, { asPostgres: runsAsPostgres(), timeoutMs, cwd });
}
