import fs from 'node:fs';
import { UserError } from '../errors';
import { validateStanzaName } from '../validate';
import { parseSize } from './size';

export type OptionType = 'string' | 'int' | 'bool' | 'list' | 'size';

export interface OptionSpec {
  name: string;
  type: OptionType;
  description: string;
  default?: string | number | boolean;
  /** A value that names a file or secret is never echoed in errors. */
  secret?: boolean;
  /** The only values allowed (checked where the value is read: flag, or file and line). */
  choices?: readonly string[];
  /** Bounds of an int option. */
  min?: number;
  max?: number;
  /** Further checks of a value: returns why it is wrong, or undefined when it is fine. */
  check?: (value: string) => string | undefined;
  /** What the default is when it is computed at run time (e.g. "the OS user the agent runs as"). */
  defaultText?: string;
  /** A value the example config file sets (uncommented), for options most installations set. */
  example?: string | readonly string[];
  /** Not valid in a config file (--config itself, --help). */
  flagOnly?: boolean;
  /** May also be set for one stanza: in a [STANZA] section of the config file, or with --stanza-option STANZA:NAME=VALUE. */
  perStanza?: boolean;
}

type Value = string | number | boolean | string[];
type Values = Map<string, Value>;

/** The flag that sets a per-stanza option on the command line; a program that has per-stanza options lists it. */
export const STANZA_OPTION: OptionSpec = {
  name: 'stanza-option', type: 'list', flagOnly: true,
  description: 'STANZA:NAME=VALUE: set option NAME for one stanza only (as a [STANZA] section of the config file does); repeatable',
};

/**
 * The options of one program run: flags first, then the config file, then defaults.
 * Every option works as `--name value`, `--name=value` and as `name=value` in `--config FILE`
 * (pgBackRest's convention), so one spec serves both and the two can never drift apart.
 */
export class Options {
  constructor(
    private readonly values: Values,
    readonly positional: string[],
    /** per stanza, the values that stanza overrides */
    private readonly stanzas: ReadonlyMap<string, Values> = new Map(),
  ) {}

  /**
   * The options as they apply to one stanza: a per-stanza value wins over the global one
   * (pgBackRest's [stanza] sections over [global]); between two of the same scope, the flag wins.
   */
  forStanza(stanza: string): Options {
    const own = this.stanzas.get(stanza);
    if (!own) return this;
    return new Options(new Map([...this.values, ...own]), this.positional);
  }

  /** Stanzas that have options of their own. */
  stanzaNames(): string[] {
    return [...this.stanzas.keys()].sort();
  }

  has(name: string): boolean {
    return this.values.has(name);
  }
  str(name: string): string | undefined {
    const v = this.values.get(name);
    return v === undefined ? undefined : String(v);
  }
  requireStr(name: string, why = ''): string {
    const v = this.str(name);
    if (v === undefined || v === '') throw new UserError(`missing option --${name}${why ? `: ${why}` : ''}`);
    return v;
  }
  int(name: string): number | undefined {
    const v = this.values.get(name);
    return v === undefined ? undefined : Number(v);
  }
  bool(name: string): boolean {
    return this.values.get(name) === true;
  }
  list(name: string): string[] {
    const v = this.values.get(name);
    return Array.isArray(v) ? v : v === undefined ? [] : [String(v)];
  }
}

function shown(spec: OptionSpec, raw: string): string {
  return spec.secret ? '(hidden)' : `'${raw}'`;
}

function convert(spec: OptionSpec, raw: string, where: string): Value {
  const bad = (why: string) => new UserError(`${where}: option '${spec.name}' ${why}, got ${shown(spec, raw)}`);
  if (spec.choices && !spec.choices.includes(raw)) throw bad(`must be one of ${spec.choices.join(', ')}`);
  const problem = spec.check?.(raw);
  if (problem) throw bad(problem);
  switch (spec.type) {
    case 'int': {
      if (!/^-?\d+$/.test(raw.trim())) throw bad('must be an integer');
      const n = Number(raw);
      if (spec.min !== undefined && n < spec.min) throw bad(`must be at least ${spec.min}`);
      if (spec.max !== undefined && n > spec.max) throw bad(`must be at most ${spec.max}`);
      return n;
    }
    case 'bool': {
      const v = raw.trim().toLowerCase();
      if (['y', 'yes', 'true', 'on', '1'].includes(v)) return true;
      if (['n', 'no', 'false', 'off', '0'].includes(v)) return false;
      throw bad('must be y or n');
    }
    case 'size': {
      const bytes = parseSize(raw);
      if (bytes === undefined) throw bad('must be a size in bytes, or with KiB, MiB, GiB, TiB (e.g. 1GiB)');
      if (spec.min !== undefined && bytes < spec.min) throw bad(`must be at least ${spec.min} bytes`);
      return bytes;
    }
    default:
      return raw;
  }
}

