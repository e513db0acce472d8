import { LOG_LEVELS } from '../log';
import type { OptionSpec } from './options';

export const CONFIG_OPTION: OptionSpec = { name: 'config', type: 'string', flagOnly: true, description: 'read options from this file (key=value lines)' };
export const HELP_OPTION: OptionSpec = { name: 'help', type: 'bool', flagOnly: true, description: 'show this help' };
export const LOG_LEVEL_OPTION = (fallback: string): OptionSpec => ({
  name: 'log-level', type: 'string', default: fallback, choices: LOG_LEVELS, description: 'how much to log (pino JSON lines)',
});

/** HOST:PORT, where HOST may be a name, an IPv4 address or a bracketed IPv6 address. */
export function checkHostPort(value: string): string | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d+)$/.exec(value);
  if (!m) return 'must be HOST:PORT (e.g. backup.example.com:8432 or [::1]:8432)';
  return Number(m[2]) > 65535 ? 'has a port above 65535' : undefined;
}

/** The three files every program needs for mutual TLS; `name` is the certificate's CN in the examples. */
export function tlsOptions(name: string): OptionSpec[] {
  return [
    { name: 'tls-cert', type: 'string', example: `/etc/pgrepo/tls/${name}.crt`, description: "this program's certificate (PEM), signed by the installation's CA (repoctl cert issue makes one)" },
    { name: 'tls-key', type: 'string', example: `/etc/pgrepo/tls/${name}.key`, description: "this program's private key (PEM); readable by this program's user only", secret: true },
    { name: 'tls-ca', type: 'string', example: '/etc/pgrepo/tls/ca.crt', description: "the installation's CA certificate (PEM)" },
  ];
}
