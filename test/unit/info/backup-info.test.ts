import { describe, expect, it } from 'vitest';
import { parseBackupInfo, renderBackupInfo, type BackupInfo, type BackupInfoEntry, type PgDb } from '../../../shared/info/backup-info';
import { InfoFileError, parseInfo, renderInfo } from '../../../shared/info/ini';

const BIG_ID = '7301234567890123456';
const pg15: PgDb = { id: 1, systemId: '6569239123849665679', version: '15', catalogVersion: 202209061, controlVersion: 1300 };
const pg16: PgDb = { id: 2, systemId: BIG_ID, version: '16', catalogVersion: 202307071, controlVersion: 1300 };

const full: BackupInfoEntry = {
  label: '20240101-120000F',
  type: 'full',
  prior: null,
  reference: [],
  timestampStart: 1704110400,
  timestampStop: 1704110460,
  lsnStart: '0/2000028',
  lsnStop: '0/2000138',
  archiveStart: '000000010000000000000002',
  archiveStop: '000000010000000000000002',
  size: 30_966_232,
  sizeDelta: 30_966_232,
  repoSize: 4_000_123,
  repoSizeDelta: 4_000_123,
  dbId: 1,
  compressType: 'zst',
  online: true,
  archiveCheck: true,
  backrestVersion: '0.0.9',
};

const diff: BackupInfoEntry = {
  ...full,
  label: '20240101-120000F_20240102-120000D',
  type: 'diff',
  prior: '20240101-120000F',
  reference: ['20240101-120000F'],
  timestampStart: 1704196800,
  timestampStop: 1704196810,
  sizeDelta: 8192,
  repoSizeDelta: 512,
  dbId: 2,
  backrestVersion: '0.1.0',
};

const offlineFailed: BackupInfoEntry = {
  ...full,
  label: '20240103-120000F',
  timestampStart: 1704283200,
  timestampStop: 1704283300,
  lsnStart: '',
  lsnStop: '',
  archiveStart: '',
  archiveStop: '',
  dbId: 2,
  compressType: 'none',
  online: false,
  archiveCheck: false,
  error: true,
  backrestVersion: '0.1.0',
};

const info: BackupInfo = { current: pg16, history: [pg15, pg16], backups: [full, diff, offlineFailed] };

function roundTrip(value: BackupInfo, version = '0.1.0'): BackupInfo {
  return parseBackupInfo(parseInfo(renderBackupInfo(value, version), 'backup.info'));
}

describe('backup.info', () => {
  it('round-trips every field, including optional ones absent and present', () => {
    expect(roundTrip(info)).toEqual(info);
    const text = renderBackupInfo(info, '0.1.0');
    expect(renderBackupInfo(parseBackupInfo(parseInfo(text, 'backup.info')), '0.1.0')).toBe(text);
  });

  it("uses pgBackRest's sections and keys", () => {
    const text = renderBackupInfo(info, '0.1.0');
    expect(text).toContain(
      '[db]\ndb-catalog-version=202307071\ndb-control-version=1300\ndb-id=2\n' + `db-system-id=${BIG_ID}\ndb-version="16"\n`,
    );
    expect(text).toContain(
      '[db:history]\n1={"db-catalog-version":202209061,"db-control-version":1300,"db-system-id":6569239123849665679,"db-version":"15"}\n',
    );
    expect(text).toContain(
      '20240101-120000F={"backrest-format":5,"backrest-version":"0.0.9",' +
        '"backup-archive-start":"000000010000000000000002","backup-archive-stop":"000000010000000000000002",' +
        '"backup-info-repo-size":4000123,"backup-info-repo-size-delta":4000123,"backup-info-size":30966232,"backup-info-size-delta":30966232,' +
        '"backup-lsn-start":"0/2000028","backup-lsn-stop":"0/2000138",' +
        '"backup-timestamp-start":1704110400,"backup-timestamp-stop":1704110460,"backup-type":"full","db-id":1,' +
        '"option-archive-check":true,"option-compress":true,"option-compress-type":"zst","option-online":true}\n',
    );
    expect(text).toContain('"backup-prior":"20240101-120000F","backup-reference":["20240101-120000F"]');
  });

  it('writes option-compress false only for compress type none, and backup-error only when known', () => {
    const sections = parseInfo(renderBackupInfo(info, '0.1.0'), 'backup.info');
    const current = sections['backup:current'] as Record<string, Record<string, unknown>>;
    expect(current[full.label]['option-compress']).toBe(true);
    expect(current[offlineFailed.label]['option-compress']).toBe(false);
    expect(current[offlineFailed.label]['backup-error']).toBe(true);
    expect('backup-error' in current[full.label]).toBe(false);
    expect('backup-lsn-start' in current[offlineFailed.label]).toBe(false);
  });

  it('keeps the version that made each backup, defaulting to the writing version', () => {
    const { backrestVersion: _, ...withoutVersion } = full;
    const back = roundTrip({ ...info, backups: [withoutVersion, diff] }, '9.9.9');
    expect(back.backups[0].backrestVersion).toBe('9.9.9');
    expect(back.backups[1].backrestVersion).toBe('0.1.0');
  });

  it('returns backups sorted by label whatever order they were given in', () => {
    const back = roundTrip({ ...info, backups: [offlineFailed, diff, full] });
    expect(back.backups.map((b) => b.label)).toEqual([full.label, diff.label, offlineFailed.label]);
  });

  it('reads a pgBackRest entry without option-compress-type as gzip or none', () => {
    const sections = parseInfo(renderBackupInfo(info, '0.1.0'), 'backup.info');
    const current = sections['backup:current'] as Record<string, Record<string, unknown>>;
    delete current[full.label]['option-compress-type'];
    delete current[offlineFailed.label]['option-compress-type'];
    const back = parseBackupInfo(parseInfo(renderInfo(sections, '2.20'), 'backup.info'));
    expect(back.backups[0].compressType).toBe('gz');
    expect(back.backups[2].compressType).toBe('none');
  });

  it('keeps a 19-digit system id exact in [db] and [db:history]', () => {
    const back = roundTrip(info);
    expect(back.current.systemId).toBe(BIG_ID);
    expect(back.history[1].systemId).toBe(BIG_ID);
  });

  it('rejects a backup whose db-id is not in the history, or with an unknown type', () => {
    expect(() => renderBackupInfo({ ...info, backups: [{ ...full, dbId: 7 }] }, 'v')).toThrow(/db-id 7/);
    const sections = parseInfo(renderBackupInfo(info, '0.1.0'), 'backup.info');
    const current = sections['backup:current'] as Record<string, Record<string, unknown>>;
    current[diff.label]['backup-type'] = 'partial';
    const err = (() => {
      try {
        parseBackupInfo(parseInfo(renderInfo(sections, '0.1.0'), 'backup.info'));
      } catch (e) {
        return e as InfoFileError;
      }
      return null;
    })();
    expect(err).toBeInstanceOf(InfoFileError);
    expect(err?.message).toBe(`backup.info [backup:current] ${diff.label}: 'backup-type' must be full, diff or incr, found 'partial'`);
  });

  it('reads an empty stanza (no backups yet)', () => {
    const empty: BackupInfo = { current: pg15, history: [pg15], backups: [] };
    const text = renderBackupInfo(empty, '0.1.0');
    expect(text).not.toContain('[backup:current]');
    expect(roundTrip(empty)).toEqual(empty);
  });
});
