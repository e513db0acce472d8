/**
 * One-call set-up of a whole installation for a test file: certificates, a repository dir,
 * pgrepo-server, PostgreSQL cluster 1 archiving through agent db1, and agent db2 whose
 * pg-path is a restore target that does not exist yet. Everything is per test file (own temp
 * dirs, ports from the OS), so files can run in parallel.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { makeCerts, type CertPair, type CertSet } from './certs';
import { runCleanups } from './cleanup';
import { freePort, initCluster, logTail, makeTempDir, startCluster, type Cluster } from './pg';
import {
  agentSpoolPath,
  archiveCommandFor,
  archiveGet,
  archivePush,
  repoctl,
  startAgent,
  startServer,
  type AgentOptions,
  type Proc,
  type RepoctlConnection,
  type ServerHandle,
} from './processes';
import { chownToPostgres, type RunResult } from './system';

export interface FixtureOptions {
  stanza?: string;
  /** more --auth rules for the server */
  extraAuth?: string[];
  /** more pgrepo-server flags (e.g. retention settings) */
  serverArgs?: string[];
  /** more flags for agent db1 (e.g. --archive-async) */
  agent1Args?: string[];
  /** more flags for agent db2 */
  agent2Args?: string[];
  /** more postgresql.conf settings for cluster 1 */
  cluster1Settings?: Record<string, string | number>;
}

export interface RepoctlOptions {
  /** client certificate CN from the installation's CA (default ops); null = no certificate */
  as?: string | null;
  /** use the foreign CA's certificate for `as` instead */
  foreign?: boolean;
  timeoutMs?: number;
}

export interface Fixture {
  stanza: string;
  certs: CertSet;
  /** scratch dir owned by postgres (when root), removed at teardown */
  work: string;
  repoDir: string;
  server: ServerHandle;
  /** unix socket dir of the clusters (and home of the agents' sockets) */
  socketDir: string;
  cluster1: Cluster;
  agent1: Proc;
  agent1Socket: string;
  agent1Spool: string;
  agent2Spool: string;
  agent2: Proc | null;
  agent2Socket: string;
  /** agent db2's pg-path: a restore target that does not exist until a restore makes it */
  restoreDir: string;
  /** a free port for a restored cluster */
  restorePort: number;
  /** clusters whose logs go into diagnostics (cluster1, plus what tests add) */
  clusters: Cluster[];
  repoctl(args: string[], opts?: RepoctlOptions): Promise<RunResult>;
  connection(opts?: RepoctlOptions): RepoctlConnection;
  archivePush(file: string, socket?: string): Promise<RunResult>;
  archiveGet(name: string, dest: string, socket?: string): Promise<RunResult>;
  /** stops agent db1 and starts it again with these extra flags (default: the fixture's agent1Args) */
  restartAgent1(extraArgs?: string[]): Promise<Proc>;
  /** stops the repository server (the agents keep retrying) */
  stopServer(): Promise<void>;
  /** starts the repository server again on the same address and repository */
  startServer(): Promise<void>;
  /** (re)starts agent db2; by default on restoreDir/restorePort */
  startAgent2(o?: Partial<Pick<AgentOptions, 'pgPath' | 'pgPort' | 'pgSocketPath' | 'socket' | 'logLevel' | 'extraArgs'>>): Promise<Proc>;
  stopAgent2(): Promise<void>;
  /** a new empty dir owned by postgres (when root) inside work */
  newDir(name: string): Promise<string>;
  /** last lines of every process and cluster log */
  diagnostics(): string;
  teardown(): Promise<void>;
}

export const DEFAULT_AUTH = ['db1=agent:main', 'db2=agent:main', 'ops=admin', 'viewer1=viewer'];

async function mkdirOwned(dir: string): Promise<string> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await chownToPostgres(dir);
  return dir;
}

