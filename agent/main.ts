#!/usr/bin/env node
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
