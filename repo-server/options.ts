import { CONFIG_OPTION, HELP_OPTION, LOG_LEVEL_OPTION, TLS_OPTIONS } from '../shared/config/common-options';
import { STANZA_OPTION, type OptionSpec } from '../shared/config/options';
import { retentionOptionSpecs } from './expire/retention';

export const SERVER_USAGE = 'usage: pgrepo-server --listen HOST:PORT --repo-path DIR --tls-cert F --tls-key F --tls-ca F --auth CN=ROLE[:STANZA,...] ...';

export const SERVER_OPTIONS: OptionSpec[] = [
  CONFIG_OPTION,
  { name: 'listen', type: 'string', default: '127.0.0.1:8432', description: 'address and port to accept agents and operators on' },
  { name: 'repo-path', type: 'string', description: 'directory of the repository (created if missing)' },
  ...TLS_OPTIONS,
  { name: 'auth', type: 'list', description: 'CN=ROLE[:STANZA,...]: grant a certificate identity the role agent (for stanzas), admin or viewer; repeatable' },
  { name: 'archive-timeout', type: 'int', default: 60, description: 'seconds a backup (or check) waits for the WAL it needs to reach the archive' },
  ...retentionOptionSpecs(true),
  STANZA_OPTION,
  LOG_LEVEL_OPTION('info'),
  HELP_OPTION,
];
