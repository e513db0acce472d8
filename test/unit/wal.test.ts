import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  archiveSubdir,
  formatLsn,
  isBackupHistoryName,
  isHistoryName,
  isPartialName,
  isSegmentName,
  lsnToSegmentName,
  parseLsn,
  parseSegmentName,
  readWalLongHeader,
  segmentName,
  segmentsBetween,
  versionToWalMagic,
  walMagicToVersion,
} from '../../shared/wal';

const MiB = 1024 * 1024;

describe('segment names', () => {
  it('parses and formats', () => {
    expect(parseSegmentName('0000000A00000001000000FF')).toEqual({ timeline: 10, log: 1, seg: 255 });
    expect(segmentName(10, 1, 255)).toBe('0000000A00000001000000FF');
    expect(segmentName(0xffffffff, 0xffffffff, 0)).toBe('FFFFFFFFFFFFFFFF00000000');
  });

  it('round-trips', () => {
    for (const name of ['000000010000000000000001', '00000003000000FF000000FE', 'FFFFFFFFFFFFFFFFFFFFFFFF']) {
      const { timeline, log, seg } = parseSegmentName(name);
      expect(segmentName(timeline, log, seg)).toBe(name);
    }
  });

  it('rejects malformed names and out-of-range parts', () => {
    expect(() => parseSegmentName('000000010000000000000001.partial')).toThrow(/not a WAL segment name/);
    expect(() => parseSegmentName('0000000100000000000000ff')).toThrow();
    expect(() => segmentName(1, -1, 0)).toThrow(RangeError);
    expect(() => segmentName(1, 0, 2 ** 32)).toThrow(RangeError);
    expect(() => segmentName(1.5, 0, 0)).toThrow(RangeError);
  });

  it('classifies file names', () => {
    expect(isSegmentName('000000010000000000000001')).toBe(true);
    expect(isSegmentName('000000010000000000000001.partial')).toBe(false);
    expect(isPartialName('000000010000000000000001.partial')).toBe(true);
    expect(isPartialName('000000010000000000000001')).toBe(false);
    expect(isHistoryName('00000002.history')).toBe(true);
    expect(isHistoryName('000000010000000000000002.history')).toBe(false);
    expect(isBackupHistoryName('000000010000000000000002.00000028.backup')).toBe(true);
    expect(isBackupHistoryName('000000010000000000000002.backup')).toBe(false);
  });

  it('derives the archive sub-directory like pgBackRest', () => {
    expect(archiveSubdir('000000010000000200000003')).toBe('0000000100000002');
    expect(archiveSubdir('000000010000000200000003.partial')).toBe('0000000100000002');
    expect(archiveSubdir('000000010000000200000003.00000028.backup')).toBe('0000000100000002');
    expect(() => archiveSubdir('00000002.history')).toThrow(/sub-directory/);
    expect(() => archiveSubdir('../../../../etc/passwd')).toThrow();
  });
});

describe('segmentsBetween', () => {
  it('crosses a log id boundary with 16 MiB segments (256 per log id)', () => {
    const list = segmentsBetween('0000000100000000000000FE', '000000010000000100000001', 16 * MiB);
    expect(list).toEqual([
      '0000000100000000000000FE',
      '0000000100000000000000FF',
      '000000010000000100000000',
      '000000010000000100000001',
    ]);
  });

  it('uses 4096 segments per log id with 1 MiB segments', () => {
    const list = segmentsBetween('000000010000000000000FFF', '000000010000000100000000', MiB);
    expect(list).toEqual(['000000010000000000000FFF', '000000010000000100000000']);
  });

  it('uses 4 segments per log id with 1 GiB segments', () => {
    const list = segmentsBetween('000000010000000000000003', '000000010000000100000000', 1024 * MiB);
    expect(list).toEqual(['000000010000000000000003', '000000010000000100000000']);
  });

  it('returns one name when start equals stop', () => {
    expect(segmentsBetween('000000020000000300000004', '000000020000000300000004', 16 * MiB)).toEqual([
      '000000020000000300000004',
    ]);
  });

  it('throws when stop is before start', () => {
    expect(() => segmentsBetween('000000010000000100000000', '0000000100000000000000FF', 16 * MiB)).toThrow(/before/);
  });

  it('names the range on the stop timeline when the timeline switched during the backup', () => {
    expect(segmentsBetween('0000000100000000000000FF', '000000020000000100000001', 16 * MiB)).toEqual([
      '0000000200000000000000FF',
      '000000020000000100000000',
      '000000020000000100000001',
    ]);
  });

  it('rejects segment numbers impossible for the segment size', () => {
    expect(() => segmentsBetween('000000010000000000000100', '000000010000000000000101', 16 * MiB)).toThrow(
      /segments per log id/,
    );
  });

  it('rejects invalid segment sizes', () => {
    for (const size of [0, 1000, 3 * MiB, 512 * 1024, 2048 * MiB]) {
      expect(() => segmentsBetween('000000010000000000000001', '000000010000000000000001', size)).toThrow(RangeError);
    }
  });
});

