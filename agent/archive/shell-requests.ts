import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Spool } from './spool';

const REQUEST = '.request';

/**
 * archive_command's requests that came through the spool rather than the Node client: the shell
 * entry point writes `out/<wal>.request` holding the absolute path of %p (one line) and waits for
 * `<wal>.ok` or `<wal>.error`. Returns them, removing each request file it read whole (a line
 * still being written is left for the next look).
 */
export async function takeShellRequests(spool: Spool): Promise<{ name: string; walPath: string }[]> {
  const requests: { name: string; walPath: string }[] = [];
  for (const entry of await fsp.readdir(spool.outDir)) {
    if (!entry.endsWith(REQUEST)) continue;
    const file = spool.out(entry);
    const text = await fsp.readFile(file, 'utf8').catch(() => '');
    if (!text.endsWith('\n')) continue;
    await spool.unmark(file);
    requests.push({ name: entry.slice(0, -REQUEST.length), walPath: text.trim() });
  }
  return requests;
}

/** What is wrong with a request, if anything: it must name an absolute path whose file name is the WAL file's. */
export function requestProblem(name: string, walPath: string): string | undefined {
  if (!path.isAbsolute(walPath) || path.basename(walPath) !== name) {
    return `the request for ${name} names '${walPath}', not an absolute path to that file`;
  }
  return undefined;
}
