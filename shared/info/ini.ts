/**
 * pgBackRest's checksummed INI format (src/info/info.c, src/common/ini.c), used by archive.info,
 * backup.info and backup.manifest. Values are JSON; a [backrest] section carries the format,
 * the writing version and a SHA-1 over a canonical rendering of everything else.
 */
import { createHash } from 'node:crypto';

export type InfoSections = Record<string, Record<string, unknown>>;

export const INFO_FORMAT = 5;
export const INFO_COPY_EXT = '.copy';

const BACKREST = 'backrest';
const KEY_CHECKSUM = 'backrest-checksum';
const KEY_FORMAT = 'backrest-format';
const KEY_VERSION = 'backrest-version';

/**
 * syntax/checksum/format: one file is unreadable; invalid: it parses but the content makes no sense;
 * missing/damaged: neither the file nor its .copy could be used.
 */
export type InfoFileErrorCode = 'syntax' | 'checksum' | 'format' | 'invalid' | 'missing' | 'damaged';

export class InfoFileError extends Error {
  constructor(
    message: string,
    readonly code: InfoFileErrorCode,
    readonly causes: readonly Error[] = [],
  ) {
    super(message);
    this.name = 'InfoFileError';
  }
}

// ---------------------------------------------------------------------------------------------
// Ordering and JSON values

/**
 * Orders like C strcmp over UTF-8 (what pgBackRest uses), which differs from JS's UTF-16 order
 * only when a surrogate pair meets a character in U+E000..U+FFFF.
 */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

function codePointRank(unit: number): number {
  return unit >= 0xd800 && unit <= 0xdfff ? unit + 0x10000 : unit;
}

/**
 * A record without a prototype: names come from users (database names, file names), and one
 * called '__proto__' or 'constructor' must be an ordinary key.
 */
export function newRecord<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

const SURROGATE = /[\ud800-\udfff]/;

/** Sorts in place by compareNames, using the native comparison when no name needs the slow one. */
export function sortByName<T>(items: T[], nameOf: (item: T) => string): T[] {
  if (items.some((item) => SURROGATE.test(nameOf(item)))) return items.sort((a, b) => compareNames(nameOf(a), nameOf(b)));
  return items.sort((a, b) => {
    const x = nameOf(a);
    const y = nameOf(b);
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

/**
 * Keys in compareNames order. Most come in that order already (a manifest's files, from its
 * sorted list): strictly ascending UTF-16 without surrogates is that order, checked in one pass.
 */
function sortedKeys(keys: Iterable<string>): string[] {
  const list = [...keys];
  for (let i = 1; i < list.length; i++) if (!(list[i - 1] < list[i])) return sortByName(list, (key) => key);
  return list.some((key) => SURROGATE.test(key)) ? sortByName(list, (key) => key) : list;
}

/**
 * Canonical JSON: object keys sorted, undefined members dropped, bigint written as bare digits
 * (the only way to emit a 64-bit system identifier the way pgBackRest does without rounding).
 */
export function renderJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return value.toString();
    case 'number':
      return renderNumber(value);
    case 'object':
      if (value === null) return 'null';
      if (Array.isArray(value)) return `[${value.map(renderJson).join(',')}]`;
      return renderObject(value as Record<string, unknown>);
    default:
      throw new TypeError(`cannot store a ${typeof value} in an info file`);
  }
}

function renderNumber(value: number): string {
  // an unsafe integer is already rounded; writing it would silently store the wrong value
  if (!Number.isFinite(value) || (Number.isInteger(value) && !Number.isSafeInteger(value))) {
    throw new RangeError(`cannot store ${value} in an info file exactly; pass large integers as bigint`);
  }
  return String(value);
}

function renderObject(obj: Record<string, unknown>): string {
  const members: string[] = [];
  // a manifest file's record leaves most of its keys undefined: only the others are sorted
  for (const key of sortedKeys(Object.keys(obj).filter((k) => obj[k] !== undefined))) {
    members.push(`${JSON.stringify(key)}:${renderJson(obj[key])}`);
  }
  return `{${members.join(',')}}`;
}

// A JSON string token, or a JSON number token; strings are matched first so digits inside them are skipped.
const JSON_TOKEN = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;
const LONG_INTEGER = /^-?\d{16,}$/;

/**
 * JSON.parse, except that bare integers longer than 15 digits come back as digit strings:
 * system identifiers exceed 2^53 and must survive unchanged.
 */
export function parseJson(text: string): unknown {
  if (!/\d{16}/.test(text)) return JSON.parse(text);
  return JSON.parse(text.replace(JSON_TOKEN, (token) => (LONG_INTEGER.test(token) ? `"${token}"` : token)));
}

// ---------------------------------------------------------------------------------------------
// Rendering

/** Section name → key → value as JSON text, the form both the checksum and the file are made from. */
type RawSections = Map<string, Map<string, string>>;

/** Renders sections (which must not include [backrest]) with the [backrest] header and checksum. */
export function renderInfo(sections: InfoSections, version: string): string {
  const all: RawSections = new Map();
  for (const name of Object.keys(sections)) all.set(checkSectionName(name), renderSection(sections[name]));
  const header = new Map([
    [KEY_FORMAT, String(INFO_FORMAT)],
    [KEY_VERSION, JSON.stringify(version)],
  ]);
  all.set(BACKREST, header);
  header.set(KEY_CHECKSUM, JSON.stringify(checksumOf(all)));
  return writeLines(all);
}

function checkSectionName(name: string): string {
  if (name === BACKREST) throw new Error('the [backrest] section is written by renderInfo itself');
  if (!/^[^\]\r\n]+$/.test(name) || name.trim() !== name) throw new Error(`'${name}' cannot be an info file section name`);
  return name;
}

