import fsp from 'node:fs/promises';
import path from 'node:path';
import { describeCallError } from '../../shared/errors';
import { validateWalFileName } from '../../shared/validate';
import { isSegmentName } from '../../shared/wal';
import type { AgentContext } from '../context';
import { pushWal } from './push';
import { DirWatch } from './dir-watch';
import { archiveStatusDir, queueBytes, readyWalFiles, walFilePath } from './ready-queue';
import type { WalThreads } from './wal-threads';
import type { DropJournal } from './dropped';
import type { Spool } from './spool';
import { requestProblem, takeShellRequests } from './shell-requests';

export interface PushOptions {
  /** archive-async: ship ready segments ahead of archive_command */
  async: boolean;
  /** the spool is usable: marks for the shell entry point, and its requests */
  marks: boolean;
  processMax: number;
  /** archive-push-queue-max in bytes; 0 = never drop */
  queueMax: number;
}

export interface PushOutcome {
  alreadyArchived: boolean;
  /** set when the segment was dropped (archive-push-queue-max): the warning for PostgreSQL's log */
  dropped?: string;
}

const RETRY_MAX_MS = 30_000;
/** a mark whose .ready PostgreSQL never showed us is removed after this long */
const STALE_MARK_MS = 60_000;
const DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024;

const mib = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MiB`;

/** Two paths name one file (device and inode), whatever the spelling or symlinks. */
async function sameFile(a: string, b: string): Promise<boolean> {
  if (a === b) return true;
  try {
    const [x, y] = await Promise.all([fsp.stat(a), fsp.stat(b)]);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return false;
  }
}

/**
 * archive-push on the agent. It pushes what archive_command asks for, through the spool (the
 * shell entry point's request file) or the Node client, and marks each segment in the spool
 * once it is durable (`out/<wal>.ok`), which is the shell's answer. With archive-async it also
 * reads ahead: it watches pg_wal/archive_status and pushes the ready segments `processMax` at a
 * time (each read, checksummed and compressed on a WAL thread of its own, all sent on one HTTP/2 connection), so the
 * shell finds the mark already there. A mark is removed once PostgreSQL has marked the segment
 * done. When the server is unreachable the read-ahead retries with back-off; nothing is lost,
 * because PostgreSQL keeps every unacknowledged segment.
 */
export class ArchivePusher {
  /** pushes under way: the file, and the outcome */
  private readonly inflight = new Map<string, { file: string; work: Promise<PushOutcome> }>();
  /** segments with a .ok mark in the spool: the file it vouches for, the drop warning ('' when pushed), when, and whether PostgreSQL showed us its .ready */
  private readonly marked = new Map<string, { file: string; message: string; at: number; seenReady: boolean }>();
  private readonly watches: DirWatch[] = [];
  private scanning = false;
  private kickQueued = false;
  private requestsWaiting = true;
  private rescan = false;
  private retryAt = 0;
  private backoffMs = 1000;
  private failing = false;
  private segmentSize = 0;
  private spoolWarned = false;

  constructor(private readonly ctx: AgentContext, private readonly options: PushOptions, private readonly spool: Spool,
    private readonly dropped: DropJournal, private readonly threads: WalThreads) {
    if (options.marks) {
      this.watches.push(new DirWatch(archiveStatusDir(ctx.pgPath), 1000, () => this.kick()));
      // in the spool only the shell's requests matter, not the agent's own marks
      this.watches.push(new DirWatch(spool.outDir, 1000, () => {
        this.requestsWaiting = true;
        this.kick();
      }, (name) => name.endsWith('.request')));
    }
  }

  start(): void {
    for (const w of this.watches) w.start();
  }

  stop(): void {
    for (const w of this.watches) w.stop();
  }

  /** archive_command's request: resolves once the segment is durable, or dropped. */
  async push(walFile: string, clientSpoolDir?: string): Promise<PushOutcome> {
    const file = path.resolve(walFile);
    const name = validateWalFileName(path.basename(file));
    this.checkClientSpool(clientSpoolDir);
    // an answer already given or under way counts only for the very same file: another file of
    // that name (a copy, another cluster's) is pushed, and the server compares the content
    const running = this.inflight.get(name);
    if (running) {
      if (await sameFile(running.file, file)) return running.work;
      await running.work.catch(() => undefined);
    }
    const mark = this.marked.get(name);
    if (mark && await sameFile(mark.file, file)) return mark.message ? { alreadyArchived: false, dropped: mark.message } : { alreadyArchived: true };
    if (this.options.queueMax > 0 && !this.options.async) {
      // sync mode drops one segment per call, as pgBackRest does, until the queue is below the limit again
      const ready = await readyWalFiles(this.ctx.pgPath);
      const bytes = queueBytes(ready, await this.learnSegmentSize(ready));
      if (bytes > this.options.queueMax) {
        const message = this.drop([name], bytes);
        await this.setMark(name, file, message);
        return { alreadyArchived: false, dropped: message };
      }
    }
    return this.ship(name, file, false);
  }

  private checkClientSpool(clientSpoolDir: string | undefined): void {
    if (this.spoolWarned || clientSpoolDir === undefined || clientSpoolDir === this.spool.dir || !this.options.marks) return;
    this.spoolWarned = true;
    this.ctx.log.warn({ clientSpool: clientSpoolDir, agentSpool: this.spool.dir },
      `archive_command looks at another spool than this agent's, so every WAL file starts Node: use archive_command = '${this.ctx.archivePushCommand}'`);
  }

  /** The shell's answer: line 1 the file it vouches for (the shell checks %p is that file), line 2 a drop warning. */
  private async setMark(name: string, file: string, message: string): Promise<void> {
    await this.spool.mark(this.spool.out(`${name}.ok`), `${file}\n${message ? `${message}\n` : ''}`);
    this.marked.set(name, { file, message, at: Date.now(), seenReady: false });
  }

  /**
   * A look at the ready queue and the spool's requests, once for all the events of one turn of
   * the event loop: PostgreSQL's rename of a .ready to .done is two events, and in a drain
   * there is one rename and one finished push per segment.
   */
  private kick(): void {
    if (this.kickQueued) return;
    this.kickQueued = true;
    setImmediate(() => {
      this.kickQueued = false;
      this.look();
    });
  }

  private look(): void {
    if (this.scanning) {
      this.rescan = true;
      return;
    }
    this.scanning = true;
    this.scan().catch((err: unknown) => this.ctx.log.warn({ err: (err as Error).message }, 'cannot read the WAL archive status')).finally(() => {
      this.scanning = false;
      if (this.rescan) {
        this.rescan = false;
        this.kick();
      }
    });
  }

  private async scan(): Promise<void> {
    // the spool is read for requests only when one was written (or on the watch's heartbeat):
    // in a drain it holds a mark per segment PostgreSQL has not taken yet. Requests go first:
    // PostgreSQL waits on them (sync mode)
    if (this.requestsWaiting) {
      this.requestsWaiting = false;
      for (const r of await takeShellRequests(this.spool)) this.answer(r.name, r.walPath);
    }
    const ready = await readyWalFiles(this.ctx.pgPath);
    const readySet = new Set(ready);
    await this.tidyMarks(readySet);
    if (!this.options.async) return;
    const unmarked = ready.filter((n) => !this.marked.has(n));
    if (this.options.queueMax > 0) {
      const bytes = queueBytes(unmarked, await this.learnSegmentSize(ready));
      if (bytes > this.options.queueMax) {
        // the whole queue goes, the oldest (which PostgreSQL waits on, maybe being retried now)
        // included, so pg_wal empties and WAL does not trickle through in spurts while the limit is hit
        const message = this.drop(unmarked, bytes);
        for (const name of unmarked) await this.setMark(name, walFilePath(this.ctx.pgPath, name), message);
        return;
      }
    }
    if (Date.now() < this.retryAt) return;
    const waiting = unmarked.filter((n) => !this.inflight.has(n));
    for (const name of waiting) {
      // two per WAL thread: while one segment travels and waits for the server's fsync, the next is packed on its thread
      if (this.inflight.size >= 2 * this.options.processMax) break;
      this.ship(name, walFilePath(this.ctx.pgPath, name), true).catch(() => undefined);
    }
  }

  /**
   * A mark has served once PostgreSQL has marked its segment done (its .ready, seen before, is
   * gone); one whose .ready we never saw (a push of a file outside pg_wal) goes after a minute.
   * An .error goes when the segment is pushed, or when the shell asks again.
   */
  private async tidyMarks(readySet: ReadonlySet<string>): Promise<void> {
    for (const [name, mark] of [...this.marked]) {
      if (readySet.has(name)) {
        mark.seenReady = true;
        continue;
      }
      if (!mark.seenReady && Date.now() - mark.at < STALE_MARK_MS) continue;
      this.marked.delete(name);
      await this.spool.unmark(this.spool.out(`${name}.ok`));
    }
  }

  /** Answers the shell entry point: `.ok` once durable (ship writes it), `.error` with the reason otherwise. */
  private answer(name: string, walPath: string): void {
    this.ctx.log.debug({ wal: name }, 'archive-push request from the shell');
    const problem = requestProblem(name, walPath);
    const work = problem ? Promise.reject(new Error(problem)) : this.push(walPath);
    work.catch(async (err: unknown) => {
      const message = describeCallError(err, this.ctx.server).replace(/\s*\n\s*/g, ' ');
      this.ctx.log.error({ wal: name, err: message }, 'archive push failed');
      await this.spool.mark(this.spool.out(`${name}.error`), `${message}\n`).catch(() => undefined);
    });
  }

  private async learnSegmentSize(ready: string[]): Promise<number> {
    if (this.segmentSize) return this.segmentSize;
    const segment = ready.find((n) => isSegmentName(n));
    if (!segment) return DEFAULT_SEGMENT_SIZE;
    try {
      this.segmentSize = (await fsp.stat(walFilePath(this.ctx.pgPath, segment))).size;
    } catch {
      return DEFAULT_SEGMENT_SIZE;
    }
    return this.segmentSize;
  }

  private drop(names: string[], bytes: number): string {
    const range = names.length === 1 ? names[0] : `${names[0]}..${names[names.length - 1]} (${names.length} files)`;
    const message = `WAL file${names.length === 1 ? '' : 's'} ${range} dropped: archive-push-queue-max ${mib(this.options.queueMax)} exceeded (${mib(bytes)} waiting in pg_wal); they are not in the repository, so point-in-time recovery across them is impossible: take a new backup once archiving works`;
    this.ctx.log.error({ wal: names, queueBytes: bytes, queueMax: this.options.queueMax }, message);
    this.dropped.add(names);
    return message;
  }

  /** `readAhead`: started by the agent itself, so a failure backs the read-ahead off (PostgreSQL's own call just fails). */
  private ship(name: string, file: string, readAhead: boolean): Promise<PushOutcome> {
    const marks = this.options.marks;
    // the shell waits on .pending: it must exist before anything else happens
    if (marks) this.spool.markNow(this.spool.out(`${name}.pending`));
    const entry = { file, work: undefined as unknown as Promise<PushOutcome> };
    entry.work = (async (): Promise<PushOutcome> => {
      try {
        const result = await pushWal(this.ctx, file, this.threads);
        // .ok before .pending goes, so the shell always sees one of them
        if (marks) {
          await this.spool.unmark(this.spool.out(`${name}.error`));
          await this.setMark(name, file, '');
        }
        this.succeeded();
        this.ctx.log.debug({ wal: name, alreadyArchived: result.already_archived }, 'WAL file archived');
        return { alreadyArchived: result.already_archived };
      } catch (err) {
        if (readAhead) this.failed(name, err);
        throw err;
      } finally {
        if (marks) await this.spool.unmark(this.spool.out(`${name}.pending`));
        if (this.inflight.get(name) === entry) this.inflight.delete(name);
        if (readAhead) this.kick();
      }
    })();
    this.inflight.set(name, entry);
    return entry.work;
  }

  private succeeded(): void {
    if (this.failing) this.ctx.log.info('archiving works again');
    this.failing = false;
    this.backoffMs = 1000;
    this.retryAt = 0;
  }

  private failed(name: string, err: unknown): void {
    const reason = describeCallError(err, this.ctx.server);
    // one warning per outage; the retries are at debug
    this.ctx.log[this.failing ? 'debug' : 'warn']({ wal: name, err: reason, retryInSeconds: this.backoffMs / 1000 }, 'cannot archive WAL ahead of PostgreSQL; retrying');
    this.failing = true;
    this.retryAt = Date.now() + this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, RETRY_MAX_MS);
  }
}
