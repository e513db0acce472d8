import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { describeCallError } from '../../shared/errors';
import { validateWalFileName } from '../../shared/validate';
import { historyFileName, isSegmentName, nextSegmentName, parseSegmentName } from '../../shared/wal';
import type { AgentContext } from '../context';
import { getWal } from './get';
import { DirWatch } from './dir-watch';
import type { Spool } from './spool';
import type { CodecPool } from '../../shared/stream/codec-pool';

export interface PrefetchOptions {
  /** archive-get-queue-max in bytes; 0 = no prefetch */
  queueMax: number;
  processMax: number;
  /** stop and empty the spool when recovery has not asked for anything this long */
  idleMs: number;
  /** how often a segment (or the next timeline's history file) the archive lacked is looked for again */
  recheckMs: number;
}

const RETRY_MAX_MS = 30_000;

/** Moves a file, copying when the spool and the data directory are on different filesystems. */
async function moveFile(from: string, to: string): Promise<void> {
  try {
    await fsp.rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await fsp.copyFile(from, to);
    await fsp.rm(from, { force: true });
  }
}

/**
 * archive-get on the agent. Recovery asks for one segment at a time and replays faster than a
 * round trip per segment, so after the first request the agent fetches the following segments
 * (`processMax` at a time, up to `queueMax` bytes) into the spool, each checked against its
 * SHA-1, where the shell entry point hands them to PostgreSQL without starting Node. The end of
 * the archive is spooled too (a `.missing` mark holding this agent's pid, refreshed every
 * `recheckMs`), as is the next timeline's history file, so the end of recovery does not start
 * Node either.
 */
export class WalPrefetcher {
  private active = false;
  private timeline = 0;
  private segmentSize = 0;
  /** next segment to fetch */
  private next: string | undefined;
  /** lowest segment the archive did not have at the last look */
  private missing: string | undefined;
  private readonly inflight = new Map<string, Promise<void>>();
  /** fetches still downloading (an in-flight one may be downloaded and only waiting to be renamed into place) */
  private downloading = 0;
  /** segment files in the spool at the last look */
  private spooled = new Set<string>();
  private lastUse = 0;
  private recheckAt = 0;
  private retryAt = 0;
  private backoffMs = 1000;
  private historyProbe: Promise<void> | undefined;
  private readonly watch: DirWatch;

  constructor(private readonly ctx: AgentContext, private readonly spool: Spool, private readonly options: PrefetchOptions,
    private readonly codecs: () => CodecPool) {
    // what matters is the shell taking a file to PostgreSQL (or a segment appearing), not the
    // agent's own temp files and marks: every write into a temp file is an event
    this.watch = new DirWatch(spool.inDir, 250, () => this.tick(), (name) => !name.startsWith('.') && !/\.(pending|missing)$/.test(name));
  }

  start(): void {
    if (this.options.queueMax > 0) this.watch.start();
  }

  stop(): void {
    this.watch.stop();
  }

  /** restore_command's request (through the Node client): fetch `walName` into `dest`; false when the archive lacks it. */
  async get(walName: string, dest: string): Promise<boolean> {
    const name = validateWalFileName(walName);
    this.lastUse = Date.now();
    if (this.options.queueMax <= 0 || !isSegmentName(name)) return getWal(this.ctx, name, dest, this.codecs());
    await this.inflight.get(name);
    if (fs.existsSync(this.spool.in(name))) {
      await moveFile(this.spool.in(name), dest);
      this.spooled.delete(name);
      this.fill();
      return true;
    }
    // not prefetched: recovery starts here (or moved to another timeline or position)
    await this.restartAt(name);
    const found = await getWal(this.ctx, name, dest, this.codecs());
    if (found) {
      this.segmentSize ||= (await fsp.stat(dest)).size;
      this.next ??= nextSegmentName(name, this.segmentSize);
    } else {
      this.next = undefined;
      await this.setMissing(name);
    }
    this.fill();
    return found;
  }

  private async restartAt(name: string): Promise<void> {
    this.active = true;
    const timeline = parseSegmentName(name).timeline;
    const sameTimeline = timeline === this.timeline;
    this.timeline = timeline;
    this.next = this.segmentSize ? nextSegmentName(name, this.segmentSize) : undefined;
    this.missing = undefined;
    // whatever was fetched for another position is of no use now
    const keepFrom = this.next ?? name;
    for (const entry of await fsp.readdir(this.spool.inDir)) {
      const seg = entry.slice(0, 24);
      const keep = isSegmentName(seg) ? parseSegmentName(seg).timeline === this.timeline && seg >= keepFrom : sameTimeline;
      if (!keep && !entry.startsWith('.') && !this.inflight.has(seg)) {
        await this.spool.unmark(this.spool.in(entry));
        this.spooled.delete(seg);
      }
    }
  }