function setValue(values: Map<string, Value>, spec: OptionSpec, value: Value): void {
  if (spec.type === 'list') {
    const prior = values.get(spec.name);
    values.set(spec.name, [...(Array.isArray(prior) ? prior : []), String(value)]);
  } else {
    values.set(spec.name, value);
  }
}

function unknownOption(name: string, where: string, specs: OptionSpec[]): UserError {
  const near = specs.filter((s) => s.name.includes(name) || name.includes(s.name)).map((s) => `--${s.name}`);
  return new UserError(`${where}: unknown option '${name}'${near.length ? ` (did you mean ${near.join(', ')}?)` : ''}; see --help`);
}

interface ConfigFile {
  global: Values;
  stanzas: Map<string, Values>;
}

function stanzaSection(header: string, where: string, specs: OptionSpec[]): string {
  const name = header.slice(1, -1).trim();
  if (!specs.some((s) => s.perStanza)) throw new UserError(`${where}: unknown section ${header}; only [global] is supported`);
  try {
    return validateStanzaName(name);
  } catch (err) {
    throw new UserError(`${where}: section ${header} is neither [global] nor a stanza name: ${(err as Error).message}`);
  }
}

function perStanzaSpec(name: string, stanza: string, where: string, specs: OptionSpec[]): OptionSpec {
  const spec = specs.find((s) => s.name === name);
  if (!spec || spec.flagOnly) throw unknownOption(name, where, specs.filter((s) => !s.flagOnly));
  if (!spec.perStanza) {
    const allowed = specs.filter((s) => s.perStanza).map((s) => s.name).join(', ');
    throw new UserError(`${where}: option '${name}' cannot be set for one stanza ('${stanza}'); set it globally, or use one of: ${allowed}`);
  }
  return spec;
}

/**
 * Parses `key=value` lines; `#` comments allowed. Keys before any section header or under
 * `[global]` apply everywhere; a `[STANZA]` section (pgBackRest's form) sets per-stanza options for that stanza.
 */
export function parseConfigFile(file: string, specs: OptionSpec[]): ConfigFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UserError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const config: ConfigFile = { global: new Map(), stanzas: new Map() };
  let section: { stanza: string; values: Values } | undefined;
  // a key given twice in one scope is a mistake waiting to happen: which one wins is not obvious
  const firstLine = new Map<string, number>();
  text.split('\n').forEach((line, i) => {
    const where = `${file}:${i + 1}`;
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith(';')) return;
    if (/^\[.*\]$/.test(trimmed)) {
      if (trimmed === '[global]') {
        section = undefined;
      } else {
        const stanza = stanzaSection(trimmed, where, specs);
        section = { stanza, values: config.stanzas.get(stanza) ?? new Map() };
        config.stanzas.set(stanza, section.values);
      }
      return;
    }
    const eq = trimmed.indexOf('=');
    if (eq <= 0) throw new UserError(`${where}: expected 'key=value', got '${trimmed}'`);
    const key = trimmed.slice(0, eq).trim();
    const raw = trimmed.slice(eq + 1).trim();
    const spec = section ? perStanzaSpec(key, section.stanza, where, specs) : specs.find((s) => s.name === key);
    if (!spec || spec.flagOnly) throw unknownOption(key, where, specs.filter((s) => !s.flagOnly));
    const scopeKey = `${section?.stanza ?? ''}\u0000${key}`;
    const prior = firstLine.get(scopeKey);
    if (prior !== undefined && spec.type !== 'list') throw new UserError(`${where}: option '${key}' is already set on line ${prior}; give it once`);
    firstLine.set(scopeKey, i + 1);
    setValue(section ? section.values : config.global, spec, convert(spec, raw, where));
  });
  return config;
}

