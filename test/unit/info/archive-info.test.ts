import { describe, expect, it } from 'vitest';
import { archiveId, parseArchiveInfo, renderArchiveInfo, type ArchiveInfo, type PgDb } from '../../../shared/info/archive-info';
import { InfoFileError, parseInfo, renderInfo } from '../../../shared/info/ini';

const BIG_ID = '7301234567890123456';

function db(id: number, systemId: string, version: string): PgDb {
  return { id, systemId, version, catalogVersion: 0, controlVersion: 0 };
}

const upgraded: ArchiveInfo = {
  current: db(2, BIG_ID, '16'),
  history: [db(1, '6569239123849665679', '15'), db(2, BIG_ID, '16')],
};

function roundTrip(info: ArchiveInfo): ArchiveInfo {
  return parseArchiveInfo(parseInfo(renderArchiveInfo(info, '0.1.0'), 'archive.info'));
}

function parseError(sections: Record<string, Record<string, unknown>>): InfoFileError {
  try {
    parseArchiveInfo(parseInfo(renderInfo(sections, '0.1.0'), 'archive.info'));
  } catch (err) {
    expect(err).toBeInstanceOf(InfoFileError);
    return err as InfoFileError;
  }
  throw new Error('expected parseArchiveInfo to fail');
}

describe('archive.info', () => {
  it("is written in pgBackRest's layout, the system id as bare digits under the history's 'db-id'", () => {
    const text = renderArchiveInfo(upgraded, '0.1.0');
    expect(text.slice(text.indexOf('[db]'))).toBe(
      '[db]\n' +
        'db-id=2\n' +
        `db-system-id=${BIG_ID}\n` +
        'db-version="16"\n' +
        '\n' +
        '[db:history]\n' +
        '1={"db-id":6569239123849665679,"db-version":"15"}\n' +
        `2={"db-id":${BIG_ID},"db-version":"16"}\n`,
    );
  });

  it('round-trips, keeping a 19-digit system id exact', () => {
    const back = roundTrip(upgraded);
    expect(back).toEqual(upgraded);
    expect(back.current.systemId).toBe(BIG_ID);
    expect(back.history[0].systemId).toBe('6569239123849665679');
  });

  it('reads the archive.info from pgBackRest test suite byte for byte', () => {
    const text =
      '[backrest]\n' +
      'backrest-checksum="b34b238ce89d8e1365c9e392ce59e7b03342ceb9"\n' +
      'backrest-format=5\n' +
      'backrest-version="2.04dev"\n' +
      '\n' +
      '[db]\n' +
      'db-id=1\n' +
      'db-system-id=6569239123849665679\n' +
      'db-version="9.4"\n' +
      '\n' +
      '[db:history]\n' +
      '1={"db-id":6569239123849665679,"db-version":"9.4"}\n';
    const info = parseArchiveInfo(parseInfo(text, 'archive.info'));
    expect(info.current).toEqual(db(1, '6569239123849665679', '9.4'));
    expect(archiveId(info.current)).toBe('9.4-1');
    expect(renderArchiveInfo(info, '2.04dev')).toBe(text);
  });

  it('sorts history by id even where the file order is textual (10 before 9)', () => {
    const history = Array.from({ length: 11 }, (_, i) => db(i + 1, String(1000 + i), '15'));
    const info = { current: history[10], history };
    const text = renderArchiveInfo(info, '0.1.0');
    expect(text.indexOf('\n10=')).toBeLessThan(text.indexOf('\n9='));
    expect(roundTrip(info).history.map((h) => h.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });

  it('computes the archive id as <version>-<history id>', () => {
    expect(archiveId(db(1, '1', '15'))).toBe('15-1');
    expect(archiveId(db(3, '1', '9.6'))).toBe('9.6-3');
  });

  it('refuses to write a current db that is not in the history', () => {
    expect(() => renderArchiveInfo({ current: db(3, BIG_ID, '16'), history: upgraded.history }, 'v')).toThrow(/no history entry/);
    expect(() => renderArchiveInfo({ current: db(1, '6569239123849665679', '15'), history: upgraded.history }, 'v')).toThrow(/not the newest/);
    expect(() => renderArchiveInfo({ current: db(2, '1', '16'), history: upgraded.history }, 'v')).toThrow(/differs/);
    expect(() => renderArchiveInfo({ current: db(1, 'abc', '15'), history: [db(1, 'abc', '15')] }, 'v')).toThrow(/not an unsigned integer/);
  });

  it('rejects files whose [db] and [db:history] disagree or are incomplete, naming the problem', () => {
    const history = { '1': { 'db-id': 5n, 'db-version': '15' } };
    expect(parseError({ db: { 'db-id': 1, 'db-system-id': 6n, 'db-version': '15' }, 'db:history': history }).message).toMatch(
      /^archive.info: current db .* differs from its history entry/,
    );
    expect(parseError({ db: { 'db-id': 1, 'db-version': '15' }, 'db:history': history }).message).toBe(
      "archive.info [db]: 'db-system-id' is missing",
    );
    expect(parseError({ db: { 'db-id': 1, 'db-system-id': 5n, 'db-version': '15' }, 'db:history': { x: {} } }).message).toBe(
      "archive.info [db:history]: history id 'x' is not a number",
    );
    expect(parseError({ db: { 'db-id': 1, 'db-system-id': 5n, 'db-version': 15 }, 'db:history': history }).code).toBe('invalid');
  });
});
