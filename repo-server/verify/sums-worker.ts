/**
 * A verify thread: reads stored files and sums them (stored-sums.ts), one batch per message.
 * While idle it may be lent to another thread's large file, decoding that file's frames. Also
 * loads manifests (manifest-rows.ts).
 */
import { type MessagePort, parentPort } from 'node:worker_threads';
import { transferable } from '../../shared/stream/codec-pool';
import { decodeFrame } from '../../shared/stream/frame-codec';
import { loadManifestRows } from './manifest-rows';
import { storedSums, type Offload, type StoredSums } from './stored-sums';
import type { FrameReply, FrameRequest, ToWorker, FromWorker } from './sums-protocol';

const scratch = Buffer.allocUnsafeSlow(4 * 1024 * 1024);

/** The helpers lent to the file being read now; undefined between files. */
let helpers: Helpers | undefined;

/** Frames go to whichever lent thread has room; each holds at most two. */
class Helpers implements Offload {
  private readonly ports: Array<{ port: MessagePort; busy: number }> = [];
  private readonly waiting = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
  private nextId = 1;

  add(port: MessagePort): void {
    const entry = { port, busy: 0 };
    port.on('message', (reply: FrameReply) => {
      entry.busy--;
      const w = this.waiting.get(reply.id)!;
      this.waiting.delete(reply.id);
      if (reply.data) w.resolve(reply.data);
      else w.reject(Object.assign(new Error(reply.error), { code: 'CORRUPT' }));
    });
    this.ports.push(entry);
  }

  ready(): boolean {
    return this.ports.some((p) => p.busy < 2);
  }

  decode(type: string, frame: Buffer): Promise<Uint8Array> {
    const entry = this.ports.reduce((a, b) => (b.busy < a.busy ? b : a));
    entry.busy++;
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      const req: FrameRequest = { id, type, frame };
      entry.port.postMessage(req, transferable(frame));
    });
  }

  /** The file is done: the lent threads go back (closing the port tells them). */
  release(): void {
    for (const p of this.ports) p.port.close();
    for (const w of this.waiting.values()) w.reject(new Error('the file was finished without this frame'));
  }
}

/** Lent to another thread: decodes the frames it sends until it closes the port. */
function assist(port: MessagePort): void {
  port.on('message', (req: FrameRequest) => {
    let reply: FrameReply;
    try {
      const data = decodeFrame(req.type, Buffer.from(req.frame.buffer, req.frame.byteOffset, req.frame.byteLength));
      reply = { id: req.id, data };
    } catch (err) {
      reply = { id: req.id, error: (err as Error).message };
    }
    port.postMessage(reply, reply.data ? transferable(reply.data) : []);
  });
  port.once('close', () => post({ kind: 'assisted' }));
}

function post(m: FromWorker, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(m, transfer);
}

parentPort!.on('message', (m: ToWorker) => {
  if (m.kind === 'manifest') {
    try {
      post({ kind: 'manifest', ...loadManifestRows(m.file, m.key, (rows) => post({ kind: 'manifest-rows', rows })) });
    } catch (err) {
      post({ kind: 'manifest', problems: [], loaded: false, error: (err as Error).message });
    }
  } else if (m.kind === 'assist') {
    assist(m.port);
  } else if (m.kind === 'help') {
    if (helpers) helpers.add(m.port);
    else m.port.close(); // the file it was meant for is already done
  } else {
    void (async () => {
      const sums: StoredSums[] = [];
      for (const req of m.files) {
        // only a single large file is worth helping with
        helpers = m.files.length === 1 ? new Helpers() : undefined;
        try {
          sums.push(await storedSums(req, scratch, helpers));
        } finally {
          helpers?.release();
          helpers = undefined;
        }
      }
      post({ kind: 'sums', id: m.id, sums });
    })();
  }
});
