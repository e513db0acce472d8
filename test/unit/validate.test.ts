import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  safeJoin,
  validateBackupLabel,
  validateManifestPath,
  validateStanzaName,
  validateWalFileName,
  ValidationError,
} from '../../shared/validate';

describe('validateStanzaName', () => {
  it.each(['main', 'db1', 'a', 'prod_eu-west.1', 'A'.repeat(64), '_x'])('accepts %j', (s) => {
    expect(validateStanzaName(s)).toBe(s);
  });

  it.each([
    '',
    '.',
    '..',
    '.hidden',
    '-rf',
    'a/b',
    '../x',
    'a b',
    'a\0b',
    'ünïcode',
    'a\\b',
    'A'.repeat(65),
  ])('rejects %j', (s) => {
    expect(() => validateStanzaName(s)).toThrow(ValidationError);
  });

  it('rejects non-strings with a ValidationError', () => {
    expect(() => validateStanzaName(undefined)).toThrow(ValidationError);
    expect(() => validateStanzaName(42)).toThrow(/must be a string/);
  });

  it('says what is allowed', () => {
    expect(() => validateStanzaName('-x')).toThrow(/1-64 characters/);
  });
});

describe('validateBackupLabel', () => {
  it.each(['20161219-212741F', '20161219-212741F_20161219-212803D', '20161219-212741F_20161220-000000I'])(
    'accepts %j',
    (s) => {
      expect(validateBackupLabel(s)).toBe(s);
    },
  );

  it.each([
    '',
    '20161219-212741',
    '20161219-212741D', // diff/incr labels always carry their full's label
    '20161219-212741F_20161219-212803F',
    '20161219-212741F_20161219-212803',
    '20161219-212741F_',
    '2016121-212741F',
    '20161219-212741F/../x',
    '../20161219-212741F',
    '20161319-212741F', // month 13
    '20161219-246000F', // hour 24
    '20161219-212741F_20161219-212799I', // second 99
    ' 20161219-212741F',
    '20161219-212741F\n',
  ])('rejects %j', (s) => {
    expect(() => validateBackupLabel(s)).toThrow(ValidationError);
  });
});

describe('validateManifestPath', () => {
  it.each([
    'pg_data',
    'pg_data/base/1/1259',
    'pg_data/postgresql.conf',
    'pg_data/a..b',
    'pg_data/..hidden',
    'pg_data/.x',
    'pg_tblspc/16384',
    'pg_tblspc/16384/PG_15_202209061/5/16390',
    'pg_tblspc/4294967295',
  ])('accepts and returns %j unchanged', (s) => {
    expect(validateManifestPath(s)).toBe(s);
  });

  it.each([
    ['..', /has a '\.\.' component/],
    ['../x', /has a '\.\.' component/],
    ['pg_data/../../etc/passwd', /has a '\.\.' component/],
    ['pg_data/..', /has a '\.\.' component/],
    ['pg_data/./x', /has a '\.' component/],
    ['/etc/passwd', /absolute/],
    ['/pg_data/x', /absolute/],
    ['a\0b', /NUL/],
    ['pg_data/a\0b', /NUL/],
    ['pg_data/a\nb', /control/],
    ['', /empty/],
    ['pg_data//x', /empty component/],
    ['pg_data/', /empty component/],
    ['pg_datax/y', /must start with/],
    ['etc/passwd', /must start with/],
    ['pg_tblspc', /must start with/],
    ['pg_tblspc/abc/x', /not a tablespace oid/],
    ['pg_tblspc/0', /not a tablespace oid/],
    ['pg_tblspc/016384', /not a tablespace oid/],
    ['pg_tblspc/4294967296', /not a tablespace oid/],
    ['pg_tblspc/../pg_data', /has a '\.\.' component/],
  ])('rejects %j', (s, message) => {
    expect(() => validateManifestPath(s)).toThrow(ValidationError);
    expect(() => validateManifestPath(s)).toThrow(message);
  });

  it('limits length to 4096 bytes', () => {
    const ok = `pg_data/${'a'.repeat(4096 - 'pg_data/'.length)}`;
    expect(validateManifestPath(ok)).toBe(ok);
    expect(() => validateManifestPath(`${ok}b`)).toThrow(/4096/);
    // multi-byte characters count by their UTF-8 size
    expect(() => validateManifestPath(`pg_data/${'é'.repeat(2045)}`)).toThrow(/4096/);
  });

  it('rejects non-strings', () => {
    expect(() => validateManifestPath(null)).toThrow(ValidationError);
    expect(() => validateManifestPath(['pg_data'])).toThrow(ValidationError);
  });
});

describe('validateWalFileName', () => {
  it.each([
    '000000010000000000000001',
    '0000000A00000001000000FF',
    '000000010000000000000001.partial',
    '00000002.history',
    '000000010000000000000002.00000028.backup',
  ])('accepts %j', (s) => {
    expect(validateWalFileName(s)).toBe(s);
  });

  it.each([
    '',
    '00000001000000000000001',
    '0000000100000000000000001',
    '000000010000000000000001.gz',
    '000000010000000000000001.PARTIAL',
    '0000000a0000000000000001', // PostgreSQL writes upper-case hex
    '00000002.History',
    '0000002.history',
    '000000010000000000000002.0000028.backup',
    '../000000010000000000000001',
    '000000010000000000000001/..',
    '000000010000000000000001\0',
    'archive_status',
  ])('rejects %j', (s) => {
    expect(() => validateWalFileName(s)).toThrow(ValidationError);
  });
});

describe('safeJoin', () => {
  const root = '/srv/repo/backup/main';

  it('joins paths that stay under root', () => {
    expect(safeJoin(root, 'pg_data/base/1/1259')).toBe('/srv/repo/backup/main/pg_data/base/1/1259');
    expect(safeJoin(root, 'a/../b')).toBe('/srv/repo/backup/main/b');
    expect(safeJoin(root, '..x')).toBe('/srv/repo/backup/main/..x');
    expect(safeJoin(root, '')).toBe(root);
    expect(safeJoin('/srv/repo/backup/main/', 'x')).toBe('/srv/repo/backup/main/x');
    expect(safeJoin('/', 'etc')).toBe('/etc');
  });

  it.each(['..', '../x', 'pg_data/../../etc/passwd', '/etc/passwd', '../main2/x', 'a/../../main2'])(
    'refuses %j',
    (rel) => {
      expect(() => safeJoin(root, rel)).toThrow(ValidationError);
    },
  );

  it('refuses a sibling directory that shares the root as a prefix', () => {
    expect(() => safeJoin(root, '../main-evil/x')).toThrow(/escapes/);
  });

  it('refuses NUL', () => {
    expect(() => safeJoin(root, 'a\0b')).toThrow(ValidationError);
  });

  it('resolves a relative root against the working directory', () => {
    expect(safeJoin('repo', 'x')).toBe(path.resolve('repo', 'x'));
    expect(() => safeJoin('repo', '../x')).toThrow(ValidationError);
  });
});
