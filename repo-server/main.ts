#!/usr/bin/env -S node --initial-old-space-size=64
// --initial-old-space-size: V8 counts the Buffers of the data path (socket reads, HTTP/2 frames,
// gRPC messages, compressed frames: ~3 per MiB moved, freed only by a collection) against the
// old generation's limit, which on a 12 MB heap sits a few MiB above it: at 150 MiB/s that was a
// full mark-compact every 40 ms, 300 in a 1.5 GB backup, a third of the CPU the backup cost. A
// 64 MiB floor makes it ~30. The flag must be on node's command line (the heap is sized at
// start), hence `env -S`; started as `node main.js`, pass it too (test/harness does).
import fs from 'node:fs';
import type http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { formatHelp, parseOptions, type Options } from '../shared/config/options';
import { UserError } from '../shared/errors';
import { createLogger, type Logger } from '../shared/log';
import { CHANNEL_OPTIONS, loadProto, raiseServerFlowControl } from '../shared/proto';
import { readTlsFiles, ServerTls } from '../shared/tls';
import { runMain } from '../shared/cli/run-main';
import { raiseIoThreads } from '../shared/io-threads';
import { AuthRules, mayAccessStanza } from './auth';
import { AgentRegistry } from './agents';
import { PosixStorage } from './storage/posix';
import { StanzaLocks, StanzaStore } from './repo/stanza-store';
import { BackupSessions } from './commands/backup-session';
import { repositoryHandlers } from './service/repository-service';
import { ServerMetrics, serveMetrics } from './metrics';
import { CertificateWatch, RefusedCertificates } from './cert-watch';
import { SERVER_OPTIONS, SERVER_USAGE } from './options';
import { checkRetentionConfig } from './commands/expire';
import type { ServerContext } from './context';
import { withRawMessages } from './commands/restore-send';

/** Seconds work in flight gets to end cleanly after SIGTERM before connections are cut. */
const SHUTDOWN_GRACE_SECONDS = 30;

function loadRules(options: Options): AuthRules {
  const rules = AuthRules.parse(options.list('auth'));
  if (rules.size === 0) throw new UserError('no --auth rules: every client would be refused (e.g. --auth db1=agent:main --auth ops=admin)');
  return rules;
}

