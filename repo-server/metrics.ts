import http from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { UserError } from '../shared/errors';
import type { Logger } from '../shared/log';
import type { AuthRules } from './auth';
import type { AgentRegistry } from './agents';
import type { StanzaStore } from './repo/stanza-store';
import type { PosixStorage } from './storage/posix';
import type { BackupInfoEntry } from '../shared/info/backup-info';
import { archiveStanzaKey, bytesUnder, lastArchivedSegment, lastGoodBackups } from './repo/stanza-status';

export interface MetricsSources {
  log: Logger;
  storage: PosixStorage;
  store: StanzaStore;
  agents: AgentRegistry;
  rules: () => AuthRules;
}

export type TransferKind = 'backup' | 'wal';

const REPO_SIZE_TTL_MS = 60_000;

/**
 * The server's Prometheus metrics. Counters are bumped by the commands as work happens; the
 * state of each stanza (last good backups, last archived WAL, repository size, agents) is read
 * from the repository at every scrape, so it is right after a restart and never drifts.
 */
export class ServerMetrics {
  readonly registry = new Registry();
  private readonly archivePushes = new Counter({ name: 'pgrepo_archive_push_total', help: 'WAL files pushed to the archive (stored or already there)', labelNames: ['stanza'], registers: [this.registry] });
  private readonly archivePushFailures = new Counter({ name: 'pgrepo_archive_push_failures_total', help: 'WAL pushes the server refused or failed to store', labelNames: ['stanza'], registers: [this.registry] });
  private readonly backupFailures = new Counter({ name: 'pgrepo_backup_failures_total', help: 'backups that failed or were cancelled', labelNames: ['stanza'], registers: [this.registry] });
  private readonly bytesReceived = new Counter({ name: 'pgrepo_received_bytes_total', help: 'bytes stored from agents (as stored: compressed)', labelNames: ['stanza', 'kind'], registers: [this.registry] });
  private readonly bytesSent = new Counter({ name: 'pgrepo_sent_bytes_total', help: 'bytes sent to agents for restores and archive-get (as stored)', labelNames: ['stanza', 'kind'], registers: [this.registry] });

  private readonly backupTime = this.gauge('pgrepo_backup_last_good_timestamp_seconds', 'when the newest complete backup of this type stopped (unix time)', ['stanza', 'type']);
  private readonly backupAge = this.gauge('pgrepo_backup_last_good_age_seconds', 'seconds since the newest complete backup of this type stopped', ['stanza', 'type']);
  private readonly backupDuration = this.gauge('pgrepo_backup_last_good_duration_seconds', 'how long the newest complete backup of this type took', ['stanza', 'type']);
  private readonly backupSize = this.gauge('pgrepo_backup_last_good_size_bytes', 'database size of the newest complete backup of this type', ['stanza', 'type']);
  private readonly backupRepoSize = this.gauge('pgrepo_backup_last_good_repo_size_bytes', 'bytes the newest complete backup of this type stored in the repository', ['stanza', 'type']);
  private readonly walInfo = this.gauge('pgrepo_wal_last_archived_info', 'the newest archived WAL segment (value 1, name in the label)', ['stanza', 'segment']);
  private readonly walTime = this.gauge('pgrepo_wal_last_archived_timestamp_seconds', 'when the newest archived WAL segment reached the repository (unix time)', ['stanza']);
  private readonly walAge = this.gauge('pgrepo_wal_last_archived_age_seconds', 'seconds since the newest archived WAL segment reached the repository', ['stanza']);
  private readonly repoSize = this.gauge('pgrepo_repo_size_bytes', "bytes a stanza occupies in the repository: its backups' own files and its WAL archive", ['stanza', 'kind']);
  private readonly stanzaUp = this.gauge('pgrepo_stanza_info_ok', '1 when the stanza\'s info files could be read, 0 otherwise', ['stanza']);
  private readonly agentsAttached = this.gauge('pgrepo_agents_attached', 'agents attached for the stanza now', ['stanza']);
  private readonly agentAttached = this.gauge('pgrepo_agent_attached', '1 when the agent is attached, 0 when an agent with an auth rule is not', ['identity', 'stanza']);

  /** scrapes one at a time: each resets and refills the gauges */
  private rendering: Promise<unknown> = Promise.resolve();
  /** the WAL archive's size per stanza, walked at most every REPO_SIZE_TTL_MS */
  private readonly walBytes = new Map<string, { at: number; bytes: number }>();

  constructor(private readonly src: MetricsSources) {
    collectDefaultMetrics({ register: this.registry, prefix: 'pgrepo_server_' });
  }

