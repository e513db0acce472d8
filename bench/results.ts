import fs from 'node:fs';
import path from 'node:path';

const FILE = path.join(__dirname, 'RESULTS.md');

/**
 * bench/RESULTS.md holds one section per benchmark between `<!-- bench:NAME -->` markers, so a
 * run rewrites its own section and leaves the others' (and any notes around them) alone.
 */
export function writeResultsSection(name: string, text: string): void {
  const begin = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const old = fs.existsSync(FILE) ? fs.readFileSync(FILE, 'utf8') : '';
  const block = `${begin}\n${text.trimEnd()}\n${end}\n`;
  const i = old.indexOf(begin);
  const j = old.indexOf(end);
  fs.writeFileSync(FILE, i >= 0 && j > i ? old.slice(0, i) + block + old.slice(j + end.length + 1) : `${old.trimEnd()}${old ? '\n\n' : ''}${block}`);
}
