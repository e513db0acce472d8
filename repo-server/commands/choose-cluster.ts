import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import type { ClusterIdentity__Output } from '../../shared/generated/pgrepo/v1/ClusterIdentity';
import type { AttachedAgent } from '../agents';
import type { ServerContext } from '../context';

export interface ChosenCluster {
  agent: AttachedAgent;
  cluster: ClusterIdentity__Output;
}

function noAgentError(stanza: string): StatusError {
  return new StatusError(grpc.status.FAILED_PRECONDITION,
    `no agent is attached for stanza '${stanza}': start pgrepo-agent --stanza ${stanza} on the database host (its certificate's CN needs --auth CN=agent:${stanza} on the server)`);
}

/**
 * The agent whose PostgreSQL is a running primary: the one named by `host`, or else the only
 * attached agent of the stanza that reaches one. Every agent is asked, so the error can say what
 * each one found. Two primaries (a restored copy promoted on another host, say) are refused rather
 * than one picked at random: backing up the wrong one would go unnoticed (pgBackRest refuses too).
 */
export async function chooseCluster(ctx: ServerContext, stanza: string, host: string): Promise<ChosenCluster> {
  let candidates = ctx.agents.forStanza(stanza);
  if (host) {
    candidates = candidates.filter((a) => a.identity === host);
    if (candidates.length === 0) {
      throw new StatusError(grpc.status.FAILED_PRECONDITION, `agent '${host}' is not attached for stanza '${stanza}' (attached: ${ctx.agents.forStanza(stanza).map((a) => a.identity).join(', ') || 'none'})`);
    }
  }
  if (candidates.length === 0) throw noAgentError(stanza);
  const answers = await Promise.allSettled(candidates.map((agent) => ctx.agents.identify(agent)));
  const problems: string[] = [];
  const primaries: ChosenCluster[] = [];
  for (let i = 0; i < candidates.length; i++) {
    const answer = answers[i];
    if (answer.status === 'rejected') {
      problems.push(`${candidates[i].identity}: ${(answer.reason as Error).message}`);
    } else if (answer.value.in_recovery) {
      problems.push(`${candidates[i].identity}: PostgreSQL is in recovery (a standby); backups are taken from the primary`);
    } else {
      primaries.push({ agent: candidates[i], cluster: answer.value });
    }
  }
  if (primaries.length === 1) return primaries[0];
  if (primaries.length > 1) {
    const found = primaries.map((p) => `${p.agent.identity} (${describeCluster(p.cluster)})`).join(', ');
    throw new StatusError(grpc.status.FAILED_PRECONDITION,
      `more than one agent of stanza '${stanza}' reaches a running primary: ${found}; name the stanza's primary with --host`);
  }
  throw new StatusError(grpc.status.FAILED_PRECONDITION, `no agent of stanza '${stanza}' reached a running primary: ${problems.join('; ')}`);
}

export function describeCluster(c: { system_id?: string; systemId?: string; version: string }): string {
  return `system identifier ${c.system_id ?? c.systemId}, PostgreSQL ${c.version}`;
}
