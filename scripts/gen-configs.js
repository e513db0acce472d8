// Writes deploy/*.conf, the commented example config of each program, from the built option
// tables (run after npm run build). test/unit/example-configs.test.ts fails when they differ.
const fs = require('node:fs');
const path = require('node:path');
const dist = path.join(__dirname, '..', 'dist');
const { exampleConfig } = require(path.join(dist, 'shared/config/example-config.js'));
const examples = {
  'pgrepo-server.conf': require(path.join(dist, 'repo-server/options.js')).SERVER_EXAMPLE_CONFIG,
  'pgrepo-agent.conf': require(path.join(dist, 'agent/options.js')).AGENT_EXAMPLE_CONFIG,
  'repoctl.conf': require(path.join(dist, 'repo-server/repoctl/options.js')).REPOCTL_EXAMPLE_CONFIG,
};
for (const [file, example] of Object.entries(examples)) {
  const target = path.join(__dirname, '..', 'deploy', file);
  fs.writeFileSync(target, exampleConfig(example));
  console.log(`wrote ${path.relative(process.cwd(), target)}`);
}
