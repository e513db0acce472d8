import type { AgentContext } from '../context';
import type { BackupBaselinePart__Output } from '../../shared/generated/pgrepo/v1/BackupBaselinePart';
import type { Baseline } from './plan';

/** The prior backup's files and the resumable ones, streamed from the server in parts. */
export async function fetchBaseline(ctx: AgentContext, jobId: string): Promise<Baseline> {
  const baseline: Baseline = { prior: new Map(), resumable: new Map() };
  for await (const part of ctx.client.GetBackupBaseline({ job_id: jobId })) {
    for (const f of (part as BackupBaselinePart__Output).files) {
      (f.resumable ? baseline.resumable : baseline.prior).set(f.name, { size: f.size, timestamp: f.timestamp, checksum: f.checksum });
    }
  }
  return baseline;
}