  private gauge(name: string, help: string, labelNames: string[]): Gauge {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  archivePushed(stanza: string): void {
    this.archivePushes.inc({ stanza });
  }
  archivePushFailed(stanza: string): void {
    this.archivePushFailures.inc({ stanza });
  }
  backupFailed(stanza: string): void {
    this.backupFailures.inc({ stanza });
  }
  received(stanza: string, kind: TransferKind, bytes: number): void {
    this.bytesReceived.inc({ stanza, kind }, bytes);
  }
  sent(stanza: string, kind: TransferKind, bytes: number): void {
    this.bytesSent.inc({ stanza, kind }, bytes);
  }

  /** Reads every stanza's state from the repository into the gauges. */
  async refresh(now = Date.now() / 1000): Promise<void> {
    for (const g of [this.backupTime, this.backupAge, this.backupDuration, this.backupSize, this.backupRepoSize, this.walInfo,
      this.walTime, this.walAge, this.repoSize, this.stanzaUp, this.agentsAttached, this.agentAttached]) g.reset();
    const { store, storage, agents } = this.src;
    for (const stanza of await store.stanzas()) {
      this.agentsAttached.set({ stanza }, agents.forStanza(stanza).length);
      try {
        const backupInfo = await store.backupInfo(stanza);
        for (const [type, b] of Object.entries(lastGoodBackups(backupInfo.backups))) {
          const labels = { stanza, type };
          this.backupTime.set(labels, b.timestampStop);
          this.backupAge.set(labels, Math.max(0, now - b.timestampStop));
          this.backupDuration.set(labels, b.timestampStop - b.timestampStart);
          this.backupSize.set(labels, b.size);
          this.backupRepoSize.set(labels, b.repoSizeDelta);
        }
        const last = await lastArchivedSegment(storage, stanza, await store.archiveInfo(stanza));
        if (last) {
          this.walInfo.set({ stanza, segment: last.segment }, 1);
          this.walTime.set({ stanza }, last.archivedAt);
          this.walAge.set({ stanza }, Math.max(0, now - last.archivedAt));
        }
        const bytes = await this.repoBytes(stanza, backupInfo.backups, now);
        this.repoSize.set({ stanza, kind: 'backup' }, bytes.backup);
        this.repoSize.set({ stanza, kind: 'wal' }, bytes.wal);
        this.stanzaUp.set({ stanza }, 1);
      } catch (err) {
        this.stanzaUp.set({ stanza }, 0);
        this.src.log.debug({ stanza, err: (err as Error).message }, 'metrics: cannot read the stanza');
      }
    }
    // every agent with a rule has a series, so "agent detached" can alert even after a server restart
    for (const rule of this.src.rules().all()) {
      if (rule.role !== 'agent') continue;
      const attached = agents.get(rule.identity);
      for (const stanza of rule.stanzas ?? []) this.agentAttached.set({ identity: rule.identity, stanza }, attached?.stanza === stanza ? 1 : 0);
    }
  }

  /** Backups' sizes come from backup.info; the WAL archive is walked, so its size is kept a while. */
  private async repoBytes(stanza: string, backups: BackupInfoEntry[], now: number): Promise<{ backup: number; wal: number }> {
    const backup = backups.reduce((sum, b) => sum + b.repoSizeDelta, 0);
    const cached = this.walBytes.get(stanza);
    if (cached && now * 1000 - cached.at < REPO_SIZE_TTL_MS) return { backup, wal: cached.bytes };
    const wal = await bytesUnder(this.src.storage, archiveStanzaKey(stanza));
    this.walBytes.set(stanza, { at: now * 1000, bytes: wal });
    return { backup, wal };
  }

  render(): Promise<string> {
    const next = this.rendering.then(async () => {
      await this.refresh();
      return this.registry.metrics();
    });
    this.rendering = next.catch(() => undefined);
    return next;
  }
}

/** GET /metrics over plain HTTP (Prometheus text format); anything else is 404. */
export function serveMetrics(metrics: ServerMetrics, address: string, log: Logger): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('pgrepo-server serves Prometheus metrics at /metrics\n');
      return;
    }
    metrics.render().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (err: Error) => {
        log.error({ err: err.message }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${err.message}\n`);
      },
    );
  });
  const sep = address.lastIndexOf(':');
  const host = address.slice(0, sep).replace(/^\[(.*)\]$/, '$1');
  return new Promise((resolve, reject) => {
    server.once('error', (err) => reject(new UserError(`cannot serve metrics on ${address}: ${err.message}`)));
    server.listen(Number(address.slice(sep + 1)), host, () => {
      const bound = server.address();
      log.info({ address: typeof bound === 'object' && bound ? `${address.slice(0, sep)}:${bound.port}` : address }, 'metrics listening');
      resolve(server);
    });
  });
}
