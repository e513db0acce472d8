import os from 'node:os';
import path from 'node:path';
import { formatHelp, parseOptions } from '../shared/config/options';
import { createLogger } from '../shared/log';
import { limitHeapGrowth, reportThreadMemory } from '../shared/thread-memory';
import { readTlsFiles } from '../shared/tls';
import { validateStanzaName } from '../shared/validate';
import { defaultCompressLevel, parseCompressType } from '../shared/stream/compress';
import { checkCompressLevel } from '../shared/stream/frame-codec';
import { UserError } from '../shared/errors';
import { repositoryClient } from './transfer/client';
import { startSocketServer } from './socket-server';
import { JobChannel } from './channel';
import { startArchiving } from './archive/service';
import { AGENT_OPTIONS, AGENT_USAGE } from './options';
import type { AgentContext } from './context';

/** The shell entry point shipped beside this program (dist/agent/pgrepo-archive), by absolute path. */
export const ARCHIVE_SH = path.join(__dirname, 'pgrepo-archive');

/**
 * The archive_command / restore_command lines for this agent: the shell entry point with this
 * agent's socket, spool and stanza (so it answers from the spool), and this Node for the slow path.
 */
function archiveCommand(op: 'push' | 'get', socketPath: string, spoolPath: string, stanza: string): string {
  const quote = (s: string) => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);
  const args = [ARCHIVE_SH, op, '--socket', socketPath, '--spool-path', spoolPath, '--stanza', stanza, '--node', process.execPath].map(quote);
  return `${args.join(' ')} ${op === 'push' ? '%p' : '%f "%p"'}`;
}

export async function runDaemon(argv: string[]): Promise<number | void> {
  const options = parseOptions(AGENT_OPTIONS, argv);
  if (options.bool('help')) {
    process.stdout.write(formatHelp(AGENT_USAGE, AGENT_OPTIONS));
    return 0;
  }
  if (options.positional.length > 0) throw new UserError(`unknown command '${options.positional[0]}'\n${AGENT_USAGE}`);
  const log = createLogger('pgrepo-agent', options.str('log-level')!);
  limitHeapGrowth();
  // at debug, each job logs where its memory went, thread by thread
  reportThreadMemory(log.isLevelEnabled('debug'));
  const server = options.requireStr('server', 'the repository server to dial, HOST:PORT');
  const stanza = validateStanzaName(options.requireStr('stanza'));
  const pgPath = path.resolve(options.requireStr('pg-path', 'the PostgreSQL data directory on this host'));
  const socketPath = path.resolve(options.str('socket')!);
  const spoolPath = path.resolve(options.str('spool-path')!);
  const processMax = options.int('process-max')!;
  if (processMax < 1) throw new UserError(`--process-max must be at least 1, got ${processMax}`);
  const tls = readTlsFiles(options);
  const walCompressType = parseCompressType(options.str('compress-type')!);
  checkCompressLevel(walCompressType, options.int('compress-level') ?? defaultCompressLevel(walCompressType));
  const ctx: AgentContext = {
    log,
    client: repositoryClient(server, tls),
    server,
    tls,
    stanza,
    pgPath,
    pg: { socketPath: options.str('pg-socket-path')!, port: options.int('pg-port')!, user: options.str('pg-user') ?? os.userInfo().username, database: options.str('pg-database')! },
    socketPath,
    walCompressType,
    walCompressLevel: options.int('compress-level') ?? defaultCompressLevel(walCompressType),
    walNetworkLevel: options.int('compress-level-network')!,
    archiveGetCommand: archiveCommand('get', socketPath, spoolPath, stanza),
    archivePushCommand: archiveCommand('push', socketPath, spoolPath, stanza),
    testBackupFileDelayMs: options.int('test-backup-file-delay-ms')!,
    testRestoreFileDelayMs: options.int('test-restore-file-delay-ms')!,
    testRestorePartMin: options.int('test-restore-part-min')!,
  };
  const archive = startArchiving(ctx, {
    spoolPath,
    async: options.bool('archive-async'),
    processMax,
    pushQueueMax: options.int('archive-push-queue-max') ?? 0,
    getQueueMax: options.int('archive-get-queue-max')!,
  });
  const socketServer = await startSocketServer(ctx, server);
  const channel = new JobChannel(ctx, server);
  channel.start();
  await archive.start();
  log.info({ server, stanza, pgPath, socket: socketPath, spool: spoolPath, archiveAsync: options.bool('archive-async') }, 'agent started');
  log.info(`archive_command = '${ctx.archivePushCommand}'`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log.info({ signal }, 'agent stopping');
      channel.stop();
      archive.stop();
      // WAL pushes and gets in flight finish first (PostgreSQL would retry them, but need not)
      const done = () => { ctx.client.close(); resolve(); };
      const cap = setTimeout(done, 20_000);
      cap.unref();
      socketServer.close(() => { clearTimeout(cap); done(); });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