/** --stanza-option STANZA:NAME=VALUE values → per-stanza values. */
function parseStanzaFlags(entries: string[], specs: OptionSpec[]): Map<string, Values> {
  const stanzas = new Map<string, Values>();
  for (const entry of entries) {
    const where = `--stanza-option ${entry}`;
    const m = /^([^:=]+):([^=]+)=(.*)$/.exec(entry);
    if (!m) throw new UserError(`${where}: expected STANZA:NAME=VALUE, e.g. main:repo-retention-full=2`);
    let stanza: string;
    try {
      stanza = validateStanzaName(m[1].trim());
    } catch (err) {
      throw new UserError(`${where}: ${(err as Error).message}`);
    }
    const spec = perStanzaSpec(m[2].trim(), stanza, where, specs);
    const values = stanzas.get(stanza) ?? new Map<string, Value>();
    setValue(values, spec, convert(spec, m[3].trim(), where));
    stanzas.set(stanza, values);
  }
  return stanzas;
}

/** File values overlaid with flag values, stanza by stanza (a list given as flags replaces the file's list). */
function mergeStanzas(fromFile: Map<string, Values>, fromFlags: Map<string, Values>): Map<string, Values> {
  const merged = new Map<string, Values>();
  for (const stanza of new Set([...fromFile.keys(), ...fromFlags.keys()])) {
    merged.set(stanza, new Map([...(fromFile.get(stanza) ?? []), ...(fromFlags.get(stanza) ?? [])]));
  }
  return merged;
}

/** argv → Options. Positional words (the command and its arguments) are kept in order. */
export function parseOptions(specs: OptionSpec[], argv: string[]): Options {
  const flags = new Map<string, Value>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let negated = false;
    if (!specs.some((s) => s.name === name) && name.startsWith('no-')) {
      negated = true;
      name = name.slice(3);
    }
    const spec = specs.find((s) => s.name === name);
    if (!spec) throw unknownOption(name, 'command line', specs);
    let raw: string;
    if (spec.type === 'bool') {
      raw = negated ? 'n' : eq === -1 ? 'y' : arg.slice(eq + 1);
    } else if (eq !== -1) {
      raw = arg.slice(eq + 1);
    } else {
      if (i + 1 >= argv.length) throw new UserError(`option --${name} needs a value`);
      raw = argv[++i];
    }
    setValue(flags, spec, convert(spec, raw, 'command line'));
  }

  const configFile = flags.get('config');
  const fromFile: ConfigFile = typeof configFile === 'string' ? parseConfigFile(configFile, specs) : { global: new Map(), stanzas: new Map() };
  const values = new Map<string, Value>();
  for (const spec of specs) {
    // the flag wins over the file; a list given as flags replaces the file's list
    const v = flags.get(spec.name) ?? fromFile.global.get(spec.name) ?? spec.default;
    if (v !== undefined) values.set(spec.name, v);
  }
  const stanzaFlags = parseStanzaFlags(Array.isArray(values.get(STANZA_OPTION.name)) ? (values.get(STANZA_OPTION.name) as string[]) : [], specs);
  return new Options(values, positional, mergeStanzas(fromFile.stanzas, stanzaFlags));
}

export function formatHelp(usage: string, specs: OptionSpec[]): string {
  const width = Math.max(...specs.map((s) => s.name.length)) + 4;
  const lines = specs.map((s) => {
    const d = s.defaultText ?? s.default;
    const def = d === undefined ? '' : ` (default: ${d})`;
    const choices = s.choices ? ` (${s.choices.join(', ')})` : '';
    return `  --${s.name.padEnd(width)}${s.description}${choices}${def}`;
  });
  const perStanza = specs.filter((s) => s.perStanza).map((s) => s.name);
  const note = perStanza.length
    ? `\n\nPer stanza (a [STANZA] section of the config file, or --stanza-option STANZA:NAME=VALUE): ${perStanza.join(', ')}.`
    : '';
  return `${usage}\n\nOptions (also as name=value lines in --config FILE; the flag wins):\n${lines.join('\n')}${note}\n`;
}
