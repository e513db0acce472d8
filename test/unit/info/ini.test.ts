import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  InfoFileError,
  InfoReader,
  loadInfoFile,
  parseInfo,
  parseJson,
  renderInfo,
  renderJson,
  saveInfoFile,
  type InfoSections,
} from '../../../shared/info/ini';

const VERSION = '0.1.0';

/** An in-memory store standing in for the repository; `null` means missing, like the real reader. */
function memoryStore(initial: Record<string, string> = {}) {
  const files = new Map<string, Buffer>(Object.entries(initial).map(([k, v]) => [k, Buffer.from(v)]));
  const writes: string[] = [];
  return {
    files,
    writes,
    read: async (path: string) => files.get(path) ?? null,
    write: async (path: string, data: Buffer) => {
      writes.push(path);
      files.set(path, data);
    },
  };
}

function catchError(fn: () => unknown): InfoFileError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InfoFileError);
    return err as InfoFileError;
  }
  throw new Error('expected an InfoFileError');
}

async function catchAsync(promise: Promise<unknown>): Promise<InfoFileError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(InfoFileError);
  return err as InfoFileError;
}

const sample: InfoSections = {
  db: { 'db-version': '15', 'db-id': 1, 'db-system-id': 7301234567890123456n },
  'db:history': { '1': { 'db-version': '15', 'db-id': 7301234567890123456n } },
};

describe('renderInfo', () => {
  it('writes pgBackRest layout: sorted sections and keys, backrest header first, blank line between sections', () => {
    const text = renderInfo(sample, VERSION);
    const checksum = /backrest-checksum="([0-9a-f]{40})"/.exec(text)?.[1];
    expect(text).toBe(
      '[backrest]\n' +
        `backrest-checksum="${checksum}"\n` +
        'backrest-format=5\n' +
        `backrest-version="${VERSION}"\n` +
        '\n' +
        '[db]\n' +
        'db-id=1\n' +
        'db-system-id=7301234567890123456\n' +
        'db-version="15"\n' +
        '\n' +
        '[db:history]\n' +
        '1={"db-id":7301234567890123456,"db-version":"15"}\n',
    );
  });

  it('computes the checksum over the canonical JSON rendering, excluding the checksum key', () => {
    const text = renderInfo(sample, VERSION);
    const canonical =
      `{"backrest":{"backrest-format":5,"backrest-version":"${VERSION}"},` +
      '"db":{"db-id":1,"db-system-id":7301234567890123456,"db-version":"15"},' +
      '"db:history":{"1":{"db-id":7301234567890123456,"db-version":"15"}}}';
    const expected = createHash('sha1').update(canonical).digest('hex');
    expect(text).toContain(`backrest-checksum="${expected}"`);
  });

  it("matches a checksum pgBackRest itself computed (its test suite's archive.info)", () => {
    const text = renderInfo(
      {
        db: { 'db-id': 1, 'db-system-id': 6569239123849665679n, 'db-version': '9.4' },
        'db:history': { '1': { 'db-id': 6569239123849665679n, 'db-version': '9.4' } },
      },
      '2.04dev',
    );
    expect(text).toContain('backrest-checksum="b34b238ce89d8e1365c9e392ce59e7b03342ceb9"');
  });

  it('refuses a [backrest] section, unsafe integers and odd section names', () => {
    expect(() => renderInfo({ backrest: { x: 1 } }, VERSION)).toThrow(/backrest/);
    expect(() => renderInfo({ db: { n: 2 ** 60 } }, VERSION)).toThrow(/bigint/);
    expect(() => renderInfo({ db: { n: Number.NaN } }, VERSION)).toThrow();
    expect(() => renderInfo({ 'a]b': { n: 1 } }, VERSION)).toThrow(/section name/);
  });

  it('leaves out empty sections and undefined values', () => {
    const text = renderInfo({ empty: {}, s: { a: 1, b: undefined, c: { d: undefined, e: 2 } } }, VERSION);
    expect(text).not.toContain('[empty]');
    expect(text).toContain('[s]\na=1\nc={"e":2}\n');
    expect(parseInfo(text, 'x.info')).toEqual({ s: { a: 1, c: { e: 2 } } });
  });
});