export async function createFixture(opts: FixtureOptions = {}): Promise<Fixture> {
  const stanza = opts.stanza ?? 'main';
  const procs: Proc[] = [];
  const clusters: Cluster[] = [];
  const diagnostics = () =>
    [
      ...procs.map((p) => p.tail(60)),
      ...clusters.map((c) => `--- PostgreSQL ${c.name} log (${c.logFile}) ---\n${logTail(c, 40)}`),
    ].join('\n');
  try {
    const certs = await makeCerts();
    const work = await makeTempDir('pgrepo');
    const repoDir = await mkdirOwned(path.join(work, 'repo'));
    const socketDir = await mkdirOwned(path.join(work, 'sock'));
    const restoreDir = path.join(work, 'restore'); // not created: the restore makes it
    const logs = path.join(work, 'logs'); // copies of every program's output, for post-mortems (PGREPO_TEST_KEEP=1)
    await fsp.mkdir(logs);

    const serverOptions = { repoPath: repoDir, certs, auth: [...DEFAULT_AUTH, ...(opts.extraAuth ?? [])], extraArgs: opts.serverArgs, logFile: path.join(logs, 'server.log') };
    const server = await startServer(serverOptions);
    procs.push(server.proc);

    const agent1Socket = path.join(socketDir, 'agent1.sock');
    const agent2Socket = path.join(socketDir, 'agent2.sock');
    const agent1Spool = agentSpoolPath(agent1Socket, 'db1');
    const agent2Spool = agentSpoolPath(agent2Socket, 'db2');
    const [port1, restorePort] = [await freePort(), await freePort()];
    const cluster1 = await initCluster({
      name: 'cluster1',
      dir: path.join(work, 'pg1'),
      port: port1,
      socketDir,
      archiveCommand: await archiveCommandFor(agent1Socket, agent1Spool, stanza),
      settings: opts.cluster1Settings,
    });
    clusters.push(cluster1);
    await startCluster(cluster1);

    const agentBase = { server: server.address, certs, stanza };
    const startAgent1 = async (extraArgs: string[]) => {
      const proc = await startAgent({ ...agentBase, identity: 'db1', pgPath: cluster1.dir, pgPort: port1, pgSocketPath: socketDir, socket: agent1Socket, extraArgs, logFile: path.join(logs, 'agent-db1.log') });
      procs.push(proc);
      return proc;
    };
    const agent1 = await startAgent1(opts.agent1Args ?? []);

    const connection = (o: RepoctlOptions = {}): RepoctlConnection => {
      const as = o.as === undefined ? 'ops' : o.as;
      let client: CertPair | null = null;
      if (as !== null) client = o.foreign ? certs.foreign.client(as) : certs.client(as);
      return { server: server.address, ca: certs.ca, client };
    };

    const fx: Fixture = {
      stanza,
      certs,
      work,
      repoDir,
      server,
      socketDir,
      cluster1,
      agent1,
      agent1Socket,
      agent1Spool,
      agent2Spool,
      agent2: null,
      agent2Socket,
      restoreDir,
      restorePort,
      clusters,
      connection,
      repoctl: (args, o = {}) => repoctl(connection(o), args, o.timeoutMs),
      archivePush: (file, socket = agent1Socket) => archivePush(socket, file),
      archiveGet: (name, dest, socket = agent1Socket) => archiveGet(socket, name, dest),
      async restartAgent1(extraArgs = opts.agent1Args ?? []) {
        await fx.agent1.stop();
        fx.agent1 = await startAgent1(extraArgs);
        return fx.agent1;
      },
      async stopServer() {
        await fx.server.proc.stop();
      },
      async startServer() {
        if (fx.server.proc.running) return;
        const again = await startServer({ ...serverOptions, listen: fx.server.address });
        procs.push(again.proc);
        fx.server = again;
      },
      async startAgent2(o = {}) {
        await fx.stopAgent2();
        const proc = await startAgent({
          ...agentBase,
          identity: 'db2',
          pgPath: o.pgPath ?? restoreDir,
          pgPort: o.pgPort ?? restorePort,
          pgSocketPath: o.pgSocketPath ?? socketDir,
          socket: o.socket ?? agent2Socket,
          logLevel: o.logLevel,
          extraArgs: o.extraArgs ?? opts.agent2Args,
          logFile: path.join(logs, 'agent-db2.log'),
        });
        procs.push(proc);
        fx.agent2 = proc;
        return proc;
      },
      async stopAgent2() {
        if (fx.agent2) await fx.agent2.stop();
        fx.agent2 = null;
      },
      newDir: async (name) => {
        const dir = path.join(work, name);
        if (fs.existsSync(dir)) throw new Error(`${dir} exists already`);
        return mkdirOwned(dir);
      },
      diagnostics,
      teardown: () => runCleanups(),
    };
    await fx.startAgent2();
    return fx;
  } catch (err) {
    console.error(`[harness] fixture set-up failed: ${(err as Error).message}\n${diagnostics()}`);
    await runCleanups();
    throw err;
  }
}

/**
 * Vitest glue: creates the fixture in beforeAll, tears everything down in afterAll, and
 * prints every log's tail when a test fails. Returns a getter for use inside tests.
 */
export function useFixture(opts: FixtureOptions = {}): () => Fixture {
  let fx: Fixture | undefined;
  beforeAll(async () => {
    fx = await createFixture(opts);
  }, 180_000);
  afterAll(async () => {
    await runCleanups();
  }, 180_000);
  beforeEach((ctx) => {
    ctx.onTestFailed(() => {
      if (fx) console.error(`[harness] diagnostics for failed test '${ctx.task.name}':\n${fx.diagnostics()}`);
    });
  });
  return () => {
    if (!fx) throw new Error('fixture not set up (beforeAll failed)');
    return fx;
  };
}
