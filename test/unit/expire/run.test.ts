/**
 * expireStanza on a repository laid out on disk (real files, real info files and manifests):
 * a set of fulls, diffs and incrementals, WAL in two log directories, history and backup
 * history files, a directory a failed backup left, and a newer partial backup.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../shared/log';
import type { BackupInfoEntry, BackupType } from '../../../shared/info/backup-info';
import type { Manifest } from '../../../shared/info/manifest';
import type { PgDb } from '../../../shared/info/pg-db';
import { renderManifest } from '../../../shared/info/manifest';
import { PosixStorage } from '../../../repo-server/storage/posix';
import { StanzaStore } from '../../../repo-server/repo/stanza-store';
import type { ServerContext } from '../../../repo-server/context';
import { expireStanza } from '../../../repo-server/expire/run';
import { resolveRetention, type RetentionInput } from '../../../repo-server/expire/retention';
import { listTree } from '../../harness/repo';

const STANZA = 'main';
const DB: PgDb = { id: 1, systemId: '7000000000000000001', version: '15', catalogVersion: 202209061, controlVersion: 1300 };
const SHA = 'f'.repeat(40);
/** timeline 3, log 1 */
const seg = (n: number, log = 1, timeline = 3) => `${String(timeline).padStart(8, '0')}${String(log).padStart(8, '0')}${n.toString(16).toUpperCase().padStart(8, '0')}`;

const F1 = '20260101-010000F';
const F1_D1 = `${F1}_20260102-010000D`;
const F1_I1 = `${F1}_20260103-010000I`;
const FAILED = '20260104-000000F';
const F2 = '20260105-010000F';
const F2_I1 = `${F2}_20260106-010000I`;
const F3 = '20260107-010000F';
const PARTIAL = `${F3}_20260108-010000I`;

function entry(label: string, type: BackupType, start: number, stop: number, prior: string | null = null, reference: string[] = []): BackupInfoEntry {
  return {
    label, type, prior, reference, timestampStart: 1, timestampStop: 2, lsnStart: '1/1000028', lsnStop: '1/2000050',
    archiveStart: seg(start), archiveStop: seg(stop), size: 1, sizeDelta: 1, repoSize: 1, repoSizeDelta: 1,
    dbId: 1, compressType: 'gz', online: true, archiveCheck: true,
  };
}

const BACKUPS = [
  entry(F1, 'full', 1, 2),
  entry(F1_D1, 'diff', 4, 4, F1, [F1]),
  entry(F1_I1, 'incr', 6, 6, F1_D1, [F1, F1_D1]),
  entry(F2, 'full', 0x11, 0x12),
  entry(F2_I1, 'incr', 0x14, 0x14, F2, [F2]),
  entry(F3, 'full', 0x16, 0x17),
];

function manifestOf(b: BackupInfoEntry): Manifest {
  return {
    backup: {
      label: b.label, type: b.type, prior: b.prior, reference: b.reference, timestampStart: 1, timestampCopyStart: 1, timestampStop: 2,
      lsnStart: b.lsnStart, lsnStop: b.lsnStop, archiveStart: b.archiveStart, archiveStop: b.archiveStop,
    },
    db: DB,
    options: { compressType: 'gz', compressLevel: 6, processMax: 1, online: true, archiveCheck: true, delta: false, startFast: true },
    targets: [{ name: 'pg_data', path: '/pg', type: 'path' }],
    databases: [], paths: [{ name: 'pg_data', mode: '0700', user: 'postgres', group: 'postgres' }], links: [],
    files: [{ name: 'pg_data/PG_VERSION', size: 3, timestamp: 1, mode: '0600', user: 'postgres', group: 'postgres', checksum: SHA, repoSize: 23, repoChecksum: SHA, compressType: 'gz' }],
  };
}

let root: string;
let ctx: ServerContext;

function touch(rel: string): void {
  fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
  fs.writeFileSync(path.join(root, rel), 'x');
}

const archived = () => listTree(path.join(root, 'archive', STANZA, '15-1'));
const backupDirs = () => fs.readdirSync(path.join(root, 'backup', STANZA)).filter((n) => /^\d{8}-/.test(n)).sort();

beforeEach(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'pgrepo-expire-'));
  const storage = new PosixStorage(root);
  const store = new StanzaStore(storage);
  ctx = { storage, store, log: createLogger('test', 'silent') } as unknown as ServerContext;
  await store.saveArchiveInfo(STANZA, { current: DB, history: [DB] });
  await store.saveBackupInfo(STANZA, { current: DB, history: [DB], backups: BACKUPS });
  for (const b of BACKUPS) {
    await store.saveManifest(STANZA, manifestOf(b));
    touch(`backup/${STANZA}/${b.label}/pg_data/PG_VERSION.gz`);
  }
  touch(`backup/${STANZA}/${FAILED}/pg_data/PG_VERSION.gz`);
  // a partial incremental on F3, as a failed backup leaves it for the next one to resume
  touch(`backup/${STANZA}/${PARTIAL}/pg_data/PG_VERSION.gz`);
  fs.writeFileSync(path.join(root, `backup/${STANZA}/${PARTIAL}/backup.manifest.copy`), renderManifest(manifestOf(entry(PARTIAL, 'incr', 0x19, 0x19, F3, [F3])), '0'));
  fs.symlinkSync(F3, path.join(root, `backup/${STANZA}/latest`));
  // WAL: log 0 (entirely older than everything kept), log 1 (backups), history and backup history files
  for (let n = 0xf0; n <= 0xff; n++) touch(`archive/${STANZA}/15-1/${seg(n, 0).slice(0, 16)}/${seg(n, 0)}-${SHA}.gz`);
  for (let n = 0; n <= 0x1f; n++) touch(`archive/${STANZA}/15-1/${seg(n).slice(0, 16)}/${seg(n)}-${SHA}.gz`);
  touch(`archive/${STANZA}/15-1/${seg(0x1a).slice(0, 16)}/${seg(0x1a)}.partial-${SHA}.gz`);
  touch(`archive/${STANZA}/15-1/00000002.history-${SHA}.gz`);
  touch(`archive/${STANZA}/15-1/00000003.history-${SHA}.gz`);
  touch(`archive/${STANZA}/15-1/${seg(1)}.00000028.backup-${SHA}.gz`);
  touch(`archive/${STANZA}/15-1/${seg(0x16)}.00000028.backup-${SHA}.gz`);
});

