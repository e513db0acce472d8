import type { OptionSpec } from './options';

export const CONFIG_OPTION: OptionSpec = { name: 'config', type: 'string', description: 'read options from this file (key=value lines)' };
export const HELP_OPTION: OptionSpec = { name: 'help', type: 'bool', description: 'show this help' };
export const LOG_LEVEL_OPTION = (fallback: string): OptionSpec => ({
  name: 'log-level', type: 'string', default: fallback, description: 'fatal, error, warn, info, debug, trace or silent',
});

/** The three files every program needs for mutual TLS. */
export const TLS_OPTIONS: OptionSpec[] = [
  { name: 'tls-cert', type: 'string', description: "this program's certificate (PEM), signed by the installation's CA" },
  { name: 'tls-key', type: 'string', description: "this program's private key (PEM)", secret: true },
  { name: 'tls-ca', type: 'string', description: "the installation's CA certificate (PEM)" },
];
