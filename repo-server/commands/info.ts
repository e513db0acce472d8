import { archiveId } from '../../shared/info/archive-info';
import { InfoFileError } from '../../shared/info/ini';
import type { StanzaInfo } from '../../shared/generated/pgrepo/v1/StanzaInfo';
import type { ArchiveRange } from '../../shared/generated/pgrepo/v1/ArchiveRange';
import type { WalGap } from '../../shared/generated/pgrepo/v1/WalGap';
import type { ServerContext } from '../context';
import { mayAccessStanza } from '../auth';
import type { Caller } from '../service/guard';
import { stanzaRepoBytes } from '../repo/stanza-status';
import { readDropped } from './archive-dropped';
import { archivedSegmentSize, backupGap, listArchivedSegments, missingRanges, type MissingRange } from './wal-gaps';
import type { BackupWal } from '../verify/wal-ranges';

const DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024;

interface ArchiveView {
  range?: ArchiveRange;
  /** every missing range (for the backups' marks) */
  missing: MissingRange[];
}

/** First and last archived segment of one archive id, and the WAL missing between or dropped. */
async function archiveView(ctx: ServerContext, stanza: string, id: string, dbId: number, dropped: string[], backups: BackupWal[]): Promise<ArchiveView> {
  const { names, sample } = await listArchivedSegments(ctx, stanza, id);
  const range = names.length ? { id, min: names[0], max: names[names.length - 1], db_id: dbId } : undefined;
  if (names.length < 2 && dropped.length === 0) return { range, missing: [] };
  let segmentSize = DEFAULT_SEGMENT_SIZE;
  if (sample) {
    try {
      segmentSize = await archivedSegmentSize(ctx, sample);
    } catch (err) {
      ctx.log.warn({ stanza, file: sample.key, err: (err as Error).message }, 'cannot read the WAL segment size from an archived segment; assuming 16 MiB');
    }
  }
  return { range, missing: missingRanges(names, dropped, segmentSize, backups) };
}

async function stanzaInfo(ctx: ServerContext, stanza: string): Promise<StanzaInfo> {
  const agents = ctx.agents.forStanza(stanza).map((a) => a.identity);
  const base: StanzaInfo = { name: stanza, db: [], archive: [], backup: [], agents };
  try {
    const backupInfo = await ctx.store.backupInfo(stanza);
    const archiveInfo = await ctx.store.archiveInfo(stanza);
    const droppedRecord = await readDropped(ctx, stanza);
    const archive: ArchiveRange[] = [];
    const gaps: WalGap[] = [];
    const missingByDb = new Map<number, MissingRange[]>();
    for (const db of archiveInfo.history) {
      const id = archiveId(db);
      const ofDb = backupInfo.backups.filter((b) => b.dbId === db.id && b.archiveStart);
      const view = await archiveView(ctx, stanza, id, db.id, droppedRecord.filter((d) => d.archiveId === id).map((d) => d.wal), ofDb);
      if (view.range) archive.push(view.range);
      missingByDb.set(db.id, view.missing);
      // the holes expire leaves between kept backups are not gaps anyone needs to hear about
      gaps.push(...view.missing.filter((g) => !g.expired).map(({ expired: _, ...g }) => ({ archive_id: id, ...g })));
    }
    const backups = backupInfo.backups.map((b) => {
      const gap = backupGap(b, missingByDb.get(b.dbId) ?? []);
      return {
        label: b.label, type: b.type, prior: b.prior ?? '', reference: b.reference,
        timestamp_start: b.timestampStart, timestamp_stop: b.timestampStop, lsn_start: b.lsnStart, lsn_stop: b.lsnStop,
        archive_start: b.archiveStart, archive_stop: b.archiveStop, size: b.size, delta: b.sizeDelta,
        repo_size: b.repoSize, repo_delta: b.repoSizeDelta, db_id: b.dbId, error: b.error ?? false,
        wal_gap: gap.walGap, wal_incomplete: gap.incomplete,
      };
    });
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
      wal_gap: gaps,
      wal_dropped: droppedRecord.length,
      wal_dropped_last: Math.max(0, ...droppedRecord.map((d) => d.droppedAt)),
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
