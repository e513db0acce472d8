#!/usr/bin/env node
import fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { formatHelp, parseOptions, type Options } from '../shared/config/options';
import { UserError } from '../shared/errors';
import { createLogger } from '../shared/log';
import { CHANNEL_OPTIONS, loadProto } from '../shared/proto';
import { readTlsFiles, ServerTls } from '../shared/tls';
import { runMain } from '../shared/cli/run-main';
import { AuthRules } from './auth';
import { AgentRegistry } from './agents';
import { PosixStorage } from './storage/posix';
import { StanzaLocks, StanzaStore } from './repo/stanza-store';
import { BackupSessions } from './commands/backup-session';
import { repositoryHandlers } from './service/repository-service';
import { SERVER_OPTIONS, SERVER_USAGE } from './options';
import { checkRetentionConfig } from './commands/expire';
import type { ServerContext } from './context';

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

async function main(): Promise<number | void> {
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
  const tls = new ServerTls(readTlsFiles(options));
  prepareRepository(repoPath);

  const storage = new PosixStorage(repoPath);
  const ctx: ServerContext = {
    log, rules: () => rules, storage, store: new StanzaStore(storage), agents: new AgentRegistry(log),
    locks: new StanzaLocks(), sessions: new BackupSessions(), archiveTimeoutSeconds: options.int('archive-timeout')!,
    config: () => options,
  };
  const server = new grpc.Server(CHANNEL_OPTIONS);
  server.addService(loadProto().pgrepo.v1.Repository.service, repositoryHandlers(ctx));
  const listen = options.str('listen')!;
  const port = await bind(server, listen, tls.credentials());
  const host = listen.slice(0, listen.lastIndexOf(':'));
  log.info({ address: `${host}:${port}`, repoPath, rules: rules.size }, 'listening');

  // SIGHUP re-reads the config file and flags: new --auth rules and certificates, without dropping connections
  process.on('SIGHUP', () => {
    try {
      const reloaded = parseOptions(SERVER_OPTIONS, argv);
      const newRules = loadRules(reloaded);
      checkRetentionConfig(reloaded);
      tls.update(readTlsFiles(reloaded));
      options = reloaded;
      rules = newRules;
      log.info({ rules: rules.size }, 'reloaded authorization rules, retention settings and certificates');
    } catch (err) {
      log.error({ err: (err as Error).message }, 'reload failed; keeping the previous rules and certificates');
    }
  });
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'shutting down');
      server.tryShutdown(() => resolve());
      // agent channels never end by themselves: close them so shutdown does not wait on them
      ctx.agents.closeAll();
      setTimeout(() => { server.forceShutdown(); resolve(); }, 10_000).unref();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

runMain('pgrepo-server', main);
