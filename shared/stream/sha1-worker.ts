import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { Sha1Reply, Sha1Request } from './sha1-thread';

/**
 * A thread that takes the SHA-1 of streams given to it piece by piece, each stream's pieces in
 * the order they arrive (a port delivers in order). Pieces go back when `back` asks for it (the
 * sender reuses their memory), else are only acknowledged.
 */
const hashes = new Map<number, Hash>();
parentPort!.on('message', (m: Sha1Request) => {
  let reply: Sha1Reply;
  if (m.op === 'update') {
    let hash = hashes.get(m.id);
    if (!hash) hashes.set(m.id, (hash = createHash('sha1')));
    hash.update(m.data);
    reply = { op: 'updated', id: m.id, data: m.back ? m.data : undefined };
  } else {
    const hash = hashes.get(m.id) ?? createHash('sha1');
    hashes.delete(m.id);
    reply = { op: 'digest', id: m.id, sha1: m.op === 'digest' ? hash.digest('hex') : '' };
  }
  parentPort!.postMessage(reply, reply.op === 'updated' && reply.data && reply.data.buffer instanceof ArrayBuffer ? [reply.data.buffer] : []);
});
