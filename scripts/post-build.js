// Marks the three entry points executable (tsc does not), so `npm install -g .` gives runnable bins.
const fs = require('node:fs');
const path = require('node:path');
const pkg = require('../package.json');
for (const bin of Object.values(pkg.bin)) {
  const file = path.join(__dirname, '..', bin);
  fs.chmodSync(file, 0o755);
}
