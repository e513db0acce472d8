import type { Progress__Output } from '../../shared/generated/pgrepo/v1/Progress';
import { formatBytes, formatDuration } from './units';

/**
 * Bytes done of total, rate and ETA on stderr: one line redrawn in place on a terminal,
 * a plain line every few seconds otherwise (logs, CI), nothing with --output json.
 */
export class ProgressDisplay {
  private readonly started = Date.now();
  private lastPlain = 0;
  private drawn = false;

  constructor(private readonly what: string, private readonly enabled: boolean, private readonly tty = process.stderr.isTTY === true) {}

  update(p: Progress__Output): void {
    if (!this.enabled) return;
    const elapsed = (Date.now() - this.started) / 1000;
    const rate = elapsed > 0 ? p.bytes_done / elapsed : 0;
    const pct = p.bytes_total > 0 ? Math.floor((p.bytes_done / p.bytes_total) * 100) : 100;
    // the first second's rate says nothing about the rest
    const eta = rate > 0 && elapsed >= 2 ? (p.bytes_total - p.bytes_done) / rate : Infinity;
    const line = `${this.what}: ${pct}% ${formatBytes(p.bytes_done)}/${formatBytes(p.bytes_total)}, ${p.files_done}/${p.files_total} files, ${formatBytes(rate)}/s, ETA ${formatDuration(eta)}`;
    if (this.tty) {
      process.stderr.write(`\r\x1b[K${line}`);
      this.drawn = true;
    } else if (Date.now() - this.lastPlain >= 5000 || p.bytes_done === p.bytes_total) {
      this.lastPlain = Date.now();
      process.stderr.write(`${line}\n`);
    }
  }

  message(text: string): void {
    if (!this.enabled) return;
    this.finish();
    process.stderr.write(`${text}\n`);
  }

  finish(): void {
    if (this.drawn) process.stderr.write('\n');
    this.drawn = false;
  }
}