function renderSection(section: Record<string, unknown>): Map<string, string> {
  const rendered = new Map<string, string>();
  for (const key of Object.keys(section)) {
    if (section[key] !== undefined) rendered.set(key, renderJson(section[key]));
  }
  return rendered;
}

function writeLines(all: RawSections): string {
  const blocks: string[] = [];
  for (const name of sortedKeys(all.keys())) {
    const section = all.get(name)!;
    // pgBackRest never writes an empty section, and one could not be told apart from no section
    if (section.size === 0) continue;
    const lines = sortedKeys(section.keys()).map((key) => `${renderKey(key)}=${section.get(key)}`);
    blocks.push(`[${name}]\n${lines.join('\n')}\n`);
  }
  return blocks.join('\n');
}

/** Keys are written bare unless a bare key would be misread (an '=' in a file name, for instance). */
function renderKey(key: string): string {
  const needsQuotes = key === '' || /[=\r\n]|^["[#;]|^\s|\s$/.test(key);
  return needsQuotes ? JSON.stringify(key) : key;
}

/**
 * pgBackRest's form: {"section":{"key":value,...},...} with the values as written, so load and
 * save agree byte for byte and a file pgBackRest wrote verifies here.
 */
function checksumOf(all: RawSections): string {
  const parts: string[] = [];
  for (const name of sortedKeys(all.keys())) {
    const section = all.get(name)!;
    const keys = sortedKeys(section.keys()).filter((key) => !(name === BACKREST && key === KEY_CHECKSUM));
    if (keys.length === 0) continue;
    const members = keys.map((key) => `${JSON.stringify(key)}:${section.get(key)}`);
    parts.push(`"${name}":{${members.join(',')}}`);
  }
  return createHash('sha1').update(`{${parts.join(',')}}`).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Parsing

/** Parses and verifies an info file; the returned sections exclude [backrest]. */
export function parseInfo(text: string, fileName: string): InfoSections {
  if (text.trim() === '') throw new InfoFileError(`${fileName}: the file is empty (was a write interrupted?)`, 'syntax');
  const file = readLines(text, fileName);
  verifyHeader(file, fileName);
  const sections: InfoSections = newRecord();
  for (const name of file.raw.keys()) {
    if (name !== BACKREST) sections[name] = parseSection(file, name, fileName);
  }
  return sections;
}

/** Value text as written plus the line each key was on, for error messages. */
interface RawFile {
  raw: RawSections;
  lines: Map<string, Map<string, number>>;
}

function readLines(text: string, fileName: string): RawFile {
  const file: RawFile = { raw: new Map(), lines: new Map() };
  let section: string | null = null;
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index].trim();
    const lineNo = index + 1;
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('[')) {
      section = readSectionHeader(line, fileName, lineNo);
      if (!file.raw.has(section)) file.raw.set(section, new Map());
      if (!file.lines.has(section)) file.lines.set(section, new Map());
      continue;
    }
    const { key, value } = readKeyValue(line, fileName, lineNo);
    if (section === null) throw syntaxError(fileName, lineNo, `'${key}' appears before any [section]`);
    addValue(file, section, key, value, fileName, lineNo);
  }
  return file;
}

