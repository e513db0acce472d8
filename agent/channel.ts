import * as grpc from '@grpc/grpc-js';
import { describeCallError, isServiceError } from '../shared/errors';
import { PGREPO_VERSION } from '../shared/version';
import type { AgentMessage } from '../shared/generated/pgrepo/v1/AgentMessage';
import type { ServerMessage__Output } from '../shared/generated/pgrepo/v1/ServerMessage';
import type { Job__Output } from '../shared/generated/pgrepo/v1/Job';
import type { JobReply } from '../shared/generated/pgrepo/v1/JobReply';
import type { AgentContext } from './context';
import { connectPg, identifyCluster } from './pg/cluster';
import { runBackupJob } from './backup/run';
import { runRestoreJob } from './restore/run';
import { runCheckJob } from './check';
import { watchJobMemory } from '../shared/thread-memory';

type Reply = (reply: Omit<JobReply, 'job_id'>) => void;

async function identify(ctx: AgentContext, reply: Reply): Promise<void> {
  const client = await connectPg(ctx.pg, 'pgrepo-agent identify');
  try {
    reply({ identity: await identifyCluster(client, ctx.pgPath) });
  } finally {
    await client.end().catch(() => undefined);
  }
}

function runJob(ctx: AgentContext, job: Job__Output, reply: Reply, cancelled: () => boolean): Promise<void> {
  switch (job.kind) {
    case 'identify': return identify(ctx, reply);
    case 'backup': return runBackupJob(ctx, job.job_id, job.backup!, reply, cancelled);
    case 'restore': return runRestoreJob(ctx, job.restore!, reply, cancelled);
    case 'check': return runCheckJob(ctx, job.check!, reply);
    default: return Promise.reject(new Error(`this agent does not know job '${job.kind}'; upgrade it to the server's version`));
  }
}

/**
 * The agent's line to the server: it dials out, says hello, runs the jobs that come down
 * the channel, and dials again with growing back-off whenever the channel breaks.
 */
export class JobChannel {
  private call: grpc.ClientDuplexStream<AgentMessage, ServerMessage__Output> | undefined;
  private readonly cancelledJobs = new Set<string>();
  private backoffMs = 1000;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly ctx: AgentContext, private readonly server: string) {}

  start(): void {
    if (this.stopped) return;
    const call = this.ctx.client.AgentChannel();
    this.call = call;
    call.write({ hello: { stanza: this.ctx.stanza, agent_version: PGREPO_VERSION, pg_path: this.ctx.pgPath } });
    call.on('data', (msg: ServerMessage__Output) => this.onMessage(msg));
    call.on('error', (err) => this.onBroken(err));
    call.on('end', () => this.onBroken(undefined));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.call?.cancel();
  }

  private onMessage(msg: ServerMessage__Output): void {
    if (msg.hello_ack) {
      this.backoffMs = 1000;
      this.ctx.log.info({ server: this.server, identity: msg.hello_ack.identity, stanza: this.ctx.stanza }, 'attached to repository server');
    } else if (msg.cancel) {
      this.cancelledJobs.add(msg.cancel.job_id);
      this.ctx.log.warn({ job: msg.cancel.job_id, reason: msg.cancel.reason }, 'job cancelled by the server');
    } else if (msg.job) {
      this.dispatch(msg.job);
    }
  }

  private dispatch(job: Job__Output): void {
    const call = this.call;
    const reply: Reply = (r) => call?.write({ reply: { job_id: job.job_id, ...r } });
    const log = this.ctx.log.child({ job: job.job_id, kind: job.kind });
    log.debug('job received');
    const memory = watchJobMemory();
    runJob(this.ctx, job, reply, () => this.cancelledJobs.has(job.job_id)).then(
      () => log.debug({ memory: memory?.end() }, 'job finished'),
      (err: unknown) => {
        const message = describeCallError(err, this.server);
        log.warn({ err: message, memory: memory?.end() }, 'job failed');
        reply({ error: { message, code: (err as { code?: unknown }).code?.toString() ?? '' } });
      },
    ).finally(() => this.cancelledJobs.delete(job.job_id));
  }

  private onBroken(err: unknown): void {
    if (this.call === undefined || this.stopped) return;
    this.call = undefined;
    const reason = err === undefined ? 'the server closed the channel' : describeCallError(err, this.server);
    const refused = isServiceError(err) && (err.code === grpc.status.UNAUTHENTICATED || err.code === grpc.status.PERMISSION_DENIED);
    // a refusal will not fix itself quickly: say so loudly, and retry slowly in case the server's rules change
    this.ctx.log[refused ? 'error' : 'warn']({ server: this.server, err: reason, retryInSeconds: this.backoffMs / 1000 }, refused ? 'the repository server refused this agent' : 'lost the repository server; reconnecting');
    this.timer = setTimeout(() => this.start(), this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
  }
}
