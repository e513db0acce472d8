import { archiveId } from '../../shared/info/archive-info';
import { InfoFileError } from '../../shared/info/ini';
import type { StanzaInfo } from '../../shared/generated/pgrepo/v1/StanzaInfo';
import type { ArchiveRange } from '../../shared/generated/pgrepo/v1/ArchiveRange';
import type { ServerContext } from '../context';
import { mayAccessStanza } from '../auth';
import type { Caller } from '../service/guard';
import { segmentRange, stanzaRepoBytes } from '../repo/stanza-status';

async function archiveRange(ctx: ServerContext, stanza: string, id: string, dbId: number): Promise<ArchiveRange | undefined> {
  const range = await segmentRange(ctx.storage, stanza, id);
  return range ? { id, min: range.min, max: range.max, db_id: dbId } : undefined;
}

async function stanzaInfo(ctx: ServerContext, stanza: string): Promise<StanzaInfo> {
  const agents = ctx.agents.forStanza(stanza).map((a) => a.identity);
  const base: StanzaInfo = { name: stanza, db: [], archive: [], backup: [], agents };
  try {
    const backupInfo = await ctx.store.backupInfo(stanza);
    const archiveInfo = await ctx.store.archiveInfo(stanza);
    const archive: ArchiveRange[] = [];
    for (const db of archiveInfo.history) {
      const range = await archiveRange(ctx, stanza, archiveId(db), db.id);
      if (range) archive.push(range);
    }
    const backups = backupInfo.backups.map((b) => ({
      label: b.label, type: b.type, prior: b.prior ?? '', reference: b.reference,
      timestamp_start: b.timestampStart, timestamp_stop: b.timestampStop, lsn_start: b.lsnStart, lsn_stop: b.lsnStop,
      archive_start: b.archiveStart, archive_stop: b.archiveStop, size: b.size, delta: b.sizeDelta,
      repo_size: b.repoSize, repo_delta: b.repoSizeDelta, db_id: b.dbId, error: b.error ?? false,
    }));
    const lock = ctx.locks.holder(stanza);
    const bytes = await stanzaRepoBytes(ctx.storage, stanza, backupInfo.backups);
    return {
      ...base,
      repo_size: bytes.backup + bytes.wal,
      status_code: backups.length ? 0 : 2,
      status_message: (backups.length ? 'ok' : 'no valid backups') + (lock ? ` (${lock} running)` : ''),
      db: backupInfo.history.map((d) => ({ id: d.id, system_id: d.systemId, version: d.version })),
      archive,
      backup: backups,
    };
  } catch (err) {
    const missing = err instanceof InfoFileError ? err.code === 'missing' : /does not exist/.test((err as Error).message);
    return { ...base, status_code: missing ? 3 : 99, status_message: missing ? 'missing stanza data' : (err as Error).message };
  }
}

export async function info(ctx: ServerContext, stanza: string, caller: Caller): Promise<StanzaInfo[]> {
  if (stanza) {
    if (!(await ctx.store.stanzas()).includes(stanza)) {
      return [{ name: stanza, status_code: 1, status_message: 'missing stanza path', db: [], archive: [], backup: [], agents: [] }];
    }
    return [await stanzaInfo(ctx, stanza)];
  }
  const visible = (await ctx.store.stanzas()).filter((s) => mayAccessStanza(caller.rule, s));
  return Promise.all(visible.map((s) => stanzaInfo(ctx, s)));
}
