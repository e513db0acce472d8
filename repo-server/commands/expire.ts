import { validateBackupLabel } from '../../shared/validate';
import type { ExpireRequest__Output } from '../../shared/generated/pgrepo/v1/ExpireRequest';
import type { ExpireReport } from '../../shared/generated/pgrepo/v1/ExpireReport';
import type { Retention as RetentionMessage } from '../../shared/generated/pgrepo/v1/Retention';
import type { Options } from '../../shared/config/options';
import type { ServerContext } from '../context';
import { expireStanza } from '../expire/run';
import { overlayRetention, resolveRetention, retentionFromOptions, retentionFromRequest, type Retention } from '../expire/retention';
import type { Emit } from './backup';

/** The server's retention for the stanza (its [stanza] section over the global settings), overridden by the request's. */
export function retentionFor(ctx: ServerContext, stanza: string, requested: RetentionMessage | null | undefined): Retention {
  return resolveRetention(overlayRetention(retentionFromOptions(ctx.config().forStanza(stanza)), retentionFromRequest(requested)));
}

/** Refuses a server configuration with a bad retention setting, globally or for any stanza. */
export function checkRetentionConfig(options: Options): void {
  retentionFromOptions(options);
  for (const stanza of options.stanzaNames()) retentionFromOptions(options.forStanza(stanza));
}

function sayer(ctx: ServerContext, stanza: string, emit: Emit): (line: string) => void {
  return (line) => {
    ctx.log.info({ stanza }, line);
    emit({ log: line });
  };
}

/** repoctl expire: retention (or --set) for one stanza, holding its lock so no backup runs meanwhile. */
export async function runExpire(ctx: ServerContext, req: ExpireRequest__Output, emit: Emit): Promise<void> {
  const began = Date.now();
  const stanza = req.stanza;
  const set = req.set ? validateBackupLabel(req.set) : undefined;
  const retention = retentionFor(ctx, stanza, req.retention);
  const release = ctx.locks.acquire(stanza, 'expire');
  try {
    const report = await expireStanza(ctx, stanza, { retention, set, dryRun: req.dry_run, say: sayer(ctx, stanza, emit) });
    emit({ result: { expire: report, seconds: (Date.now() - began) / 1000 } });
  } finally {
    release();
  }
}

/**
 * The expire that follows every successful backup, inside the backup's lock. Its failure does not
 * undo the backup: the report carries the error for repoctl to show.
 */
export async function expireAfterBackup(ctx: ServerContext, stanza: string, retention: Retention, emit: Emit): Promise<ExpireReport> {
  try {
    return await expireStanza(ctx, stanza, { retention, dryRun: false, say: sayer(ctx, stanza, emit) });
  } catch (err) {
    const message = (err as Error).message;
    ctx.log.error({ stanza, err: message }, 'expire after the backup failed; the backup itself is complete');
    return { dry_run: false, backups: [], wal: [], removed: [], warnings: [], wal_files: 0, error: message };
  }
}
