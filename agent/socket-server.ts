import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { UserError, describeCallError } from '../shared/errors';
import type { AgentContext } from './context';
import type { SocketRequest, SocketResponse } from './socket-protocol';

async function handle(ctx: AgentContext, request: SocketRequest, server: string): Promise<SocketResponse> {
  try {
    const archive = ctx.archive;
    if (!archive) throw new Error('the agent is still starting');
    if (request.op === 'push') {
      // logged at debug, so a test or an operator can count the calls the shell could not answer
      ctx.log.debug({ wal: path.basename(request.path) }, 'archive-push request from the client');
      const result = await archive.pusher.push(request.path, request.spoolDir);
      return { ok: true, note: result.alreadyArchived ? 'already archived' : undefined, warning: result.dropped };
    }
    if (request.op === 'get') {
      ctx.log.debug({ wal: request.name }, 'archive-get request from the client');
      const found = await archive.prefetcher.get(request.name, request.dest);
      ctx.log.debug({ wal: request.name, found }, found ? 'WAL file restored' : 'WAL file not in the archive');
      return found ? { ok: true } : { ok: false, missing: true, error: `${request.name} is not in the archive` };
    }
    return { ok: false, error: `unknown request '${(request as { op: string }).op}'` };
  } catch (err) {
    const message = describeCallError(err, server);
    ctx.log.error({ request, err: message }, `archive ${request.op} failed`);
    return { ok: false, error: message };
  }
}

/** If a socket file is left from a crashed agent, remove it; if another agent answers on it, refuse to start. */
async function clearStaleSocket(socketPath: string): Promise<void> {
  if (!fs.existsSync(socketPath)) return;
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.createConnection(socketPath);
    probe.on('connect', () => { probe.destroy(); resolve(true); });
    probe.on('error', () => resolve(false));
  });
  if (alive) throw new UserError(`another agent is already listening on ${socketPath}: stop it or use another --socket`);
  fs.rmSync(socketPath, { force: true });
}

/** archive_command and restore_command reach the agent here; only the agent's own OS user may connect. */
export async function startSocketServer(ctx: AgentContext, server: string): Promise<net.Server> {
  await clearStaleSocket(ctx.socketPath);
  fs.mkdirSync(path.dirname(ctx.socketPath), { recursive: true, mode: 0o750 });
  const srv = net.createServer((conn) => {
    let buffered = '';
    conn.setEncoding('utf8');
    conn.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl === -1) return;
      let request: SocketRequest;
      try {
        request = JSON.parse(buffered.slice(0, nl)) as SocketRequest;
      } catch {
        conn.end(`${JSON.stringify({ ok: false, error: 'malformed request' })}\n`);
        return;
      }
      handle(ctx, request, server).then((response) => conn.end(`${JSON.stringify(response)}\n`));
    });
    conn.on('error', () => undefined);
  });
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      srv.once('error', (err) => reject(new UserError(`cannot listen on unix socket ${ctx.socketPath}: ${err.message}`)));
      srv.listen(ctx.socketPath, resolve);
    });
  } finally {
    process.umask(oldMask);
  }
  return srv;
}
