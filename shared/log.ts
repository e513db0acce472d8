import pino from 'pino';

export type Logger = pino.Logger;
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** One JSON line per event. Daemons log to stdout (journald); repoctl to stderr so stdout stays the command's output. */
export function createLogger(name: string, level: string, destination: 1 | 2 = 1): Logger {
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: destination, sync: true }));
}
