import fs from 'node:fs';
import path from 'node:path';
import { describeCallError } from '../../shared/errors';
import type { DroppedWal } from '../../shared/generated/pgrepo/v1/DroppedWal';
import type { AgentContext } from '../context';

const RETRY_MAX_MS = 60_000;

/**
 * Segments dropped by archive-push-queue-max, kept in the spool until the repository server has
 * recorded them (it may be the very server that was unreachable when they were dropped), so
 * that info can name the gap. One line per segment: `<name> <unix seconds>`.
 */
export class DropJournal {
  private readonly file: string;
  private entries: DroppedWal[] = [];
  private sending = false;
  private retryMs = 1000;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly ctx: AgentContext, spoolDir: string, private readonly queueMax: number) {
    this.file = path.join(spoolDir, 'dropped');
    try {
      for (const line of fs.readFileSync(this.file, 'utf8').split('\n')) {
        const [name, at] = line.trim().split(/\s+/);
        if (name) this.entries.push({ name, dropped_at: Number(at) || 0 });
      }
    } catch {
      // nothing left to report
    }
  }

  start(): void {
    if (this.entries.length) this.report();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  add(names: string[]): void {
    const now = Math.floor(Date.now() / 1000);
    this.entries.push(...names.map((name) => ({ name, dropped_at: now })));
    this.save();
    this.report();
  }

  private save(): void {
    const tmp = `${this.file}.tmp`;
    try {
      fs.writeFileSync(tmp, this.entries.map((e) => `${e.name} ${e.dropped_at}\n`).join(''));
      fs.renameSync(tmp, this.file);
    } catch (err) {
      // without a spool the record lives until it is reported, or the agent stops
      this.ctx.log.warn({ file: this.file, err: (err as Error).message }, 'cannot keep the list of dropped WAL in the spool');
    }
  }

  private report(): void {
    if (this.sending || this.entries.length === 0) return;
    clearTimeout(this.timer);
    this.sending = true;
    const batch = [...this.entries];
    this.ctx.client.ArchiveDropped({ stanza: this.ctx.stanza, wal: batch, queue_max: this.queueMax }, (err) => {
      this.sending = false;
      if (err) {
        this.ctx.log.debug({ err: describeCallError(err, this.ctx.server), retryInSeconds: this.retryMs / 1000 }, 'cannot report dropped WAL yet');
        this.timer = setTimeout(() => this.report(), this.retryMs);
        this.timer.unref();
        this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
        return;
      }
      this.retryMs = 1000;
      this.entries = this.entries.slice(batch.length);
      this.save();
      this.ctx.log.info({ count: batch.length }, 'dropped WAL recorded in the repository');
      this.report();
    });
  }
}
