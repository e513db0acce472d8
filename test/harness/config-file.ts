import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Writes `text` to a new config file (NAME in a fresh temp dir) and returns its path. */
export function configFile(text: string, name = 'pgrepo.conf'): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pgrepo-conf-')), name);
  fs.writeFileSync(file, text);
  return file;
}