function prepareRepository(repoPath: string): void {
  try {
    fs.mkdirSync(repoPath, { recursive: true, mode: 0o750 });
    fs.accessSync(repoPath, fs.constants.W_OK);
  } catch (err) {
    throw new UserError(`repository path ${repoPath} is not a writable directory: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}

function bind(server: grpc.Server, address: string, credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => {
      if (err) reject(new UserError(`cannot listen on ${address}: ${err.message}`));
      else resolve(port);
    });
  });
}

/** The options SIGHUP cannot apply to a running server. */
const RESTART_ONLY = ['listen', 'repo-path', 'metrics-listen', 'log-level'];

/**
 * SIGHUP: re-reads the config file (and flags), then swaps in the new authorization rules and
 * certificates. Connections stay up; agents the new rules no longer allow are detached.
 */
function reload(ctx: ServerContext, argv: string[], current: Options, tls: ServerTls, certs: CertificateWatch): { options: Options; rules: AuthRules } {
  const options = parseOptions(SERVER_OPTIONS, argv);
  const rules = loadRules(options);
  checkRetentionConfig(options);
  const files = readTlsFiles(options);
  tls.update(files);
  certs.checkOwn(files);
  ctx.archiveTimeoutSeconds = options.int('archive-timeout')!;
  const ignored = RESTART_ONLY.filter((name) => options.str(name) !== current.str(name));
  if (ignored.length) ctx.log.warn({ options: ignored }, 'these options changed but need a restart to take effect');
  return { options, rules };
}

function revokeDetached(ctx: ServerContext, rules: AuthRules): string[] {
  return ctx.agents.revoke((agent) => {
    const rule = rules.rule(agent.identity);
    return rule?.role === 'agent' && mayAccessStanza(rule, agent.stanza);
  });
}

/**
 * SIGTERM/SIGINT: stop taking calls, end every agent channel so running backups and restores
 * fail at once and clean up (their partial files removed, never half-written: storage commits
 * by rename), wait for the calls in flight to end, then exit.
 */
function shutdown(server: grpc.Server, ctx: ServerContext, log: Logger, signal: string, metricsServer?: http.Server): Promise<void> {
  log.info({ signal, graceSeconds: SHUTDOWN_GRACE_SECONDS }, 'shutting down: ending work in flight');
  metricsServer?.close();
  return new Promise<void>((resolve) => {
    const force = setTimeout(() => {
      log.warn({ graceSeconds: SHUTDOWN_GRACE_SECONDS }, 'calls still running after the grace period: cutting connections');
      server.forceShutdown();
      resolve();
    }, SHUTDOWN_GRACE_SECONDS * 1000);
    force.unref();
    server.tryShutdown(() => {
      clearTimeout(force);
      log.info('shut down cleanly');
      resolve();
    });
    ctx.agents.closeAll('the server is shutting down');
  });
}

async function main(): Promise<number | void> {
  raiseIoThreads();
  const argv = process.argv.slice(2);
  let options = parseOptions(SERVER_OPTIONS, argv);
  if (options.bool('help')) {
    process.stdout.write(formatHelp(SERVER_USAGE, SERVER_OPTIONS));
    return 0;
  }
  const log = createLogger('pgrepo-server', options.str('log-level')!);
  const repoPath = options.requireStr('repo-path', 'where the repository lives');
  let rules = loadRules(options);
  checkRetentionConfig(options);
  const tlsFiles = readTlsFiles(options);
  const tls = new ServerTls(tlsFiles);
  const certs = new CertificateWatch(log);
  certs.checkOwn(tlsFiles);
  prepareRepository(repoPath);

  const storage = new PosixStorage(repoPath);
  const store = new StanzaStore(storage);
  const agents = new AgentRegistry(log);
  const refused = new RefusedCertificates();
  const metrics = new ServerMetrics({ log, storage, store, agents, rules: () => rules });
  const ctx: ServerContext = {
    log, rules: () => rules, storage, store, agents, metrics,
    locks: new StanzaLocks(), sessions: new BackupSessions(), archiveTimeoutSeconds: options.int('archive-timeout')!,
    explainUnverified: (peer) => refused.explain(peer),
    onCertificate: (cert) => certs.checkPeer(cert),
    config: () => options,
  };
  const server = new grpc.Server(CHANNEL_OPTIONS);
  server.addService(withRawMessages(loadProto().pgrepo.v1.Repository.service), repositoryHandlers(ctx));
  const listen = options.str('listen')!;
  const port = await bind(server, listen, tls.credentials());
  if (!refused.attach(server)) log.debug('cannot watch TLS handshakes: refusals of bad client certificates will not name them');
  const metricsListen = options.str('metrics-listen');
  const metricsServer = metricsListen ? await serveMetrics(metrics, metricsListen, log) : undefined;
  raiseServerFlowControl(server, (message) => log.warn(message));
  const host = listen.slice(0, listen.lastIndexOf(':'));
  log.info({ address: `${host}:${port}`, repoPath, rules: rules.size }, 'listening');
  // certificates expire while the server runs: look again every day
  setInterval(() => certs.checkOwn(readTlsFiles(options)), 86_400_000).unref();

  process.on('SIGHUP', () => {
    try {
      const before = new Set(rules.all().map((r) => r.identity));
      ({ options, rules } = reload(ctx, argv, options, tls, certs));
      const after = new Set(rules.all().map((r) => r.identity));
      const detached = revokeDetached(ctx, rules);
      log.info({
        rules: rules.size, added: [...after].filter((i) => !before.has(i)), removed: [...before].filter((i) => !after.has(i)), detached,
      }, 'reloaded authorization rules, retention settings and certificates');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'reload failed; keeping the previous rules and certificates');
    }
  });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => void shutdown(server, ctx, log, signal, metricsServer).then(resolve);
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

runMain('pgrepo-server', main);
