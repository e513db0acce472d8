import { CONFIG_OPTION, HELP_OPTION, LOG_LEVEL_OPTION, checkHostPort, tlsOptions } from '../shared/config/common-options';
import { COMPRESS_TYPES, DEFAULT_COMPRESS_TYPE } from '../shared/stream/compress';
import type { OptionSpec } from '../shared/config/options';
import type { ExampleConfig } from '../shared/config/example-config';
import { DEFAULT_SOCKET } from './socket-protocol';

export const AGENT_USAGE = `usage: pgrepo-agent --server HOST:PORT --stanza NAME --pg-path PGDATA --tls-cert F --tls-key F --tls-ca F [...]
       pgrepo-archive push [--config AGENT_CONF] %p             (archive_command)
       pgrepo-archive get [--config AGENT_CONF] %f "%p"         (restore_command)`;

export const AGENT_OPTIONS: OptionSpec[] = [
  CONFIG_OPTION,
  { name: 'server', type: 'string', example: 'backup.example.com:8432', check: checkHostPort, description: 'the repository server, HOST:PORT' },
  { name: 'stanza', type: 'string', example: 'main', description: 'the stanza this host backs up to' },
  { name: 'pg-path', type: 'string', example: '/var/lib/postgresql/15/main', description: 'the PostgreSQL data directory' },
  { name: 'pg-port', type: 'int', default: 5432, min: 1, max: 65535, description: 'PostgreSQL port' },
  { name: 'pg-socket-path', type: 'string', default: '/var/run/postgresql', description: "directory of PostgreSQL's unix socket" },
  { name: 'pg-user', type: 'string', defaultText: 'the OS user the agent runs as', description: 'PostgreSQL user (a superuser, or one with pg_backup_start rights)' },
  { name: 'pg-database', type: 'string', default: 'postgres', description: 'database to connect to' },
  { name: 'socket', type: 'string', default: DEFAULT_SOCKET, description: 'unix socket that archive-push and archive-get use to reach this agent' },
  ...tlsOptions('db1.example.com'),
  { name: 'compress-type', type: 'string', default: DEFAULT_COMPRESS_TYPE, choices: COMPRESS_TYPES, description: 'compression of WAL pushed to the repository' },
  { name: 'compress-level', type: 'int', min: 0, defaultText: 'zst 3, lz4 1, gz 6', description: 'compression level of WAL' },
  { name: 'compress-level-network', type: 'int', default: 1, min: 0, max: 12, description: 'with compress-type none: WAL travels to the server lz4-compressed at this level and is stored uncompressed (0 = send it as stored)' },
  { name: 'test-backup-file-delay-ms', type: 'int', default: 0, min: 0, flagOnly: true, description: 'FOR TESTS ONLY: pause this long after each file a backup sends, so a test can kill a backup half way; never set it in production' },
  { name: 'test-restore-file-delay-ms', type: 'int', default: 0, min: 0, flagOnly: true, description: 'FOR TESTS ONLY: pause this long after each file a restore writes, so a test can act during a restore; never set it in production' },
  { name: 'test-restore-part-min', type: 'int', default: 0, min: 0, flagOnly: true, description: 'FOR TESTS ONLY: restore a file in parts on several workers from this many bytes (0: the built-in 64 MiB), so a test can split a small file; never set it in production' },
  { name: 'archive-async', type: 'bool', default: false, description: 'ship WAL ahead of archive_command: watch pg_wal/archive_status and push ready segments in parallel, so archive-push answers from the spool' },
  { name: 'process-max', type: 'int', default: 1, min: 1, description: 'WAL files pushed (archive-async) or prefetched (archive-get) at a time' },
  { name: 'spool-path', type: 'string', default: '/var/spool/pgrepo', description: 'status of archive-push (marks, never copies of WAL) and the archive-get prefetch queue' },
  { name: 'archive-push-queue-max', type: 'size', description: 'when more WAL than this waits in pg_wal, report it archived and drop it (saves the disk; PITR across the gap is impossible)' },
  { name: 'archive-get-queue-max', type: 'size', default: 128 * 1024 * 1024, description: 'WAL prefetched into the spool ahead of recovery (0 = no prefetch)' },
  LOG_LEVEL_OPTION('info'),
  HELP_OPTION,
];

export const AGENT_EXAMPLE_CONFIG: ExampleConfig = {
  program: 'pgrepo-agent',
  path: '/etc/pgrepo/pgrepo-agent.conf',
  about: [
    'The agent on a PostgreSQL host: runs as the PostgreSQL OS user, dials the repository server and',
    'serves archive_command / restore_command on a unix socket. Nothing here listens on the network.',
    "postgresql.conf: archive_command = 'pgrepo-archive push --config /etc/pgrepo/pgrepo-agent.conf %p'",
    '(pgrepo-archive answers from the spool without starting Node once the agent has the segment: archive-async).',
  ],
  specs: AGENT_OPTIONS,
};
