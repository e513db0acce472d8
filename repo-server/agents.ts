import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { AsyncQueue, withTimeout } from '../shared/async-queue';
import { StatusError } from '../shared/errors';
import type { Logger } from '../shared/log';
import type { Job } from '../shared/generated/pgrepo/v1/Job';
import type { JobReply__Output } from '../shared/generated/pgrepo/v1/JobReply';
import type { ServerMessage } from '../shared/generated/pgrepo/v1/ServerMessage';
import type { ClusterIdentity__Output } from '../shared/generated/pgrepo/v1/ClusterIdentity';


/** A job sent to an agent: its replies arrive in order on `replies`. */
export class AgentJob {
  readonly replies = new AsyncQueue<JobReply__Output>();
  constructor(readonly id: string, readonly agent: AttachedAgent) {}

  /** The next reply; a JobError reply or a lost agent becomes a rejection. */
  async next(): Promise<JobReply__Output> {
    const reply = await this.replies.next();
    if (!reply) throw new StatusError(grpc.status.UNAVAILABLE, `agent '${this.agent.identity}' ended the job without a result`);
    if (reply.kind === 'error') {
      throw new StatusError(grpc.status.FAILED_PRECONDITION, reply.error?.message ?? 'the agent reported an error', reply.error?.code || undefined);
    }
    return reply;
  }

  cancel(reason: string): void {
    this.agent.send({ cancel: { job_id: this.id, reason } });
    this.agent.endJob(this.id);
  }
}

export class AttachedAgent {
  private readonly jobs = new Map<string, AgentJob>();

  constructor(
    readonly identity: string,
    readonly stanza: string,
    readonly pgPath: string,
    private readonly call: grpc.ServerDuplexStream<unknown, ServerMessage>,
  ) {}

  send(message: ServerMessage): void {
    this.call.write(message);
  }

  startJob(payload: Omit<Job, 'job_id' | 'kind'>): AgentJob {
    const job = new AgentJob(randomUUID(), this);
    this.jobs.set(job.id, job);
    this.send({ job: { job_id: job.id, ...payload } });
    return job;
  }

  deliver(reply: JobReply__Output): void {
    this.jobs.get(reply.job_id)?.replies.push(reply);
  }

  endJob(id: string): void {
    this.jobs.get(id)?.replies.close();
    this.jobs.delete(id);
  }

  /** Ends the channel from the server's side (shutdown): the agent will dial again. */
  close(): void {
    this.call.end();
  }

  detach(reason: string): void {
    const err = new StatusError(grpc.status.UNAVAILABLE, `agent '${this.identity}' disconnected (${reason})`);
    for (const job of this.jobs.values()) job.replies.fail(err);
    this.jobs.clear();
  }
}

/** The agents attached right now, by identity. An identity that reconnects replaces its old channel. */
export class AgentRegistry {
  private readonly agents = new Map<string, AttachedAgent>();

  constructor(private readonly log: Logger) {}

  attach(agent: AttachedAgent): void {
    const previous = this.agents.get(agent.identity);
    if (previous) previous.detach('replaced by a new connection from the same identity');
    this.agents.set(agent.identity, agent);
    this.log.info({ identity: agent.identity, stanza: agent.stanza }, 'agent attached');
  }

  detach(agent: AttachedAgent, reason: string): void {
    if (this.agents.get(agent.identity) === agent) {
      this.agents.delete(agent.identity);
      this.log.info({ identity: agent.identity, stanza: agent.stanza, reason }, 'agent detached');
    }
    agent.detach(reason);
  }

  /** Ends every channel (shutdown): their jobs fail at once, so running operations clean up and end. */
  closeAll(reason: string): void {
    for (const agent of [...this.agents.values()]) {
      this.detach(agent, reason);
      agent.close();
    }
  }

  /** Ends the channels of agents the new rules no longer allow (SIGHUP); returns their identities. */
  revoke(allowed: (agent: AttachedAgent) => boolean): string[] {
    const revoked = [...this.agents.values()].filter((a) => !allowed(a));
    for (const agent of revoked) {
      this.detach(agent, 'its authorization was removed');
      agent.close();
    }
    return revoked.map((a) => a.identity);
  }

  forStanza(stanza: string): AttachedAgent[] {
    return [...this.agents.values()].filter((a) => a.stanza === stanza);
  }

  get(identity: string): AttachedAgent | undefined {
    return this.agents.get(identity);
  }

  /** Sends a job whose whole answer is one reply, and waits for it (a JobError becomes a rejection). */
  async request(agent: AttachedAgent, payload: Omit<Job, 'job_id' | 'kind'>, what: string, timeoutMs = 15_000): Promise<JobReply__Output> {
    const job = agent.startJob(payload);
    try {
      return await withTimeout(job.next(), timeoutMs, () =>
        new StatusError(grpc.status.DEADLINE_EXCEEDED, `agent '${agent.identity}' did not ${what} within ${timeoutMs / 1000} s`));
    } finally {
      agent.endJob(job.id);
    }
  }

  /** Asks an agent about its PostgreSQL cluster. */
  async identify(agent: AttachedAgent, timeoutMs = 15_000): Promise<ClusterIdentity__Output> {
    const reply = await this.request(agent, { identify: {} }, 'describe its cluster', timeoutMs);
    if (!reply.identity) throw new StatusError(grpc.status.INTERNAL, `agent '${agent.identity}' answered identify with ${reply.kind}`);
    return reply.identity;
  }
}