describe('LSNs', () => {
  it('parses and formats like PostgreSQL', () => {
    expect(parseLsn('0/3000028')).toBe(0x3000028n);
    expect(parseLsn('16/B374D848')).toBe(0x16b374d848n);
    expect(parseLsn('ffffffff/ffffffff')).toBe((1n << 64n) - 1n);
    expect(formatLsn(0x3000028n)).toBe('0/3000028');
    expect(formatLsn(0x16b374d848n)).toBe('16/B374D848');
    expect(formatLsn(0n)).toBe('0/0');
  });

  it('rejects malformed LSNs', () => {
    for (const bad of ['', '0', '0/', '/0', '0/123456789', '123456789/0', 'g/0', '0/0/0', ' 0/0', '-1/0']) {
      expect(() => parseLsn(bad), bad).toThrow(/invalid LSN/);
    }
    expect(() => formatLsn(-1n)).toThrow(RangeError);
    expect(() => formatLsn(1n << 64n)).toThrow(RangeError);
  });

  it('maps an LSN to its segment', () => {
    expect(lsnToSegmentName('0/3000028', 1, 16 * MiB)).toBe('000000010000000000000003');
    expect(lsnToSegmentName('0/2FFFFFF', 1, 16 * MiB)).toBe('000000010000000000000002');
    expect(lsnToSegmentName('0/3000000', 1, 16 * MiB)).toBe('000000010000000000000003');
    expect(lsnToSegmentName('16/B374D848', 2, 16 * MiB)).toBe('0000000200000016000000B3');
    expect(lsnToSegmentName('1/FFFFF', 1, MiB)).toBe('000000010000000100000000');
    expect(lsnToSegmentName('1/100000', 1, MiB)).toBe('000000010000000100000001');
    expect(lsnToSegmentName('FFFFFFFF/FFFFFFFF', 1, 64 * MiB)).toBe('00000001FFFFFFFF0000003F');
  });
});

describe('WAL magic', () => {
  it('maps each supported major version both ways', () => {
    const expected: [string, number][] = [
      ['12', 0xd101],
      ['13', 0xd106],
      ['14', 0xd10d],
      ['15', 0xd110],
      ['16', 0xd113],
      ['17', 0xd116],
    ];
    for (const [version, magic] of expected) {
      expect(walMagicToVersion(magic)).toBe(version);
      expect(versionToWalMagic(version)).toBe(magic);
    }
    expect(walMagicToVersion(0xd0ff)).toBeUndefined();
    expect(versionToWalMagic('11')).toBeUndefined();
  });
});

function syntheticHeader(): Buffer {
  const buf = Buffer.alloc(8192);
  buf.writeUInt16LE(0xd110, 0);
  buf.writeUInt16LE(0x0007, 2); // XLP_FIRST_IS_CONTRECORD | XLP_LONG_HEADER | XLP_BKP_REMOVABLE
  buf.writeUInt32LE(3, 4);
  buf.writeBigUInt64LE(0x16b3000000n, 8);
  buf.writeUInt32LE(77, 16);
  buf.writeBigUInt64LE(18446744073709551615n, 24);
  buf.writeUInt32LE(16 * MiB, 32);
  buf.writeUInt32LE(8192, 36);
  return buf;
}

