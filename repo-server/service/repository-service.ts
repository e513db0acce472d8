import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import { PGREPO_VERSION } from '../../shared/version';
import type { RepositoryHandlers } from '../../shared/generated/pgrepo/v1/Repository';
import type { AgentMessage__Output } from '../../shared/generated/pgrepo/v1/AgentMessage';
import type { ServerMessage } from '../../shared/generated/pgrepo/v1/ServerMessage';
import type { OperationEvent } from '../../shared/generated/pgrepo/v1/OperationEvent';
import type { ServerContext } from '../context';
import { AttachedAgent } from '../agents';
import { stanzaCreate } from '../commands/stanza-create';
import { runBackup } from '../commands/backup';
import { getBackupFile, getBackupFiles, getManifest, runRestore } from '../commands/restore';
import { archiveGet, archivePush } from '../commands/archive';
import { getBackupBaseline, putBackupFile, putBundle } from '../commands/backup-session';
import { archiveDropped } from '../commands/archive-dropped';
import { info } from '../commands/info';
import { runExpire } from '../commands/expire';
import { runCheck } from '../commands/check';
import { runVerify } from '../commands/verify';
import { authorizeStanza, bidiStream, clientStream, serverStream, unary, type Caller } from './guard';

/** Writes to a server stream, waiting when the client is slow rather than buffering without bound. */
function writer<T>(call: grpc.ServerWritableStream<unknown, T>): (msg: T) => Promise<void> {
  return (msg) => new Promise((resolve, reject) => {
    if (call.cancelled) return reject(new StatusError(grpc.status.CANCELLED, 'the client went away'));
    if (call.write(msg)) resolve();
    else call.once('drain', resolve);
  });
}

async function agentChannel(ctx: ServerContext, call: grpc.ServerDuplexStream<AgentMessage__Output, ServerMessage>, caller: Caller): Promise<void> {
  const messages = call[Symbol.asyncIterator]() as AsyncIterator<AgentMessage__Output>;
  const first = await messages.next();
  const hello = first.done ? undefined : first.value.hello;
  if (!hello) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'the agent channel must open with a hello');
  const stanza = authorizeStanza(ctx, caller, hello.stanza);
  const agent = new AttachedAgent(caller.identity, stanza, hello.pg_path, call);
  ctx.agents.attach(agent);
  agent.send({ hello_ack: { identity: caller.identity, server_version: PGREPO_VERSION } });
  try {
    for (;;) {
      const { value, done } = await messages.next();
      if (done) break;
      if (value.reply) agent.deliver(value.reply);
    }
    ctx.agents.detach(agent, 'the agent closed its channel');
  } catch (err) {
    ctx.agents.detach(agent, (err as Error).message);
  }
}

/** A long operation: its events stream to repoctl; a failure ends the stream with the error. */
function operation<Req>(ctx: ServerContext, method: string, stanzaOf: (req: Req) => string,
  run: (req: Req, emit: (e: OperationEvent) => void, cancelled: () => boolean) => Promise<void>) {
  return serverStream<Req, OperationEvent>(ctx, method, ['admin'], async (call, caller) => {
    authorizeStanza(ctx, caller, stanzaOf(call.request));
    await run(call.request, (e) => { if (!call.cancelled) call.write(e); }, () => call.cancelled);
  });
}

export function repositoryHandlers(ctx: ServerContext): RepositoryHandlers {
  return {
    AgentChannel: bidiStream(ctx, 'AgentChannel', ['agent'], (call, caller) => agentChannel(ctx, call, caller)),
    PutBackupFile: clientStream(ctx, 'PutBackupFile', ['agent'], (call, caller) => putBackupFile(ctx, call, caller)),
    PutBundle: clientStream(ctx, 'PutBundle', ['agent'], (call, caller) => putBundle(ctx, call, caller)),
    GetManifest: serverStream(ctx, 'GetManifest', ['agent'], (call, caller) => getManifest(ctx, call.request, caller, writer(call))),
    GetBackupFile: serverStream(ctx, 'GetBackupFile', ['agent'], (call, caller) => getBackupFile(ctx, call.request, caller, writer<unknown>(call))),
    GetBackupFiles: serverStream(ctx, 'GetBackupFiles', ['agent'], (call, caller) => getBackupFiles(ctx, call.request, caller, writer<unknown>(call))),
    GetBackupBaseline: serverStream(ctx, 'GetBackupBaseline', ['agent'], (call, caller) => getBackupBaseline(ctx, call.request, caller, writer(call))),
    ArchivePush: clientStream(ctx, 'ArchivePush', ['agent'], (call, caller) => archivePush(ctx, call, caller).then(
      (res) => { ctx.metrics.archivePushed(caller.stanza!); return res; },
      (err) => { if (caller.stanza) ctx.metrics.archivePushFailed(caller.stanza); throw err; })),
    ArchiveGet: serverStream(ctx, 'ArchiveGet', ['agent'], (call, caller) => archiveGet(ctx, call.request, caller, writer(call))),
    ArchiveDropped: unary(ctx, 'ArchiveDropped', ['agent'], (call, caller) => archiveDropped(ctx, call.request, caller)),
    StanzaCreate: unary(ctx, 'StanzaCreate', ['admin'], async (call, caller) => stanzaCreate(ctx, authorizeStanza(ctx, caller, call.request.stanza), call.request.host)),
    Backup: operation(ctx, 'Backup', (r) => r.stanza, (req, emit, cancelled) => runBackup(ctx, req, emit, cancelled)),
    Restore: operation(ctx, 'Restore', (r) => r.stanza, (req, emit) => runRestore(ctx, req, emit)),
    Expire: operation(ctx, 'Expire', (r) => r.stanza, (req, emit) => runExpire(ctx, req, emit)),
    Check: operation(ctx, 'Check', (r) => r.stanza, (req, emit) => runCheck(ctx, req, emit)),
    Verify: operation(ctx, 'Verify', (r) => r.stanza, (req, emit, cancelled) => runVerify(ctx, req, emit, cancelled)),
    Info: unary(ctx, 'Info', ['admin', 'viewer'], async (call, caller) => {
      if (call.request.stanza) authorizeStanza(ctx, caller, call.request.stanza);
      return { stanzas: await info(ctx, call.request.stanza, caller) };
    }),
  };
}
