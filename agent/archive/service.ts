import { CodecPool } from '../../shared/stream/codec-pool';
import { WalThreads } from './wal-threads';
import type { AgentContext } from '../context';
import { ArchivePusher } from './pusher';
import { WalPrefetcher } from './prefetch';
import { DropJournal } from './dropped';
import { Spool } from './spool';
import { wireCompression } from './push';

export interface ArchivingOptions {
  spoolPath: string;
  async: boolean;
  processMax: number;
  /** bytes; 0 = never drop */
  pushQueueMax: number;
  /** bytes; 0 = no prefetch */
  getQueueMax: number;
}

/** Opens the spool and wires archive-push and archive-get into the agent's context. */
export function startArchiving(ctx: AgentContext, o: ArchivingOptions): { start(): Promise<void>; stop(): void } {
  const spool = new Spool(o.spoolPath, ctx.stanza);
  let prefetchBytes = o.getQueueMax;
  let marks = true;
  try {
    spool.open();
  } catch (err) {
    // archive-async cannot work without it; plain archive-push and archive-get can
    if (o.async) throw err;
    ctx.log.warn({ err: (err as Error).message }, 'no spool: archive-get prefetch is off and every archive_command starts Node; set --spool-path to a directory this user may write');
    prefetchBytes = 0;
    marks = false;
  }
  const dropped = new DropJournal(ctx, spool.dir, o.pushQueueMax);
  // WAL files are packed for archive-push (read, checksummed, compressed) a whole file per task on
  // process-max threads, and decompressed for archive-get on process-max codec threads, each
  // started on first use (a primary never restores, a restore target never pushes; idle threads keep nothing alive)
  const threads = new WalThreads(o.processMax);
  let pool: CodecPool | undefined;
  const codecs = () => (pool ??= new CodecPool(o.processMax));
  const pusher = new ArchivePusher(ctx, { async: o.async, marks, processMax: o.processMax, queueMax: o.pushQueueMax }, spool, dropped, threads);
  const prefetcher = new WalPrefetcher(ctx, spool, { queueMax: prefetchBytes, processMax: o.processMax, idleMs: 60_000, recheckMs: 1000 }, codecs);
  ctx.archive = { pusher, prefetcher };
  return {
    async start() {
      // a primary that archives ahead pushes at once: its WAL threads are made ready first
      if (o.async) {
        const wire = wireCompression(ctx);
        await threads.warm(wire?.type ?? ctx.walCompressType, wire?.level ?? ctx.walCompressLevel);
      }
      dropped.start();
      pusher.start();
      prefetcher.start();
    },
    stop() {
      pusher.stop();
      prefetcher.stop();
      dropped.stop();
      spool.close();
      void pool?.close();
      void threads.close();
    },
  };
}
