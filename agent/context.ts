import type { Logger } from '../shared/log';
import type { RepositoryClient } from './transfer/client';
import type { PgConnectionOptions } from './pg/cluster';

/** What the agent's jobs and socket handlers work with. */
export interface AgentContext {
  log: Logger;
  client: RepositoryClient;
  stanza: string;
  pgPath: string;
  pg: PgConnectionOptions;
  socketPath: string;
  walCompressType: string;
  walCompressLevel: number;
  /** the command line that runs this agent's archive-get, for restore_command */
  archiveGetCommand: string;
  /** test only (--test-backup-file-delay-ms): pause after each backup file so a test can interrupt a backup half way */
  testBackupFileDelayMs: number;
}
