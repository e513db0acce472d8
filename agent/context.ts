import type { Logger } from '../shared/log';
import type { RepositoryClient } from './transfer/client';
import type { TlsFiles } from '../shared/tls';
import type { PgConnectionOptions } from './pg/cluster';
import type { ArchivePusher } from './archive/pusher';
import type { WalPrefetcher } from './archive/prefetch';

/** What the agent's jobs and socket handlers work with. */
export interface AgentContext {
  log: Logger;
  client: RepositoryClient;
  /** the repository server's address, for messages and for channels of worker threads */
  server: string;
  /** the agent's certificate, key and CA: worker threads that dial channels of their own use them */
  tls: TlsFiles;
  stanza: string;
  pgPath: string;
  pg: PgConnectionOptions;
  socketPath: string;
  walCompressType: string;
  walCompressLevel: number;
  /** compress-level-network: with compress-type none, WAL travels lz4-compressed at this level (0: as stored) */
  walNetworkLevel: number;
  /** the command line that runs this agent's archive-get, for restore_command */
  archiveGetCommand: string;
  /** test only (--test-backup-file-delay-ms): pause after each backup file so a test can interrupt a backup half way */
  testBackupFileDelayMs: number;
  /** test only (--test-restore-file-delay-ms): pause after each restored file so a test can act during a restore */
  testRestoreFileDelayMs: number;
  /** test only (--test-restore-part-min): restore files in parts from this size (0: PART_MIN) */
  testRestorePartMin: number;
  /** the archive_command line that answers from this agent's spool */
  archivePushCommand: string;
  /** archive-push and archive-get on this host (set once the daemon has started them) */
  archive?: { pusher: ArchivePusher; prefetcher: WalPrefetcher };
}