describe('parseInfo', () => {
  it('round-trips values of every JSON type', () => {
    const sections: InfoSections = {
      a: { str: 'quote " backslash \\ newline \n tab \t unicode é ☃ 😀', n: -42, f: 1.5, t: true, f2: false, nul: null },
      b: { arr: ['x', 1, [2, { z: 3 }]], obj: { nested: { deep: ['y'] } }, empty: {}, emptyArr: [] },
    };
    const text = renderInfo(sections, VERSION);
    expect(parseInfo(text, 'x.info')).toEqual(sections);
    expect(renderInfo(parseInfo(text, 'x.info'), VERSION)).toBe(text);
  });

  it('keeps integers beyond 15 digits as exact digit strings, at any depth', () => {
    const text = renderInfo(sample, VERSION);
    const parsed = parseInfo(text, 'archive.info');
    expect(parsed.db['db-system-id']).toBe('7301234567890123456');
    expect((parsed['db:history']['1'] as Record<string, unknown>)['db-id']).toBe('7301234567890123456');
    // the naive route rounds; the whole point is that we do not take it
    expect(String(JSON.parse('7301234567890123456'))).not.toBe('7301234567890123456');
  });

  it('does not disturb long digit runs inside strings, or short numbers', () => {
    expect(parseJson('{"s":"id 12345678901234567890 \\" 99999999999999999","n":123456789012345,"m":-12345678901234567}')).toEqual({
      s: 'id 12345678901234567890 " 99999999999999999',
      n: 123456789012345,
      m: '-12345678901234567',
    });
    expect(parseJson('1234567890123456.5')).toBe(1234567890123456.5);
  });

  it('handles keys that would be misread bare (=, leading quote or bracket, spaces)', () => {
    const keys = ['pg_data/a=b', '"quoted"', '[bracket', ' spaced ', '#hash', '', 'line\nbreak', '__proto__', 'constructor'];
    const section: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
    keys.forEach((key, i) => (section[key] = i));
    const text = renderInfo({ files: section }, VERSION);
    const parsed = parseInfo(text, 'm');
    expect(Object.keys(parsed.files).sort()).toEqual([...keys].sort());
    keys.forEach((key, i) => expect(parsed.files[key]).toBe(i));
    expect(Object.getPrototypeOf(parsed.files)).toBeNull();
  });

  it('accepts CRLF line endings and comment lines', () => {
    const text = renderInfo(sample, VERSION);
    expect(parseInfo(`# written by hand\n${text.replace(/\n/g, '\r\n')}`, 'x')).toEqual(parseInfo(text, 'x'));
  });

  it('accepts sections and keys in any order, since the checksum is over the sorted form', () => {
    const text = renderInfo(sample, VERSION);
    const shuffled =
      '[db:history]\n1={"db-id":7301234567890123456,"db-version":"15"}\n\n' +
      '[db]\ndb-version="15"\ndb-system-id=7301234567890123456\ndb-id=1\n\n' +
      `[backrest]\nbackrest-version="${VERSION}"\nbackrest-format=5\n` +
      text.match(/backrest-checksum=.*\n/)![0];
    expect(parseInfo(shuffled, 'x')).toEqual(parseInfo(text, 'x'));
  });

  it('verifies the checksum in a file written by hand, as a cross-check of the algorithm', () => {
    const text = withChecksum('[backrest]\nbackrest-format=5\nbackrest-version="x"\n\n[z]\nb=[1,"two"]\na={"k":true}\n\n[m]\nv=null\n');
    expect(parseInfo(text, 'x')).toEqual({ z: { a: { k: true }, b: [1, 'two'] }, m: { v: null } });
  });

  it('detects a changed value with a message naming both checksums', () => {
    const text = renderInfo(sample, VERSION);
    const expected = /backrest-checksum="([0-9a-f]+)"/.exec(text)![1];
    const err = catchError(() => parseInfo(text.replace('db-version="15"', 'db-version="16"'), 'backup.info'));
    expect(err.code).toBe('checksum');
    expect(err.message).toMatch(new RegExp(`^backup.info: invalid checksum, actual '[0-9a-f]{40}' but expected '${expected}' \\(the file was modified or damaged\\)$`));
  });

  it('detects an added key, a removed key and a whitespace change inside a value', () => {
    const text = renderInfo(sample, VERSION);
    expect(catchError(() => parseInfo(text.replace('[db]\n', '[db]\nextra=1\n'), 'x')).code).toBe('checksum');
    expect(catchError(() => parseInfo(text.replace('db-id=1\n', ''), 'x')).code).toBe('checksum');
    expect(catchError(() => parseInfo(text.replace('{"db-id":', '{ "db-id":'), 'x')).code).toBe('checksum');
  });

  it('detects a tampered checksum and a missing checksum', () => {
    const text = renderInfo(sample, VERSION);
    expect(catchError(() => parseInfo(text.replace(/checksum="[0-9a-f]{4}/, 'checksum="0000'), 'x')).code).toBe('checksum');
    const err = catchError(() => parseInfo(text.replace(/backrest-checksum=.*\n/, ''), 'backup.info'));
    expect(err.code).toBe('checksum');
    expect(err.message).toMatch(/^backup.info: no backrest-checksum/);
  });

  it('rejects another format with a checksum that is otherwise right', () => {
    const text = withChecksum(renderInfo(sample, VERSION).replace('backrest-format=5', 'backrest-format=4'));
    const err = catchError(() => parseInfo(text, 'archive.info'));
    expect(err.code).toBe('format');
    expect(err.message).toContain('expected backrest-format 5 but found 4');
  });

  it('names the line of a syntax error', () => {
    const text = renderInfo(sample, VERSION);
    const lines = text.split('\n');
    lines.splice(7, 0, 'this line is garbage');
    const err = catchError(() => parseInfo(lines.join('\n'), 'backup.info'));
    expect(err.code).toBe('syntax');
    expect(err.message).toBe("backup.info: syntax error at line 8: expected '[section]' or 'key=value' but found 'this line is garbage'");
  });

  it('names the line of a value that is not JSON, a key outside any section and a duplicate key', () => {
    // the checksum is right, so it is the JSON itself that must be reported
    const broken = withChecksum('[backrest]\nbackrest-format=5\n[a]\nx=1\ny={broken\n');
    expect(catchError(() => parseInfo(broken, 'f')).message).toMatch(/^f: syntax error at line 5: value of 'y' in \[a\] is not valid JSON/);
    expect(catchError(() => parseInfo('x=1\n[a]\n', 'f')).message).toBe("f: syntax error at line 1: 'x' appears before any [section]");
    expect(catchError(() => parseInfo('[a]\nx=1\n\n[a]\nx=2\n', 'f')).message).toBe("f: syntax error at line 5: duplicate key 'x' in [a] (first at line 2)");
  });

  it('says so when a file is empty', () => {
    const err = catchError(() => parseInfo('\n', 'backup.info'));
    expect(err.message).toContain('empty');
  });
});

describe('saveInfoFile / loadInfoFile', () => {
  const path = '/repo/backup/main/backup.info';

  it('writes the file and then its copy, with the same bytes', async () => {
    const store = memoryStore();
    const text = renderInfo(sample, VERSION);
    await saveInfoFile(store.write, path, text);
    expect(store.writes).toEqual([path, `${path}.copy`]);
    expect(store.files.get(path)?.toString()).toBe(text);
    expect(store.files.get(`${path}.copy`)?.toString()).toBe(text);
    expect(await loadInfoFile(store.read, path)).toEqual(parseInfo(text, path));
  });

  it('prefers the main file when both load', async () => {
    const main = renderInfo({ s: { which: 'main' } }, VERSION);
    const copy = renderInfo({ s: { which: 'copy' } }, VERSION);
    const store = memoryStore({ [path]: main, [`${path}.copy`]: copy });
    expect((await loadInfoFile(store.read, path)).s.which).toBe('main');
  });

  it('falls back to the copy when the main file is missing', async () => {
    const store = memoryStore({ [`${path}.copy`]: renderInfo({ s: { which: 'copy' } }, VERSION) });
    expect((await loadInfoFile(store.read, path)).s.which).toBe('copy');
  });

  it('falls back to the copy when the main file is damaged or torn', async () => {
    const good = renderInfo({ s: { which: 'copy' } }, VERSION);
    for (const damaged of [good.replace('copy', 'main'), good.slice(0, good.length / 2), '']) {
      const store = memoryStore({ [path]: damaged, [`${path}.copy`]: good });
      expect((await loadInfoFile(store.read, path)).s.which).toBe('copy');
    }
  });

  it('falls back to the copy when reading the main file fails', async () => {
    const good = renderInfo({ s: { which: 'copy' } }, VERSION);
    const read = async (p: string) => {
      if (p === path) throw new Error('EIO: i/o error');
      return Buffer.from(good);
    };
    expect((await loadInfoFile(read, path)).s.which).toBe('copy');
  });

  it("reports code 'missing' when neither file exists", async () => {
    const err = await catchAsync(loadInfoFile(memoryStore().read, path));
    expect(err.code).toBe('missing');
    expect(err.message).toBe(`unable to load info file '${path}' or '${path}.copy': neither exists`);
    expect(err.causes).toHaveLength(2);
  });

  it("reports code 'damaged' and both errors when neither file loads", async () => {
    const text = renderInfo(sample, VERSION);
    const store = memoryStore({ [path]: text.replace('"15"', '"14"'), [`${path}.copy`]: 'garbage\n' });
    const err = await catchAsync(loadInfoFile(store.read, path));
    expect(err.code).toBe('damaged');
    expect(err.message).toContain(`unable to load info file '${path}' or '${path}.copy':`);
    expect(err.message).toContain(`${path}: invalid checksum`);
    expect(err.message).toContain(`${path}.copy: syntax error at line 1`);
    expect(err.causes.map((c) => (c as InfoFileError).code)).toEqual(['checksum', 'syntax']);
  });

  it("reports 'damaged', not 'missing', when one is missing and the other damaged", async () => {
    const store = memoryStore({ [`${path}.copy`]: 'garbage\n' });
    const err = await catchAsync(loadInfoFile(store.read, path));
    expect(err.code).toBe('damaged');
    expect(err.message).toContain(`${path}: file is missing`);
  });
});

describe('InfoReader', () => {
  const reader = new InfoReader({ n: 5, big: '7301234567890123456', s: 'x', b: true, arr: ['a'], o: { k: 1 } }, 'f [sec]');

  it('reads typed values', () => {
    expect(reader.integer('n')).toBe(5);
    expect(reader.digits('big')).toBe('7301234567890123456');
    expect(reader.digits('n')).toBe('5');
    expect(reader.string('s')).toBe('x');
    expect(reader.boolean('b')).toBe(true);
    expect(reader.stringArray('arr')).toEqual(['a']);
    expect(reader.object('o').integer('k')).toBe(1);
    expect(reader.optionalString('none')).toBeUndefined();
  });

  it('explains what is wrong and where', () => {
    expect(catchError(() => reader.string('n')).message).toBe("f [sec]: 'n' must be a string, found 5");
    expect(catchError(() => reader.integer('big')).message).toBe(`f [sec]: 'big' must be an integer below 2^53, found "7301234567890123456"`);
    expect(catchError(() => reader.integer('missing')).message).toBe("f [sec]: 'missing' is missing");
    expect(catchError(() => reader.object('o').string('k')).message).toBe("f [sec] o: 'k' must be a string, found 1");
    expect(catchError(() => reader.boolean('s')).code).toBe('invalid');
  });

  it('does not see inherited properties as keys', () => {
    expect(reader.has('constructor')).toBe(false);
    expect(InfoReader.section({}, 'toString', 'f').keys()).toEqual([]);
  });
});

describe('renderJson', () => {
  it('sorts object keys and writes bigint bare', () => {
    expect(renderJson({ b: 1, a: [true, null, 'x'], c: 12345678901234567890n })).toBe('{"a":[true,null,"x"],"b":1,"c":12345678901234567890}');
  });
});

/**
 * An independent implementation of the checksum for hand-written files (bare keys only):
 * sorted sections and keys, values as written, the checksum line itself left out.
 */
function withChecksum(text: string): string {
  const sections = new Map<string, Map<string, string>>();
  let current = '';
  for (const line of text.split('\n')) {
    const header = /^\[(.+)\]$/.exec(line);
    if (header) sections.set((current = header[1]), sections.get(header[1]) ?? new Map());
    else if (line.includes('=') && !line.startsWith('backrest-checksum=')) {
      const eq = line.indexOf('=');
      sections.get(current)!.set(line.slice(0, eq), line.slice(eq + 1));
    }
  }
  const body = [...sections.keys()]
    .sort()
    .map((name) => {
      const values = sections.get(name)!;
      const members = [...values.keys()].sort().map((key) => `${JSON.stringify(key)}:${values.get(key)}`);
      return `"${name}":{${members.join(',')}}`;
    })
    .join(',');
  const checksum = createHash('sha1').update(`{${body}}`).digest('hex');
  return text.replace(/backrest-checksum=.*\n/, '') + `\n[backrest]\nbackrest-checksum="${checksum}"\n`;
}
