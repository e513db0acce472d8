import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../shared/errors';
import { pidAlive } from '../../shared/pid';

/**
 * The agent's spool for one stanza, pgBackRest's layout, read by the shell entry point
 * (agent/sh/pgrepo-archive.sh) without starting Node:
 *
 *   <spool-path>/archive/<stanza>/agent.pid        the agent that owns this spool
 *   <spool-path>/archive/<stanza>/dropped          segments dropped by archive-push-queue-max, not yet reported
 *   .../out/<wal>.request                          the shell asks for it (holds the absolute path of %p)
 *   .../out/<wal>.pending                          being shipped now
 *   .../out/<wal>.ok                               durable in the repository (or dropped: then it holds the warning)
 *   .../out/<wal>.error                            the push failed: why
 *   .../in/<wal>                                   prefetched for recovery, SHA-1 checked
 *   .../in/<wal>.pending                           being fetched now
 *   .../in/<wal>.missing                           not in the archive at the last check (holds the agent's pid)
 *
 * Pushed WAL is never copied here: the marks are status only.
 */
export class Spool {
  readonly dir: string;
  readonly outDir: string;
  readonly inDir: string;

  constructor(spoolPath: string, stanza: string) {
    this.dir = path.join(spoolPath, 'archive', stanza);
    this.outDir = path.join(this.dir, 'out');
    this.inDir = path.join(this.dir, 'in');
  }

  /** Creates the directories and takes the spool for this process; refuses when another live agent holds it. */
  open(): void {
    try {
      for (const d of [this.outDir, this.inDir]) fs.mkdirSync(d, { recursive: true, mode: 0o750 });
    } catch (err) {
      throw new UserError(`cannot create the spool directory ${this.dir}: ${(err as Error).message} (set --spool-path to a directory this user may write)`);
    }
    const pidFile = path.join(this.dir, 'agent.pid');
    const other = Number(readFirstLine(pidFile));
    if (Number.isInteger(other) && other > 0 && other !== process.pid && pidAlive(other)) {
      throw new UserError(`another agent (pid ${other}) uses the spool ${this.dir}: stop it, or give this one its own --spool-path`);
    }
    fs.writeFileSync(pidFile, `${process.pid}\n`);
    // marks from an earlier run prove nothing about the cluster running now
    for (const d of [this.outDir, this.inDir]) {
      for (const name of fs.readdirSync(d)) fs.rmSync(path.join(d, name), { force: true, recursive: true });
    }
  }

  close(): void {
    try {
      if (readFirstLine(path.join(this.dir, 'agent.pid')) === String(process.pid)) fs.rmSync(path.join(this.dir, 'agent.pid'), { force: true });
    } catch {
      // a spool that could not be opened has nothing to clear
    }
  }

  out(name: string): string {
    return path.join(this.outDir, name);
  }

  in(name: string): string {
    return path.join(this.inDir, name);
  }

  /** Writes a mark under its final name in one step (temp + rename), so the shell never reads half of one. */
  async mark(file: string, content = ''): Promise<void> {
    if (content === '') {
      await fsp.writeFile(file, '');
      return;
    }
    const tmp = `${path.dirname(file)}/.${path.basename(file)}.tmp`;
    await fsp.writeFile(tmp, content);
    await fsp.rename(tmp, file);
  }

  /** An empty mark, written before the caller goes on, so it is visible before anything that follows it. */
  markNow(file: string): void {
    fs.writeFileSync(file, '');
  }

  async unmark(file: string): Promise<void> {
    await fsp.rm(file, { force: true });
  }
}

function readFirstLine(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n')[0].trim();
  } catch {
    return '';
  }
}
