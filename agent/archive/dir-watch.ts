import fs from 'node:fs';

/**
 * Calls `onChange` when a directory's entries change (inotify through fs.watch) and, as a
 * fallback and heartbeat, every `pollMs`. The directory may not exist yet (a restore target
 * before the restore) or go away: the watch is re-established on the next tick.
 */
export class DirWatch {
  private watcher: fs.FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** `relevant`: which changed names matter (the watcher sees the agent's own writes too) */
  constructor(private readonly dir: string, private readonly pollMs: number, private readonly onChange: () => void,
    private readonly relevant: (name: string) => boolean = () => true) {}

  start(): void {
    this.tick();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
  }

  private tick(): void {
    if (!this.watcher) {
      try {
        this.watcher = fs.watch(this.dir, { persistent: false }, (_event, name) => {
          if (!name || this.relevant(String(name))) this.onChange();
        });
        this.watcher.on('error', () => {
          this.watcher?.close();
          this.watcher = undefined;
        });
      } catch {
        // not there yet: polling covers it
      }
    }
    this.onChange();
    this.timer = setTimeout(() => this.tick(), this.pollMs);
    this.timer.unref();
  }
}
