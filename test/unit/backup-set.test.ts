/**
 * The server's backup set decisions on a real repository directory: which type and prior a
 * backup gets, and what resume keeps of a partial backup (and what it removes, and why).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../shared/log';
import type { BackupInfo, PgDb } from '../../shared/info/backup-info';
import type { Manifest, ManifestFile } from '../../shared/info/manifest';
import { PosixStorage } from '../../repo-server/storage/posix';
import { StanzaStore } from '../../repo-server/repo/stanza-store';
import type { ServerContext } from '../../repo-server/context';
import { chooseBackupType } from '../../repo-server/commands/backup-type';
import { prepareResume, removeStrays } from '../../repo-server/commands/backup-partial';
import { infoEntry, referenceChain } from '../../repo-server/commands/backup-manifest';

const STANZA = 'main';
const db1: PgDb = { id: 1, systemId: '7300000000000000001', version: '15', catalogVersion: 202209061, controlVersion: 1300 };
const db2: PgDb = { id: 2, systemId: '7300000000000000002', version: '15', catalogVersion: 202209061, controlVersion: 1300 };
const sha1 = (b: Buffer | string) => createHash('sha1').update(b).digest('hex');

function manifest(label: string, type: Manifest['backup']['type'], prior: string | null, db: PgDb, files: ManifestFile[] = [], reference: string[] = []): Manifest {
  return {
    backup: { label, type, prior, reference, timestampStart: 1, timestampCopyStart: 2, timestampStop: 3, lsnStart: '0/1', lsnStop: '0/2',
      archiveStart: '000000010000000000000001', archiveStop: '000000010000000000000001' },
    db,
    options: { compressType: 'gz', compressLevel: 6, processMax: 1, online: true, archiveCheck: true, delta: false, startFast: true, checksumPage: true },
    targets: [{ name: 'pg_data', path: '/pg', type: 'path' }],
    databases: [],
    paths: [{ name: 'pg_data', mode: '0700', user: 'postgres', group: 'postgres' }],
    links: [],
    files,
  };
}

function file(name: string, stored: Buffer, extra: Partial<ManifestFile> = {}): ManifestFile {
  return { name, size: 100, timestamp: 1000, mode: '0600', user: 'postgres', group: 'postgres', checksum: sha1(name),
    repoSize: stored.length, repoChecksum: sha1(stored), compressType: 'gz', ...extra };
}

describe('backup sets on a real repository', () => {
  let root: string;
  let ctx: ServerContext;
  let said: string[];
  const say = (_level: 'info' | 'warn', message: string) => { said.push(message); };

  beforeEach(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'pgrepo-set-'));
    const storage = new PosixStorage(root);
    ctx = { storage, store: new StanzaStore(storage), log: createLogger('test', 'silent') } as unknown as ServerContext;
    said = [];
  });
  afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

  /** Saves manifests and a backup.info listing them, on db `current`. */
  async function repo(manifests: Manifest[], current: PgDb = db1): Promise<BackupInfo> {
    for (const m of manifests) await ctx.store.saveManifest(STANZA, m);
    const info: BackupInfo = { current, history: current.id === 2 ? [db1, db2] : [db1], backups: manifests.map((m) => infoEntry(m)) };
    await ctx.store.saveBackupInfo(STANZA, info);
    return ctx.store.backupInfo(STANZA);
  }

  it('with no type: full when no full exists, else incr; a diff builds on the latest full, an incr on the latest backup', async () => {
    expect(await chooseBackupType(ctx, STANZA, await repo([]), '')).toMatchObject({ type: 'full', prior: null, notes: [expect.stringMatching(/no full backup exists/)] });
    const F = manifest('20260101-000000F', 'full', null, db1);
    const I = manifest('20260101-000000F_20260102-000000I', 'incr', F.backup.label, db1, [], [F.backup.label]);
    const info = await repo([F, I]);
    const auto = await chooseBackupType(ctx, STANZA, info, '');
    expect(auto.type).toBe('incr');
    expect(auto.prior?.backup.label).toBe(I.backup.label);
    expect(auto.notes.join('\n')).toContain(`incr backup, because full backup ${F.backup.label} exists`);
    expect((await chooseBackupType(ctx, STANZA, info, 'diff')).prior?.backup.label).toBe(F.backup.label);
    expect((await chooseBackupType(ctx, STANZA, info, 'full')).prior).toBeNull();
    await expect(chooseBackupType(ctx, STANZA, info, 'weekly')).rejects.toThrow(/must be full, diff or incr, not 'weekly'/);
  });

  it('a diff or incr with no prior of the current cluster becomes a full, and says why', async () => {
    expect(await chooseBackupType(ctx, STANZA, await repo([]), 'incr')).toMatchObject({
      type: 'full', warnings: ['no prior backup exists, incr backup has been changed to full'] });
    // backups of an earlier cluster (db-id 1) are not priors for the current one (db-id 2)
    const old = await repo([manifest('20260101-000000F', 'full', null, db1)], db2);
    expect((await chooseBackupType(ctx, STANZA, old, 'diff')).warnings[0]).toMatch(/backup\(s\) in the stanza are of an earlier cluster\), diff backup has been changed to full/);
    // a prior whose manifest names another system identifier
    const info = await repo([manifest('20260102-000000F', 'full', null, db1)]);
    await ctx.store.saveManifest(STANZA, manifest('20260102-000000F', 'full', null, { ...db1, systemId: '7399999999999999999' }));
    const choice = await chooseBackupType(ctx, STANZA, info, 'incr');
    expect(choice.type).toBe('full');
    expect(choice.warnings[0]).toMatch(/prior backup 20260102-000000F is of system identifier 7399999999999999999.*incr backup has been changed to full/);
  });

  it('the reference list of a set is its chain: the prior and everything the prior references', () => {
    const F = manifest('20260101-000000F', 'full', null, db1);
    const D = manifest('20260101-000000F_20260102-000000D', 'diff', F.backup.label, db1, [], [F.backup.label]);
    expect(referenceChain(null)).toEqual([]);
    expect(referenceChain(F)).toEqual([F.backup.label]);
    expect(referenceChain(D)).toEqual([F.backup.label, D.backup.label]);
  });

  describe('resume', () => {
    const LABEL = '20260105-000000F';
    const good = Buffer.from('stored bytes of a file that is fine');
    const bad = Buffer.from('stored bytes that were damaged later');

    /** A partial full backup: two recorded files (one damaged on disk since), an unrecorded one, a temp file. */
    async function partial(extra: Partial<Manifest['backup']> = {}): Promise<BackupInfo> {
      const info = await repo([]);
      const m = manifest(LABEL, 'full', null, db1, [file('pg_data/base/1/100', good), file('pg_data/base/1/200', bad)]);
      Object.assign(m.backup, extra);
      await ctx.store.savePartialManifest(STANZA, m);
      const dir = `backup/${STANZA}/${LABEL}`;
      await ctx.storage.writeAtomic(`${dir}/pg_data/base/1/100.gz`, good);
      await ctx.storage.writeAtomic(`${dir}/pg_data/base/1/200.gz`, Buffer.from('damaged'));
      await ctx.storage.writeAtomic(`${dir}/pg_data/base/1/300.gz`, good);
      fs.writeFileSync(path.join(root, dir, 'pg_data/base/1/400.gz.pgrepo.tmp.abcd'), 'half');
      return info;
    }

    it('keeps the stored files that verify and removes every other file', async () => {
      const info = await partial();
      const r = await prepareResume(ctx, STANZA, info, { type: 'full', prior: null, compressType: 'gz' }, true, say);
      expect(r?.label).toBe(LABEL);
      expect([...r!.kept.keys()]).toEqual(['pg_data/base/1/100']);
      expect(r!.removed).toBe(3);
      expect(await ctx.storage.listTree(`backup/${STANZA}/${LABEL}`)).toEqual(['backup.manifest.copy', 'pg_data/base/1/100.gz']);
      expect(said.join('\n')).toContain(`resumable backup ${LABEL} of the same type exists: 1 file(s) verified and kept, 3 invalid or unneeded file(s) removed`);
      // after the resumed backup, files it did not store again are strays
      await ctx.storage.writeAtomic(`backup/${STANZA}/${LABEL}/pg_data/base/1/500.gz`, good);
      expect(await removeStrays(ctx, STANZA, LABEL, [file('pg_data/base/1/500', good)])).toBe(1);
      expect(await ctx.storage.listTree(`backup/${STANZA}/${LABEL}`)).toEqual(['backup.manifest.copy', 'pg_data/base/1/500.gz']);
    });

    it('removes a partial backup of another type or prior, or with --no-resume, saying why', async () => {
      const cases: [Partial<Manifest['backup']>, boolean, RegExp][] = [
        [{}, false, /resume is disabled \(--no-resume\)/],
        [{ type: 'diff', prior: '20260101-000000F', reference: ['20260101-000000F'] }, true, /new backup type 'full' does not match resumable backup type 'diff'/],
      ];
      for (const [extra, resume, why] of cases) {
        said = [];
        const info = await partial(extra);
        expect(await prepareResume(ctx, STANZA, info, { type: 'full', prior: null, compressType: 'gz' }, resume, say)).toBeUndefined();
        expect(said.join('\n')).toMatch(new RegExp(`backup ${LABEL} cannot be resumed: ${why.source}; removing it`));
        expect(fs.existsSync(path.join(root, 'backup', STANZA, LABEL))).toBe(false);
      }
      said = [];
      const info = await partial();
      expect(await prepareResume(ctx, STANZA, info, { type: 'full', prior: null, compressType: 'none' }, true, say)).toBeUndefined();
      expect(said[0]).toMatch(/new compression 'none' does not match resumable compression 'gz'/);
    });

    it('removes a directory without a partial manifest, and leaves a complete one alone', async () => {
      const info = await repo([]);
      await ctx.storage.writeAtomic(`backup/${STANZA}/${LABEL}/pg_data/PG_VERSION.gz`, good);
      expect(await prepareResume(ctx, STANZA, info, { type: 'full', prior: null, compressType: 'gz' }, true, say)).toBeUndefined();
      expect(said[0]).toMatch(/it has no backup\.manifest\.copy/);
      expect(fs.existsSync(path.join(root, 'backup', STANZA, LABEL))).toBe(false);
      await ctx.store.saveManifest(STANZA, manifest(LABEL, 'full', null, db1));
      expect(await prepareResume(ctx, STANZA, info, { type: 'full', prior: null, compressType: 'gz' }, true, say)).toBeUndefined();
      expect(fs.existsSync(path.join(root, 'backup', STANZA, LABEL, 'backup.manifest'))).toBe(true);
    });
  });
});
