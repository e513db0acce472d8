import { CONFIG_OPTION, HELP_OPTION, LOG_LEVEL_OPTION, checkHostPort, tlsOptions } from '../shared/config/common-options';
import { STANZA_OPTION, type OptionSpec } from '../shared/config/options';
import type { ExampleConfig } from '../shared/config/example-config';
import { parseAuthRule } from './auth';
import { retentionOptionSpecs } from './expire/retention';

export const SERVER_USAGE = 'usage: pgrepo-server --listen HOST:PORT --repo-path DIR --tls-cert F --tls-key F --tls-ca F --auth CN=ROLE[:STANZA,...] ...';

function checkAuth(value: string): string | undefined {
  try {
    parseAuthRule(value);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export const SERVER_OPTIONS: OptionSpec[] = [
  CONFIG_OPTION,
  { name: 'listen', type: 'string', default: '127.0.0.1:8432', example: '0.0.0.0:8432', check: checkHostPort, description: 'address and port to accept agents and operators on' },
  { name: 'repo-path', type: 'string', example: '/var/lib/pgrepo', description: 'directory of the repository (created if missing)' },
  ...tlsOptions('backup.example.com'),
  {
    name: 'auth', type: 'list', check: checkAuth, example: ['db1.example.com=agent:main', 'ops=admin', 'grafana=viewer'],
    description: 'CN=ROLE[:STANZA,...]: grant a certificate identity the role agent (for stanzas), admin or viewer; repeatable. SIGHUP re-reads these rules',
  },
  { name: 'archive-timeout', type: 'int', default: 60, min: 1, description: 'seconds a backup (or check) waits for the WAL it needs to reach the archive' },
  {
    name: 'metrics-listen', type: 'string', example: '127.0.0.1:8433', check: checkHostPort,
    description: 'serve Prometheus metrics over plain HTTP at http://HOST:PORT/metrics (off when not set; keep it on a trusted network)',
  },
  ...retentionOptionSpecs(true),
  STANZA_OPTION,
  LOG_LEVEL_OPTION('info'),
  HELP_OPTION,
];

export const SERVER_EXAMPLE_CONFIG: ExampleConfig = {
  program: 'pgrepo-server',
  path: '/etc/pgrepo/pgrepo-server.conf',
  about: [
    'The repository server: agents and operators connect here over mutual TLS. Runs as its own user',
    '(pgrepo), which owns repo-path and needs nothing else. SIGHUP re-reads this file\'s auth rules and',
    'the certificates without dropping connections; other changes need a restart.',
  ],
  specs: SERVER_OPTIONS,
};
