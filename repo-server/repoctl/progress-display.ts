import { SingleBar } from 'cli-progress';
import type { Progress__Output } from '../../shared/generated/pgrepo/v1/Progress';
import { formatBytes, formatDuration } from './units';

export type ProgressMode = 'bar' | 'lines' | 'json';

/** A bar on a terminal, a plain line every few seconds in logs and CI, JSON lines for scripts. */
export function progressMode(json: boolean, tty = process.stderr.isTTY === true): ProgressMode {
  return json ? 'json' : tty ? 'bar' : 'lines';
}

export interface ProgressFigures {
  bytesDone: number;
  bytesTotal: number;
  filesDone: number;
  filesTotal: number;
  percent: number;
  /** bytes per second since the work started */
  rate: number;
  /** seconds left at that rate; null until it means something */
  etaSeconds: number | null;
}

/** Rate and ETA from the bytes done since `started` (ms). */
export function progressFigures(p: Progress__Output, started: number, now = Date.now()): ProgressFigures {
  const elapsed = (now - started) / 1000;
  const rate = elapsed > 0 ? p.bytes_done / elapsed : 0;
  // the first seconds' rate says nothing about the rest
  const eta = rate > 0 && elapsed >= 2 ? (p.bytes_total - p.bytes_done) / rate : null;
  return {
    bytesDone: p.bytes_done, bytesTotal: p.bytes_total, filesDone: p.files_done, filesTotal: p.files_total,
    percent: p.bytes_total > 0 ? Math.floor((p.bytes_done / p.bytes_total) * 100) : 100,
    rate: Math.round(rate), etaSeconds: eta === null ? null : Math.round(eta),
  };
}

export function progressLine(what: string, f: ProgressFigures): string {
  return `${what}: ${f.percent}% ${formatBytes(f.bytesDone)}/${formatBytes(f.bytesTotal)}, ${f.filesDone}/${f.filesTotal} files, ${formatBytes(f.rate)}/s, ETA ${formatDuration(f.etaSeconds ?? Infinity)}`;
}

/**
 * Progress of a long operation (backup, restore, verify) on stderr, so stdout stays the
 * command's result: bytes done of total, files, rate and ETA.
 */
export class ProgressDisplay {
  private readonly started = Date.now();
  private lastLine = 0;
  private bar: SingleBar | undefined;

  constructor(private readonly what: string, private readonly mode: ProgressMode, private readonly out: NodeJS.WritableStream = process.stderr) {}

  update(p: Progress__Output): void {
    const f = progressFigures(p, this.started);
    const now = Date.now();
    if (this.mode === 'bar') {
      const payload = { done: formatBytes(f.bytesDone), size: formatBytes(f.bytesTotal), files: `${f.filesDone}/${f.filesTotal}`, rate: formatBytes(f.rate), eta: formatDuration(f.etaSeconds ?? Infinity) };
      if (!this.bar) {
        this.bar = new SingleBar({
          stream: this.out, hideCursor: true, clearOnComplete: false, barsize: 30, noTTYOutput: true,
          format: `${this.what} {bar} {percentage}% | {done}/{size} | {files} files | {rate}/s | ETA {eta}`,
        });
        this.bar.start(Math.max(1, f.bytesTotal), f.bytesDone, payload);
      } else {
        this.bar.setTotal(Math.max(1, f.bytesTotal));
        this.bar.update(f.bytesDone, payload);
      }
    } else if (this.mode === 'json') {
      if (now - this.lastLine >= 1000 || f.bytesDone === f.bytesTotal) {
        this.lastLine = now;
        this.out.write(`${JSON.stringify({ event: 'progress', operation: this.what, ...f })}\n`);
      }
    } else if (now - this.lastLine >= 5000 || f.bytesDone === f.bytesTotal) {
      this.lastLine = now;
      this.out.write(`${progressLine(this.what, f)}\n`);
    }
  }

  message(text: string): void {
    if (this.mode === 'json') {
      this.out.write(`${JSON.stringify({ event: 'message', operation: this.what, message: text })}\n`);
      return;
    }
    this.finish();
    this.out.write(`${text}\n`);
  }

  finish(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}