describe('readWalLongHeader', () => {
  it('decodes every field, including a system id above 2^63', () => {
    expect(readWalLongHeader(syntheticHeader())).toEqual({
      magic: 0xd110,
      info: 7,
      timeline: 3,
      pageAddr: 0x16b3000000n,
      systemId: '18446744073709551615',
      segmentSize: 16 * MiB,
      blockSize: 8192,
    });
  });

  it('rejects a short buffer', () => {
    expect(() => readWalLongHeader(syntheticHeader().subarray(0, 39))).toThrow(/40 bytes, got 39/);
    expect(() => readWalLongHeader(Buffer.alloc(0))).toThrow(/got 0/);
  });

  it('rejects a page without the long-header flag', () => {
    const buf = syntheticHeader();
    buf.writeUInt16LE(0x0005, 2);
    expect(() => readWalLongHeader(buf)).toThrow(/XLP_LONG_HEADER/);
  });
});

const PG_BIN = '/usr/lib/postgresql/15/bin';
const haveInitdb = existsSync(path.join(PG_BIN, 'initdb'));

describe.skipIf(!haveInitdb)('readWalLongHeader against a real PostgreSQL 15 segment', () => {
  let tmp = '';
  let pgData = '';
  let control: Map<string, string>;

  // initdb refuses to run as root, so when we are root it runs as postgres in a directory postgres owns.
  function runAsOwner(cmd: string, args: string[]): string {
    const asRoot = process.getuid?.() === 0;
    const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
    return execFileSync(file, argv, { encoding: 'utf8', env: { ...process.env, LANG: 'C', LC_ALL: 'C' } });
  }

  beforeAll(async () => {
    tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'pgrepo-wal-'));
    if (process.getuid?.() === 0) execFileSync('chown', ['postgres', tmp]);
    pgData = path.join(tmp, 'data');
    // -N: no fsync, a 1 MiB segment size proves the header's size field is read rather than assumed
    runAsOwner(path.join(PG_BIN, 'initdb'), ['-N', '-A', 'trust', '--wal-segsize=1', '-D', pgData]);
    const out = runAsOwner(path.join(PG_BIN, 'pg_controldata'), [pgData]);
    control = new Map(
      out
        .split('\n')
        .filter((line) => line.includes(':'))
        .map((line) => [line.slice(0, line.indexOf(':')).trim(), line.slice(line.indexOf(':') + 1).trim()]),
    );
  });

  afterAll(async () => {
    if (tmp !== '') await fs.rm(tmp, { recursive: true, force: true });
  });

  it('matches pg_controldata', async () => {
    // The REDO segment was written by this cluster; later segments may be recycled files with stale headers.
    const segSize = Number(control.get('Bytes per WAL segment'));
    const redoFile = control.get("Latest checkpoint's REDO WAL file")!;
    const redoLsn = control.get("Latest checkpoint's REDO location")!;
    expect(segSize).toBe(MiB);
    expect(lsnToSegmentName(redoLsn, 1, segSize)).toBe(redoFile);

    const handle = await fs.open(path.join(pgData, 'pg_wal', redoFile), 'r');
    const buf = Buffer.alloc(64);
    await handle.read(buf, 0, 64, 0);
    await handle.close();
    const header = readWalLongHeader(buf);

    const { timeline, log, seg } = parseSegmentName(redoFile);
    expect(walMagicToVersion(header.magic)).toBe('15');
    expect(header.systemId).toBe(control.get('Database system identifier'));
    expect(header.timeline).toBe(timeline);
    expect(header.pageAddr).toBe((BigInt(log) << 32n) + BigInt(seg) * BigInt(segSize));
    expect(header.segmentSize).toBe(segSize);
    expect(header.blockSize).toBe(Number(control.get('WAL block size')));
  });
});
