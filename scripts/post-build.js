// Marks the entry points executable (tsc does not), so `npm install -g .` gives runnable bins, after
// putting the shell entry point (archive_command/restore_command) beside the Node client it starts.
const fs = require('node:fs');
const path = require('node:path');
const pkg = require('../package.json');
fs.copyFileSync(path.join(__dirname, '..', 'agent', 'sh', 'pgrepo-archive.sh'), path.join(__dirname, '..', 'dist', 'agent', 'pgrepo-archive'));
for (const bin of Object.values(pkg.bin)) {
  const file = path.join(__dirname, '..', bin);
  fs.chmodSync(file, 0o755);
}
