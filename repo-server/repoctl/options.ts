import { CONFIG_OPTION, HELP_OPTION, LOG_LEVEL_OPTION, TLS_OPTIONS } from '../../shared/config/common-options';
import type { OptionSpec } from '../../shared/config/options';
import { retentionOptionSpecs } from '../expire/retention';

export const REPOCTL_USAGE = `usage: repoctl [--server HOST:PORT --tls-cert F --tls-key F --tls-ca F] COMMAND [options]

commands:
  stanza-create --stanza NAME                   record the cluster behind the stanza's agent
  backup --stanza NAME [--type full]            take a backup (waits until its WAL is archived)
  restore --stanza NAME --host AGENT [--pg-path DIR] [--set LABEL] [--tablespace-map NAME=DIR]
  info [--stanza NAME] [--output text|json]     backups and WAL archive per stanza
  expire --stanza NAME [--set LABEL] [--dry-run] [--repo-retention-* N]
                                                remove backups and WAL by retention (runs after every backup too)
  check --stanza NAME [--host AGENT]            the agent reaches PostgreSQL, the cluster is the stanza's, WAL reaches the archive
  verify --stanza NAME [--set LABEL] [--process-max N] [--output text|json]
                                                read and checksum every backup file and WAL segment; exit 1 on any problem`;

export const REPOCTL_OPTIONS: OptionSpec[] = [
  CONFIG_OPTION,
  { name: 'server', type: 'string', default: '127.0.0.1:8432', description: 'the repository server, HOST:PORT' },
  ...TLS_OPTIONS,
  { name: 'stanza', type: 'string', description: 'stanza name' },
  { name: 'type', type: 'string', default: 'full', description: 'backup type (full)' },
  { name: 'host', type: 'string', description: 'backup, check: agent to use (default: any attached primary); restore: agent that writes the restore' },
  { name: 'start-fast', type: 'bool', default: false, description: 'backup: force an immediate checkpoint instead of waiting for the next one' },
  { name: 'compress-type', type: 'string', default: 'gz', description: 'backup: gz or none' },
  { name: 'compress-level', type: 'int', description: 'backup: compression level (gz default 6)' },
  { name: 'process-max', type: 'int', default: 1, description: 'files transferred (verify: read) in parallel' },
  { name: 'archive-timeout', type: 'int', description: "backup, check: seconds to wait for WAL to be archived (server's default 60)" },
  { name: 'set', type: 'string', description: 'restore: backup label (default: latest); expire: expire this backup and what depends on it; verify: only this backup' },
  { name: 'dry-run', type: 'bool', default: false, description: 'expire: change nothing, print what would be removed' },
  ...retentionOptionSpecs(false).map((s) => ({ ...s, description: `backup, expire (this run only, over the server's setting): ${s.description}` })),
  { name: 'pg-path', type: 'string', description: "restore: directory to restore into (default: the agent's --pg-path)" },
  { name: 'tablespace-map', type: 'list', description: 'restore: NAME=DIR, restore tablespace NAME (or oid) into DIR; repeatable' },
  { name: 'output', type: 'string', default: 'text', description: 'text or json' },
  LOG_LEVEL_OPTION('warn'),
  HELP_OPTION,
];
