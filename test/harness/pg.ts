/**
 * PostgreSQL 15 clusters for the tests: temp dirs, initdb, start/stop with pg_ctl (as the
 * postgres OS user when root), queries over the unix socket, WAL archiving checks.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { keepTemp, onCleanup, onExitSync } from './cleanup';
import { chownToPostgres, describeRun, run, runOk, shq, waitUntil } from './system';

const PG15_BINDIR = '/usr/lib/postgresql/15/bin';

let bindir: string | undefined;

/** PostgreSQL 15's bin dir: `pg_config --bindir` of the 15 install, else its usual path. */
export function pgBindir(): string {
  if (bindir) return bindir;
  let dir = PG15_BINDIR;
  try {
    const out = execFileSync(path.join(PG15_BINDIR, 'pg_config'), ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (out) dir = out;
  } catch {
    // fall back to the Debian path
  }
  if (!fs.existsSync(path.join(dir, 'initdb'))) {
    throw new Error(`PostgreSQL 15 is not installed (no ${path.join(dir, 'initdb')}): apt-get install postgresql-15 (.ci/run does this)`);
  }
  return (bindir = dir);
}

function tmpBase(): string {
  // unix socket paths are limited to 107 bytes: keep temp dirs short even if TMPDIR is long
  const t = os.tmpdir();
  return t.length > 40 ? '/tmp' : t;
}

/**
 * A fresh empty directory under the temp dir, owned by postgres when running as root (so
 * clusters, agents and the server can create things in it), removed at cleanup.
 */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(tmpBase(), `${prefix}-`));
  await fsp.chmod(dir, 0o700);
  await chownToPostgres(dir);
  onCleanup(`rm ${dir}`, async () => {
    if (keepTemp) {
      console.error(`[harness] kept ${dir}`);
      return;
    }
    await fsp.rm(dir, { recursive: true, force: true, maxRetries: 3 });
  });
  return dir;
}

export interface Cluster {
  name: string;
  dir: string;
  port: number;
  socketDir: string;
  logFile: string;
}

export interface InitOptions {
  dir: string;
  port: number;
  socketDir: string;
  name?: string;
  /** archive_command; archiving is on when given (archive_mode defaults to whether it is given) */
  archiveCommand?: string;
  archiveMode?: boolean;
  /** more postgresql.conf settings (raw values are quoted as strings) */
  settings?: Record<string, string | number>;
}

function confValue(v: string | number): string {
  return typeof v === 'number' ? String(v) : `'${v.replace(/'/g, "''")}'`;
}

/** A Cluster handle for an existing data directory (e.g. one a restore wrote). */
export function clusterAt(o: { dir: string; port: number; socketDir: string; name?: string }): Cluster {
  return { name: o.name ?? path.basename(o.dir), dir: o.dir, port: o.port, socketDir: o.socketDir, logFile: `${o.dir}.log` };
}

/** initdb -k (data checksums) + our settings appended to postgresql.conf. Does not start it. */
export async function initCluster(o: InitOptions): Promise<Cluster> {
  const c = clusterAt(o);
  await runOk(path.join(pgBindir(), 'initdb'), ['-k', '-D', c.dir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-instructions'], {
    asPostgres: true,
    timeoutMs: 120_000,
  });
  const archiveMode = o.archiveMode ?? o.archiveCommand !== undefined;
  const settings: Record<string, string | number> = {
    port: o.port,
    listen_addresses: '',
    unix_socket_directories: o.socketDir,
    wal_level: 'replica',
    max_wal_senders: 2,
    archive_mode: archiveMode ? 'on' : 'off',
    // keep fsync on (this is a backup test); checkpoints only when we ask, so a segment we copy is not recycled under us
    checkpoint_timeout: '1h',
    max_wal_size: '1GB',
    max_connections: 20,
    shared_buffers: '32MB',
    log_line_prefix: '%m [%p] ',
    ...(o.archiveCommand !== undefined ? { archive_command: o.archiveCommand } : {}),
    ...o.settings,
  };
  const lines = Object.entries(settings).map(([k, v]) => `${k} = ${confValue(v)}`);
  await fsp.appendFile(path.join(c.dir, 'postgresql.conf'), `\n# pgrepo test harness\n${lines.join('\n')}\n`);
  return c;
}

