#!/usr/bin/env -S node --initial-old-space-size=64
// --initial-old-space-size: V8 counts the Buffers of the data path (socket reads, HTTP/2 frames,
// gRPC messages, compressed frames: ~3 per MiB moved, freed only by a collection) against the
// old generation's limit, which on a 12 MB heap sits a few MiB above it: at 150 MiB/s that was a
// full mark-compact every 40 ms, 300 in a 1.5 GB backup, a third of the CPU the backup cost. A
// 64 MiB floor makes it ~30. The flag must be on node's command line (the heap is sized at
// start), hence `env -S`; started as `node main.js`, pass it too (test/harness does).
// One binary, two very different programs: archive-push/archive-get start once per WAL file
// and must not pay for loading gRPC and pg, so they are dispatched before anything else loads.
const command = process.argv[2];
if (command === 'archive-push' || command === 'archive-get') {
  const { archiveClient } = require('./archive-client') as typeof import('./archive-client');
  archiveClient(command, process.argv.slice(3)).then((code) => process.exit(code));
} else {
  (require('../shared/io-threads') as typeof import('../shared/io-threads')).raiseIoThreads();
  const { runMain } = require('../shared/cli/run-main') as typeof import('../shared/cli/run-main');
  const { runDaemon } = require('./daemon') as typeof import('./daemon');
  runMain('pgrepo-agent', () => runDaemon(process.argv.slice(2)));
}
