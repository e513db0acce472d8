import os from 'node:os';
import { CONFIG_OPTION, HELP_OPTION, LOG_LEVEL_OPTION, TLS_OPTIONS } from '../shared/config/common-options';
import type { OptionSpec } from '../shared/config/options';
import { DEFAULT_SOCKET } from './socket-protocol';

export const AGENT_USAGE = `usage: pgrepo-agent --server HOST:PORT --stanza NAME --pg-path PGDATA --tls-cert F --tls-key F --tls-ca F [...]
       pgrepo-agent archive-push [--socket PATH] %p
       pgrepo-agent archive-get [--socket PATH] %f "%p"`;

export const AGENT_OPTIONS: OptionSpec[] = [
  CONFIG_OPTION,
  { name: 'server', type: 'string', description: 'the repository server, HOST:PORT' },
  { name: 'stanza', type: 'string', description: 'the stanza this host backs up to' },
  { name: 'pg-path', type: 'string', description: 'the PostgreSQL data directory' },
  { name: 'pg-port', type: 'int', default: 5432, description: 'PostgreSQL port' },
  { name: 'pg-socket-path', type: 'string', default: '/var/run/postgresql', description: "directory of PostgreSQL's unix socket" },
  { name: 'pg-user', type: 'string', default: os.userInfo().username, description: 'PostgreSQL user (a superuser, or one with pg_backup_start rights)' },
  { name: 'pg-database', type: 'string', default: 'postgres', description: 'database to connect to' },
  { name: 'socket', type: 'string', default: DEFAULT_SOCKET, description: 'unix socket that archive-push and archive-get use to reach this agent' },
  ...TLS_OPTIONS,
  { name: 'compress-type', type: 'string', default: 'gz', description: 'compression of WAL pushed to the repository: gz or none' },
  { name: 'compress-level', type: 'int', default: 6, description: 'compression level of WAL' },
  LOG_LEVEL_OPTION('info'),
  HELP_OPTION,
];
