import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import { validateBackupLabel } from '../../shared/validate';
import type { VerifyRequest__Output } from '../../shared/generated/pgrepo/v1/VerifyRequest';
import type { ServerContext } from '../context';
import { verifyStanza } from '../verify/run';
import type { Emit } from './backup';

const MAX_PROCESS = 64;

/** repoctl verify: the repository alone, no agent; progress streams to repoctl as files are read. */
export async function runVerify(ctx: ServerContext, req: VerifyRequest__Output, emit: Emit, cancelled: () => boolean): Promise<void> {
  const began = Date.now();
  const stanza = req.stanza;
  const set = req.set ? validateBackupLabel(req.set) : undefined;
  // each is a thread of this server: the wire's number is bounded as repoctl's option is
  if (req.process_max > MAX_PROCESS) throw new StatusError(grpc.status.INVALID_ARGUMENT, `process-max ${req.process_max} is out of range: use 1-${MAX_PROCESS}`);
  ctx.log.info({ stanza, set, processMax: req.process_max }, 'verify started');
  const report = await verifyStanza(ctx, stanza, {
    set, processMax: Math.max(1, req.process_max || 1),
    progress: (p) => emit({ progress: p }),
    say: (line) => emit({ log: line }),
    cancelled,
  });
  const seconds = (Date.now() - began) / 1000;
  const bad = report.backups!.filter((b) => b.status !== 'valid' && b.status !== 'expired').map((b) => b.label);
  ctx.log[report.ok ? 'info' : 'warn']({ stanza, ok: report.ok, invalidBackups: bad, files: report.files_checked, bytes: report.bytes_read, seconds }, 'verify complete');
  emit({ result: { verify: report, seconds, bytes: report.bytes_checked, repo_bytes: report.bytes_read, files: report.files_checked } });
}