const run = (input: RetentionInput, o: { set?: string; dryRun?: boolean } = {}) => {
  const lines: string[] = [];
  return expireStanza(ctx, STANZA, { retention: resolveRetention(input), set: o.set, dryRun: o.dryRun ?? false, say: (l) => lines.push(l) })
    .then((report) => ({ report, lines }));
};

describe('expire on a repository on disk', () => {
  it('removes the expired set (manifests, info, directories), the failed backup\'s leftovers and the WAL nothing needs', async () => {
    const { report, lines } = await run({ full: 2, archive: 1 });
    expect(report.backups).toEqual([expect.objectContaining({ label: F1, set: [F1, F1_D1, F1_I1] })]);
    expect((await ctx.store.backupInfo(STANZA)).backups.map((b) => b.label)).toEqual([F2, F2_I1, F3]);
    // the partial backup on F3 is spared for the next backup to resume; the failed one is not
    expect(backupDirs()).toEqual([F2, F2_I1, F3, PARTIAL]);
    expect(report.removed).toEqual([`backup directory ${FAILED}`, '15-1/00000002.history', `15-1/${seg(1)}.00000028.backup`]);
    // kept: F2's and F2_I1's start..stop (older than the retention backup F3), and everything from F3's start on
    const kept = archived();
    const segments = kept.filter((f) => /^[0-9A-F]{16}\//.test(f)).map((f) => f.slice(17, 41));
    expect([...new Set(segments)]).toEqual([0x11, 0x12, 0x14, ...Array.from({ length: 10 }, (_, i) => 0x16 + i)].map((n) => seg(n)));
    expect(kept).toContain(`${seg(0x1a).slice(0, 16)}/${seg(0x1a)}.partial-${SHA}.gz`);
    expect(kept).toContain(`00000003.history-${SHA}.gz`);
    expect(kept).toContain(`${seg(0x16)}.00000028.backup-${SHA}.gz`);
    expect(fs.existsSync(path.join(root, 'archive', STANZA, '15-1', seg(0, 0).slice(0, 16))), 'log 0 removed whole').toBe(false);
    expect(report.wal!.map((w) => [w.start, w.stop, w.files])).toEqual([
      [seg(0xf0, 0), seg(0x10), 16 + 17], [seg(0x13), seg(0x13), 1], [seg(0x15), seg(0x15), 1],
    ]);
    expect(Number(report.wal_files)).toBe(35);
    expect(lines).toContain(`expire full backup ${F1}: repo-retention-full=2: 3 full backups, so the oldest 1 expires`);
    expect(lines).toContain(`expire incr backup ${F1_I1}: depends on ${F1}, which expires (repo-retention-full=2: 3 full backups, so the oldest 1 expires)`);
    expect(lines.some((l) => l.startsWith(`15-1: remove WAL ${seg(0xf0, 0)} to ${seg(0x10)} (33 files): older than ${F3}'s archive-start`))).toBe(true);
  });

  it('--dry-run reports the same and changes nothing', async () => {
    const before = listTree(root);
    const dry = await run({ full: 2, archive: 1 }, { dryRun: true });
    expect(listTree(root)).toEqual(before);
    expect(dry.lines.every((l) => l.startsWith('[dry-run] '))).toBe(true);
    const real = await run({ full: 2, archive: 1 });
    expect({ ...dry.report, dry_run: false }).toEqual(real.report);
  });

  it('--set of the latest full moves latest, and takes the partial backup that depends on it', async () => {
    const { report, lines } = await run({}, { set: F3 });
    expect(report.backups).toEqual([expect.objectContaining({ label: F3, set: [F3] })]);
    expect(fs.readlinkSync(path.join(root, 'backup', STANZA, 'latest'))).toBe(F2_I1);
    expect(backupDirs()).toEqual([F1, F1_D1, F1_I1, F2, F2_I1]);
    expect(lines.some((l) => /WARNING: expiring the latest backup/.test(l))).toBe(true);
    expect(lines.some((l) => /WARNING: option repo-retention-full is not set/.test(l))).toBe(true);
    // no archive retention: no WAL goes
    expect(Number(report.wal_files)).toBe(0);
  });

  it('drops from backup.info a backup whose manifest is gone (an interrupted expire), and expires nothing else without retention', async () => {
    fs.rmSync(path.join(root, 'backup', STANZA, F1_I1, 'backup.manifest'));
    fs.rmSync(path.join(root, 'backup', STANZA, F1_I1, 'backup.manifest.copy'));
    const { report } = await run({});
    expect(report.warnings!.some((w) => w.includes(`backup ${F1_I1} has no manifest`))).toBe(true);
    expect((await ctx.store.backupInfo(STANZA)).backups.map((b) => b.label)).toEqual([F1, F1_D1, F2, F2_I1, F3]);
    expect(backupDirs()).toEqual([F1, F1_D1, F2, F2_I1, F3, PARTIAL]);
  });
});
