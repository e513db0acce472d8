import { CONFIG_OPTION, HELP_OPTION, LOG_LEVEL_OPTION, checkHostPort, tlsOptions } from '../../shared/config/common-options';
import { COMPRESS_TYPES } from '../../shared/stream/compress';
import type { OptionSpec } from '../../shared/config/options';
import type { ExampleConfig } from '../../shared/config/example-config';
import { retentionOptionSpecs } from '../expire/retention';

export const REPOCTL_USAGE = `usage: repoctl [--server HOST:PORT --tls-cert F --tls-key F --tls-ca F] COMMAND [options]

commands:
  stanza-create --stanza NAME [--host AGENT]    record the cluster behind the stanza's agent
  backup --stanza NAME [--host AGENT] [--type full|diff|incr] [--delta] [--no-resume]
                                                take a backup (waits until its WAL is archived)
  restore --stanza NAME --host AGENT [--pg-path DIR] [--set LABEL] [--delta [--force]]
          [--type default|immediate|time|name|xid|lsn|standby|preserve|none] [--target X]
          [--target-exclusive] [--target-action pause|promote|shutdown] [--target-timeline current|latest|N]
          [--tablespace-map NAME=DIR]... [--tablespace-map-all DIR] [--db-include NAME]...
  info [--stanza NAME] [--output text|json]     without --stanza: the fleet, a line per stanza
  expire --stanza NAME [--set LABEL] [--dry-run] [--repo-retention-* N]
                                                remove backups and WAL by retention (runs after every backup too)
  check --stanza NAME [--host AGENT]            the agent reaches PostgreSQL, the cluster is the stanza's, WAL reaches the archive
  verify --stanza NAME [--set LABEL] [--process-max N] [--output text|json]
                                                read and checksum every backup file and WAL segment; exit 1 on any problem
  cert init [--cert-dir DIR]                    make the installation's CA (no server needed)
  cert issue server|agent|operator CN [CN...] [--san NAME] [--days N]   certificates signed by that CA`;

export const REPOCTL_OPTIONS: OptionSpec[] = [
  CONFIG_OPTION,
  { name: 'server', type: 'string', default: '127.0.0.1:8432', example: 'backup.example.com:8432', check: checkHostPort, description: 'the repository server, HOST:PORT' },
  ...tlsOptions('ops'),
  { name: 'stanza', type: 'string', description: 'stanza name' },
  { name: 'type', type: 'string', defaultText: 'backup: incr when a full exists, else full; restore: default', description: 'backup: full, diff (changes since the latest full) or incr (changes since the latest backup); restore: default (recover to the end of the archived WAL), immediate, time, name, xid, lsn, standby, preserve or none' },
  { name: 'delta', type: 'bool', default: false, description: 'backup: decide what changed by checksums rather than size and modification time; restore: over an existing directory: keep the files whose SHA-1 matches the backup, fetch the rest, remove what the backup lacks' },
  { name: 'resume', type: 'bool', default: true, description: 'backup: resume a failed backup of the same type and prior (--no-resume removes it and starts clean)' },
  { name: 'host', type: 'string', description: 'stanza-create, backup, check: agent whose cluster to use (default: the only attached agent reaching a running primary); restore: agent that writes the restore' },
  { name: 'start-fast', type: 'bool', default: false, description: 'backup: force an immediate checkpoint instead of waiting for the next one' },
  { name: 'compress-type', type: 'string', choices: COMPRESS_TYPES, defaultText: 'zst', description: 'backup: compression of the files stored' },
  { name: 'compress-level', type: 'int', min: 0, defaultText: 'zst 3, lz4 1, gz 6', description: 'backup: compression level' },
  { name: 'process-max', type: 'int', default: 1, min: 1, max: 64, description: 'backup, restore: cores for compression, decompression and checksums (worker threads on the agent); verify: worker threads on the repository server that read, decompress and checksum' },
  { name: 'bundle', type: 'bool', default: false, description: 'backup: store files smaller than --bundle-limit together in bundles (fewer round trips and repository files)' },
  { name: 'bundle-limit', type: 'string', default: '2MiB', description: 'backup: files smaller than this are bundled' },
  { name: 'bundle-size', type: 'string', default: '20MiB', description: 'backup: original bytes per bundle, about' },
  { name: 'archive-timeout', type: 'int', min: 1, defaultText: "the server's archive-timeout", description: 'backup, check: seconds to wait for WAL to be archived' },
  { name: 'set', type: 'string', description: 'restore: backup label (default: latest); expire: expire this backup and what depends on it; verify: only this backup' },
  { name: 'dry-run', type: 'bool', default: false, description: 'expire: change nothing, print what would be removed' },
  ...retentionOptionSpecs(false).map((s) => ({ ...s, description: `backup, expire (this run only, over the server's setting): ${s.description}` })),
  { name: 'pg-path', type: 'string', description: "restore: directory to restore into (default: the agent's --pg-path)" },
  { name: 'tablespace-map', type: 'list', description: 'restore: NAME=DIR, restore tablespace NAME (or oid) into DIR; repeatable' },
  { name: 'tablespace-map-all', type: 'string', description: 'restore: restore every tablespace not named by --tablespace-map into DIR/<tablespace name>' },
  { name: 'target', type: 'string', description: "restore: the time, restore point name, xid or LSN to recover to (--type time|name|xid|lsn)" },
  { name: 'target-exclusive', type: 'bool', default: false, description: 'restore: stop just before the target instead of just after it (--type time|xid|lsn)' },
  { name: 'target-action', type: 'string', choices: ['pause', 'promote', 'shutdown'], description: 'restore: what PostgreSQL does at the target: pause (its default), promote or shutdown' },
  { name: 'target-timeline', type: 'string', description: "restore: timeline to recover along: current, latest (PostgreSQL's default) or a number" },
  { name: 'force', type: 'bool', default: false, description: 'restore: with --delta, match files by size and modification time instead of SHA-1; alone, overwrite a non-empty directory' },
  { name: 'db-include', type: 'list', description: 'restore: restore only this database (name or oid) with the system ones; the other databases become sparse zeroed files to drop; repeatable' },
  { name: 'cert-dir', type: 'string', default: '/etc/pgrepo/tls', description: "cert: directory of the CA (ca.crt, ca.key) and the certificates it issues (CN.crt, CN.key)" },
  { name: 'ca-name', type: 'string', default: 'pgrepo CA', check: (v) => (/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$/.test(v) ? undefined : 'must be letters, digits, spaces, . _ -'), description: 'cert init: the CA certificate\'s CN' },
  { name: 'san', type: 'list', description: 'cert issue server: another DNS name or IP address clients use for the server (the CN, localhost, 127.0.0.1 and ::1 are always in); repeatable' },
  { name: 'days', type: 'int', min: 1, defaultText: 'CA 3650, server 825, agent 825, operator 365', description: 'cert: lifetime of the certificate' },
  { name: 'output', type: 'string', default: 'text', choices: ['text', 'json'], description: 'text for people; json for scripts (progress as JSON lines on stderr, the result on stdout)' },
  LOG_LEVEL_OPTION('warn'),
  HELP_OPTION,
];

export const REPOCTL_EXAMPLE_CONFIG: ExampleConfig = {
  program: 'repoctl',
  path: '/etc/pgrepo/repoctl.conf',
  about: [
    "An operator's defaults for repoctl (e.g. ~/.config/pgrepo/repoctl.conf, or /etc/pgrepo/repoctl.conf);",
    'the command and its per-run options usually go on the command line: repoctl --config FILE info',
  ],
  specs: REPOCTL_OPTIONS,
};
