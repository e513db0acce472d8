// pgrepo-agent archive-push / archive-get: what the shell entry point (agent/sh/pgrepo-archive.sh)
// starts when the agent's spool cannot answer PostgreSQL by itself. It only hands the request
// to the local agent over its unix socket, so it imports nothing but 'net' and 'path' to start fast.
import net from 'node:net';
import path from 'node:path';
import { DEFAULT_SOCKET, type SocketRequest, type SocketResponse } from './socket-protocol';

const USAGE = `usage: pgrepo-agent archive-push [--socket PATH] WAL_PATH        (archive_command: ... %p)
       pgrepo-agent archive-get [--socket PATH] WAL_NAME DEST_PATH  (restore_command: ... %f "%p")`;

function ask(socketPath: string, request: SocketRequest): Promise<SocketResponse> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl !== -1) {
        socket.end();
        resolve(JSON.parse(buffered.slice(0, nl)) as SocketResponse);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
        ? `the pgrepo agent is not running (no one listens on ${socketPath}); start pgrepo-agent, PostgreSQL will retry`
        : `cannot talk to the pgrepo agent on ${socketPath}: ${err.message}`;
      reject(new Error(why));
    });
    socket.on('close', () => reject(new Error(`the pgrepo agent on ${socketPath} closed the connection without an answer (see its log)`)));
  });
}

export async function archiveClient(command: string, args: string[]): Promise<number> {
  let socketPath = DEFAULT_SOCKET;
  let spoolDir: string | undefined;
  const words: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--socket') socketPath = args[++i] ?? '';
    else if (args[i].startsWith('--socket=')) socketPath = args[i].slice('--socket='.length);
    else if (args[i] === '--spool-dir') spoolDir = args[++i];
    else words.push(args[i]);
  }
  const expected = command === 'archive-push' ? 1 : 2;
  if (words.length !== expected || !socketPath) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  // %p is relative to the data directory PostgreSQL runs in; the agent needs it absolute
  const request: SocketRequest = command === 'archive-push'
    ? { op: 'push', path: path.resolve(words[0]), spoolDir }
    : { op: 'get', name: words[0], dest: path.resolve(words[1]), spoolDir };
  try {
    const response = await ask(socketPath, request);
    if (response.ok) {
      if (response.warning) process.stderr.write(`pgrepo-agent ${command}: warning: ${response.warning}\n`);
      return 0;
    }
    // exit 1 for a missing WAL file tells PostgreSQL the archive ends here
    if (!response.missing) process.stderr.write(`pgrepo-agent ${command}: error: ${response.error}\n`);
    return 1;
  } catch (err) {
    process.stderr.write(`pgrepo-agent ${command}: error: ${(err as Error).message}\n`);
    return 1;
  }
}