function addValue(file: RawFile, section: string, key: string, value: string, fileName: string, lineNo: number): void {
  const lines = file.lines.get(section)!;
  const first = lines.get(key);
  if (first !== undefined) throw syntaxError(fileName, lineNo, `duplicate key '${key}' in [${section}] (first at line ${first})`);
  file.raw.get(section)!.set(key, value);
  lines.set(key, lineNo);
}

function readSectionHeader(line: string, fileName: string, lineNo: number): string {
  const match = /^\[([^\]]+)\]$/.exec(line);
  if (!match) throw syntaxError(fileName, lineNo, `expected a '[section]' header but found '${clip(line)}'`);
  return match[1].trim();
}

function readKeyValue(line: string, fileName: string, lineNo: number): { key: string; value: string } {
  if (line.startsWith('"')) return readQuotedKey(line, fileName, lineNo);
  const eq = line.indexOf('=');
  if (eq <= 0) throw syntaxError(fileName, lineNo, `expected '[section]' or 'key=value' but found '${clip(line)}'`);
  return { key: line.slice(0, eq).trim(), value: line.slice(eq + 1).trim() };
}

function readQuotedKey(line: string, fileName: string, lineNo: number): { key: string; value: string } {
  const match = /^("(?:[^"\\]|\\.)*")\s*=(.*)$/.exec(line);
  if (!match) throw syntaxError(fileName, lineNo, `expected '"quoted key"=value' but found '${clip(line)}'`);
  return { key: JSON.parse(match[1]) as string, value: match[2].trim() };
}

/** The checksum is checked before anything else in [backrest] because nothing in a damaged file can be trusted. */
function verifyHeader(file: RawFile, fileName: string): void {
  const header = file.raw.get(BACKREST);
  const expected = header?.has(KEY_CHECKSUM) ? parseValue(file, BACKREST, KEY_CHECKSUM, fileName) : undefined;
  const actual = checksumOf(file.raw);
  if (typeof expected !== 'string') {
    throw new InfoFileError(
      `${fileName}: no backrest-checksum in [backrest], actual checksum '${actual}' (the file is incomplete or was not written by pgrepo/pgBackRest)`,
      'checksum',
    );
  }
  if (expected.toLowerCase() !== actual) {
    throw new InfoFileError(
      `${fileName}: invalid checksum, actual '${actual}' but expected '${expected}' (the file was modified or damaged)`,
      'checksum',
    );
  }
  const format = header?.has(KEY_FORMAT) ? parseValue(file, BACKREST, KEY_FORMAT, fileName) : undefined;
  if (format !== INFO_FORMAT) {
    const found = format === undefined ? 'none' : JSON.stringify(format);
    throw new InfoFileError(
      `${fileName}: expected backrest-format ${INFO_FORMAT} but found ${found} (written by an incompatible version)`,
      'format',
    );
  }
}

function parseSection(file: RawFile, section: string, fileName: string): Record<string, unknown> {
  const values = newRecord<unknown>();
  for (const key of file.raw.get(section)!.keys()) values[key] = parseValue(file, section, key, fileName);
  return values;
}

function parseValue(file: RawFile, section: string, key: string, fileName: string): unknown {
  const text = file.raw.get(section)!.get(key)!;
  try {
    return parseJson(text);
  } catch (err) {
    const what = `value of '${key}' in [${section}] is not valid JSON (${(err as Error).message}): '${clip(text)}'`;
    throw syntaxError(fileName, file.lines.get(section)!.get(key)!, what);
  }
}

function syntaxError(fileName: string, lineNo: number, what: string): InfoFileError {
  return new InfoFileError(`${fileName}: syntax error at line ${lineNo}: ${what}`, 'syntax');
}

function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

// ---------------------------------------------------------------------------------------------
// Loading and saving with the .copy fallback

export type InfoRead = (path: string) => Promise<Buffer | null>;
export type InfoWrite = (path: string, data: Buffer) => Promise<void>;

/**
 * Loads `path`, falling back to `path.copy` (pgBackRest writes both so that one torn or damaged
 * file is survivable). Throws code 'missing' when neither exists, 'damaged' when neither loads.
 */
export async function loadInfoFile(read: InfoRead, path: string): Promise<InfoSections> {
  const errors: Error[] = [];
  let missing = 0;
  for (const candidate of [path, path + INFO_COPY_EXT]) {
    const attempt = await tryLoad(read, candidate);
    if ('sections' in attempt) return attempt.sections;
    errors.push(attempt.error);
    if (attempt.missing) missing++;
  }
  const [main, copy] = errors.map((err) => err.message);
  if (missing === errors.length) {
    throw new InfoFileError(`unable to load info file '${path}' or '${path}${INFO_COPY_EXT}': neither exists`, 'missing', errors);
  }
  throw new InfoFileError(`unable to load info file '${path}' or '${path}${INFO_COPY_EXT}':\n  ${main}\n  ${copy}`, 'damaged', errors);
}