/** The postmaster's pid from postmaster.pid when that process is alive, else null. */
export function postmasterPid(c: Cluster): number | null {
  try {
    const pid = Number(fs.readFileSync(path.join(c.dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) return null;
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

export function isRunning(c: Cluster): boolean {
  return postmasterPid(c) !== null;
}

/** Last lines of the cluster's server log (for failure messages). */
export function logTail(c: Cluster, lines = 40): string {
  try {
    return fs.readFileSync(c.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no server log)';
  }
}

/**
 * pg_ctl start -w. Port and socket directory are always passed on the command line (they win
 * over postgresql.conf / .auto.conf, so a restored copy of another cluster comes up on its own
 * port); `settings` adds more `-c name=value` (e.g. archive_mode=off).
 */
export async function startCluster(c: Cluster, opts: { settings?: Record<string, string | number>; timeoutMs?: number } = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const settings: Record<string, string | number> = { unix_socket_directories: c.socketDir, listen_addresses: '', ...opts.settings };
  const o = [`-p ${c.port}`, ...Object.entries(settings).map(([k, v]) => `-c ${k}=${shq(String(v))}`)].join(' ');
  // the log file lives beside the data dir, in a postgres-owned temp dir
  const args = ['start', '-D', c.dir, '-l', c.logFile, '-w', '-t', String(Math.ceil(timeoutMs / 1000)), '-o', o];
  // immediate: at teardown nothing needs a checkpoint, and a fast shutdown would wait for the archiver to retry an agent already gone
  onCleanup(`stop cluster ${c.name}`, () => stopCluster(c, 'immediate'));
  onExitSync(() => {
    const pid = postmasterPid(c);
    if (pid) process.kill(pid, 'SIGQUIT'); // immediate shutdown
  });
  const res = await run(path.join(pgBindir(), 'pg_ctl'), args, { asPostgres: true, timeoutMs: timeoutMs + 15_000 });
  if (res.code !== 0) {
    throw new Error(`cannot start cluster ${c.name}: ${describeRun('pg_ctl', args, res)}\n--- server log ${c.logFile} ---\n${logTail(c)}`);
  }
}

/** pg_ctl stop -m fast -w (immediate when fast does not finish); a no-op when not running. */
export async function stopCluster(c: Cluster, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
  if (!isRunning(c)) return;
  const res = await run(path.join(pgBindir(), 'pg_ctl'), ['stop', '-D', c.dir, '-m', mode, '-w', '-t', '60'], { asPostgres: true, timeoutMs: 75_000 });
  if (res.code !== 0 && isRunning(c)) {
    if (mode === 'fast') return stopCluster(c, 'immediate');
    const pid = postmasterPid(c);
    if (pid) process.kill(pid, 'SIGKILL');
  }
}

/** One query over the unix socket as user postgres in database postgres. */
export function query<R extends Record<string, unknown> = Record<string, unknown>>(c: Cluster, sql: string, params: unknown[] = []): Promise<R[]> {
  return queryDb<R>(c, 'postgres', sql, params);
}

/** One query over the unix socket as user postgres in `database`. */
export async function queryDb<R extends Record<string, unknown> = Record<string, unknown>>(c: Cluster, database: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({
    host: c.socketDir,
    port: c.port,
    user: 'postgres',
    database,
    connectionTimeoutMillis: 10_000,
    query_timeout: 120_000,
  });
  client.on('error', () => {
    // a server shutdown while connected; the query itself reports it
  });
  await client.connect();
  try {
    const res = await client.query(sql, params);
    return res.rows as R[];
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function systemIdentifier(c: Cluster): Promise<string> {
  const [row] = await query<{ id: string }>(c, 'select system_identifier::text as id from pg_control_system()');
  return row.id;
}

/** Switches to a new WAL segment and returns the name of the one just completed. */
export async function switchWal(c: Cluster): Promise<string> {
  const [row] = await query<{ seg: string }>(c, 'select pg_walfile_name(pg_switch_wal()) as seg');
  return row.seg;
}

/** Waits until pg_stat_archiver says `segment` (or a later one) was archived; fails early on nothing. */
export async function waitForArchived(c: Cluster, segment: string, timeoutMs = 90_000): Promise<void> {
  await waitUntil(
    `cluster ${c.name} to archive WAL segment ${segment}`,
    async () => {
      const [row] = await query<{ last: string | null }>(c, 'select last_archived_wal as last from pg_stat_archiver');
      // last_archived_wal may be a .backup or .history file: compare the segment part
      return row.last !== null && /^[0-9A-F]{24}/.test(row.last) && row.last.slice(0, 24) >= segment;
    },
    {
      timeoutMs,
      intervalMs: 500,
      describeLast: async () => {
        const rows = await query(c, 'select * from pg_stat_archiver').catch((e: Error) => [{ error: e.message }]);
        return `pg_stat_archiver: ${JSON.stringify(rows[0])}\n--- server log ---\n${logTail(c, 20)}`;
      },
    },
  );
}

/** A TCP port that was free a moment ago (for the clusters' socket names and the restored cluster). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? resolve(port) : reject(new Error('no port'))));
    });
  });
}

/** count(*) and an order-independent checksum of every row's text, for comparing tables across clusters. */
export async function tableDigest(c: Cluster, table: string): Promise<{ count: number; sum: string }> {
  const [row] = await query<{ count: number; sum: string }>(
    c,
    `select count(*)::int as count, coalesce(sum(hashtext(t::text)::bigint), 0)::text as sum from ${table} t`,
  );
  return row;
}

/** Runs `sql` and completes a WAL segment, `n` times, then waits until the last one is archived. */
export async function archiveMoreWal(c: Cluster, n: number, sql: string): Promise<void> {
  let last = '';
  for (let i = 0; i < n; i++) {
    await query(c, sql);
    last = await switchWal(c);
  }
  await waitForArchived(c, last);
}