  private tick(): void {
    if (!this.active) return;
    let present: Set<string>;
    try {
      present = new Set(fs.readdirSync(this.spool.inDir).filter(isSegmentName));
    } catch {
      return;
    }
    // a file the shell moved to PostgreSQL is recovery at work
    for (const name of this.spooled) if (!present.has(name) && !this.inflight.has(name)) this.lastUse = Date.now();
    this.spooled = present;
    if (Date.now() - this.lastUse > this.options.idleMs) {
      this.deactivate();
      return;
    }
    if (this.missing && Date.now() >= this.recheckAt) this.recheck(this.missing);
    this.probeHistory();
    this.fill();
  }

  private deactivate(): void {
    this.active = false;
    this.next = undefined;
    this.missing = undefined;
    this.ctx.log.debug('archive-get prefetch idle: emptying the spool');
    for (const entry of fs.readdirSync(this.spool.inDir)) {
      if (!this.inflight.has(entry.slice(0, 24))) fs.rmSync(this.spool.in(entry), { force: true });
    }
    this.spooled.clear();
  }

  private fill(): void {
    if (!this.active || !this.segmentSize || this.missing || Date.now() < this.retryAt) return;
    const room = Math.max(1, Math.floor(this.options.queueMax / this.segmentSize));
    // one more download than process-max: while one waits on the network, the others use the cores
    while (this.next && this.downloading <= this.options.processMax && this.spooled.size + this.downloading < room) {
      const name = this.next;
      this.next = nextSegmentName(name, this.segmentSize);
      if (!this.spooled.has(name) && !this.inflight.has(name)) this.fetch(name);
    }
  }

  private fetch(name: string): void {
    const pending = this.spool.in(`${name}.pending`);
    const downloaded = this.spool.in(`.${name}.fetched`);
    // the shell waits on .pending: it must exist as soon as the fetch is decided
    this.spool.markNow(pending);
    this.downloading++;
    let counted = true;
    const downloadedNow = () => {
      if (counted) this.downloading--;
      counted = false;
    };
    const started = Date.now();
    const work = (async () => {
      try {
        const found = await getWal(this.ctx, name, downloaded, this.codecs(), false);
        downloadedNow();
        this.ctx.log.debug({ wal: name, found, ms: Date.now() - started }, 'WAL prefetch');
        if (found) {
          this.spooled.add(name);
          if (this.missing === name) this.missing = undefined;
          this.backoffMs = 1000;
          // start the next fetch (and its .pending) before this file becomes visible, so recovery
          // reaching the next segment finds it pending instead of starting Node
          this.fill();
          await fsp.rename(downloaded, this.spool.in(name));
          await this.spool.unmark(this.spool.in(`${name}.missing`));
        } else {
          await this.setMissing(name);
        }
      } catch (err) {
        this.ctx.log.warn({ wal: name, err: describeCallError(err, this.ctx.server), retryInSeconds: this.backoffMs / 1000 }, 'cannot prefetch WAL; retrying');
        if (!this.next || name < this.next) this.next = name;
        this.retryAt = Date.now() + this.backoffMs;
        this.backoffMs = Math.min(this.backoffMs * 2, RETRY_MAX_MS);
      } finally {
        downloadedNow();
        await this.spool.unmark(pending);
        await this.spool.unmark(downloaded);
        this.inflight.delete(name);
        this.fill();
      }
    })();
    this.inflight.set(name, work);
  }

  /** The end of the archive, as far as we know: only the lowest missing segment is marked and watched. */
  private async setMissing(name: string): Promise<void> {
    if (this.missing && this.missing < name) return;
    if (this.missing && this.missing !== name) await this.spool.unmark(this.spool.in(`${this.missing}.missing`));
    this.missing = name;
    this.next = name;
    this.recheckAt = Date.now() + this.options.recheckMs;
    await this.spool.mark(this.spool.in(`${name}.missing`), `${process.pid}\n`);
  }

  private recheck(name: string): void {
    if (this.inflight.has(name)) return;
    this.recheckAt = Date.now() + this.options.recheckMs;
    this.fetch(name);
    this.next = nextSegmentName(name, this.segmentSize);
  }

  /**
   * At the end of recovery PostgreSQL asks for the history files of this timeline and the next
   * (to pick a new timeline); have the answers ready in the spool.
   */
  private probeHistory(): void {
    if (this.historyProbe || !this.timeline) return;
    const probe = async (name: string) => {
      if (fs.existsSync(this.spool.in(name))) return;
      const missingMark = this.spool.in(`${name}.missing`);
      try {
        if (await getWal(this.ctx, name, this.spool.in(name), this.codecs(), false)) await this.spool.unmark(missingMark);
        else await this.spool.mark(missingMark, `${process.pid}\n`);
      } catch {
        await this.spool.unmark(missingMark);
      }
    };
    this.historyProbe = Promise.all([probe(historyFileName(this.timeline)), probe(historyFileName(this.timeline + 1))]).then(() => undefined).finally(() => {
      const again = setTimeout(() => { this.historyProbe = undefined; }, this.options.recheckMs);
      again.unref();
    });
  }
}