type LoadAttempt = { sections: InfoSections } | { error: Error; missing: boolean };

async function tryLoad(read: InfoRead, path: string): Promise<LoadAttempt> {
  try {
    const data = await read(path);
    if (data === null) return { error: new Error(`${path}: file is missing`), missing: true };
    return { sections: parseInfo(data.toString('utf8'), path) };
  } catch (err) {
    return { error: err instanceof Error ? err : new Error(String(err)), missing: false };
  }
}

/** Writes the file and then its copy, so at every moment at least one complete version exists. */
export async function saveInfoFile(write: InfoWrite, path: string, text: string): Promise<void> {
  const data = Buffer.from(text, 'utf8');
  await write(path, data);
  await write(path + INFO_COPY_EXT, data);
}

// ---------------------------------------------------------------------------------------------
// Typed access to parsed values

/** Reads typed values out of a parsed section or JSON object, with errors naming file, section and key. */
export class InfoReader {
  constructor(
    private readonly values: Record<string, unknown>,
    readonly where: string,
  ) {}

  /** A section reader; a missing section reads as empty so optional sections need no special case. */
  static section(sections: InfoSections, name: string, fileName: string): InfoReader {
    return new InfoReader(Object.hasOwn(sections, name) ? sections[name] : newRecord(), `${fileName} [${name}]`);
  }

  keys(): string[] {
    return Object.keys(this.values);
  }

  has(key: string): boolean {
    return Object.hasOwn(this.values, key) && this.values[key] !== undefined;
  }

  string(key: string): string {
    const value = this.required(key);
    if (typeof value !== 'string') this.fail(key, 'a string', value);
    return value;
  }

  optionalString(key: string): string | undefined {
    return this.has(key) ? this.string(key) : undefined;
  }

  /** Accepts the digit strings parseJson makes of long integers, as long as they fit exactly. */
  integer(key: string): number {
    const value = this.required(key);
    const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isSafeInteger(n)) this.fail(key, 'an integer below 2^53', value);
    return n;
  }

  optionalInteger(key: string): number | undefined {
    return this.has(key) ? this.integer(key) : undefined;
  }

  /** An unsigned integer of any size as its decimal digits (system identifiers). */
  digits(key: string): string {
    const value = this.required(key);
    const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value;
    if (typeof text !== 'string' || !/^\d+$/.test(text)) this.fail(key, 'an unsigned integer', value);
    return text;
  }

  boolean(key: string): boolean {
    const value = this.required(key);
    if (typeof value !== 'boolean') this.fail(key, 'true or false', value);
    return value;
  }

  optionalBoolean(key: string): boolean | undefined {
    return this.has(key) ? this.boolean(key) : undefined;
  }

  stringArray(key: string): string[] {
    const value = this.required(key);
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) this.fail(key, 'a list of strings', value);
    return value as string[];
  }

  /** pgBackRest's checksum-page-error: block numbers and [first, last] ranges. */
  pageErrorList(key: string): (number | [number, number])[] {
    const value = this.required(key);
    const isBlock = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
    const isEntry = (v: unknown) => isBlock(v) || (Array.isArray(v) && v.length === 2 && isBlock(v[0]) && isBlock(v[1]));
    if (!Array.isArray(value) || !value.every(isEntry)) this.fail(key, 'a list of block numbers and [first, last] ranges', value);
    return value as (number | [number, number])[];
  }

  object(key: string): InfoReader {
    const value = this.required(key);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) this.fail(key, 'a JSON object', value);
    return new InfoReader(value as Record<string, unknown>, `${this.where} ${key}`);
  }

  /** Raises an 'invalid' InfoFileError located at this reader. */
  invalid(what: string): never {
    throw new InfoFileError(`${this.where}: ${what}`, 'invalid');
  }

  private required(key: string): unknown {
    if (!this.has(key)) this.invalid(`'${key}' is missing`);
    return this.values[key];
  }

  private fail(key: string, expected: string, found: unknown): never {
    const shown = found === undefined ? 'nothing' : clip(JSON.stringify(found));
    this.invalid(`'${key}' must be ${expected}, found ${shown}`);
  }
}
