import type { Logger } from '../shared/log';
import type { Options } from '../shared/config/options';
import type { AuthRules } from './auth';
import type { AgentRegistry } from './agents';
import type { PosixStorage } from './storage/posix';
import type { StanzaLocks, StanzaStore } from './repo/stanza-store';
import type { BackupSessions } from './commands/backup-session';
import type { GuardContext } from './service/guard';
import type { ServerMetrics } from './metrics';

/** What every command handler of the server works with. */
export interface ServerContext extends GuardContext {
  log: Logger;
  rules: () => AuthRules;
  storage: PosixStorage;
  store: StanzaStore;
  agents: AgentRegistry;
  locks: StanzaLocks;
  sessions: BackupSessions;
  archiveTimeoutSeconds: number;
  metrics: ServerMetrics;
  /** the server's options as last (re)loaded: per-stanza settings such as retention come from here */
  config: () => Options;
}
