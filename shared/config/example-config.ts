import type { OptionSpec } from './options';

export interface ExampleConfig {
  /** the program, e.g. pgrepo-server */
  program: string;
  /** where the file is installed */
  path: string;
  /** lines about the program, placed under the header */
  about: string[];
  specs: OptionSpec[];
}

/** Word-wraps a description into `# ` comment lines of at most `width` characters. */
function commentLines(text: string, width = 96): string[] {
  const lines: string[] = [];
  let line = '#';
  for (const word of text.split(/\s+/)) {
    if (line.length + 1 + word.length > width && line !== '#') {
      lines.push(line);
      line = '#';
    }
    line += ` ${word}`;
  }
  lines.push(line);
  return lines;
}

function describeDefault(spec: OptionSpec): string {
  if (spec.defaultText) return spec.defaultText;
  if (spec.default === undefined) return spec.type === 'list' ? 'none' : 'not set';
  if (spec.type === 'bool') return spec.default ? 'y' : 'n';
  return String(spec.default);
}

/**
 * The commented example config file of a program, made from its option table so it lists
 * every option with its default and can never drift from what the program accepts.
 * Options most installations must set appear with an example value; the rest are commented out.
 */
export function exampleConfig(ex: ExampleConfig): string {
  const out = [
    `# ${ex.program} configuration (${ex.path}); start it with: ${ex.program} --config ${ex.path}`,
    ...ex.about.map((l) => `# ${l}`.trimEnd()),
    '#',
    '# One option per line, key=value. Every option is also a --flag, and the flag wins. An unknown',
    '# key or a bad value stops the program at start-up, naming this file, the line and the reason.',
    '# Generated from the option table (npm run gen:configs); a unit test keeps the two in step.',
    '',
    '[global]',
  ];
  for (const spec of ex.specs.filter((s) => !s.flagOnly)) {
    out.push('', ...commentLines(spec.description));
    const allowed = spec.choices ? `; one of ${spec.choices.join(', ')}` : spec.type === 'bool' ? '; y or n' : '';
    const repeat = spec.type === 'list' ? '; repeat the line for more' : '';
    out.push(`# default: ${describeDefault(spec)}${allowed}${repeat}`);
    const examples = spec.example === undefined ? [] : Array.isArray(spec.example) ? spec.example : [spec.example as string];
    if (examples.length) {
      for (const e of examples) out.push(`${spec.name}=${e}`);
    } else {
      const value = spec.default === undefined ? '' : spec.type === 'bool' ? (spec.default ? 'y' : 'n') : String(spec.default);
      out.push(`#${spec.name}=${value}`);
    }
  }
  const perStanza = ex.specs.filter((s) => s.perStanza);
  if (perStanza.length) {
    out.push(
      '',
      ...commentLines(`Per stanza (pgBackRest's form): a [STANZA] section after the global options sets these for that stanza only: ${perStanza.map((s) => s.name).join(', ')}. For example:`),
      '#[main]',
      ...perStanza.map((s) => `#${s.name}=${s.default ?? (Array.isArray(s.example) ? s.example[0] : s.example) ?? ''}`),
    );
  }
  return `${out.join('\n')}\n`;
}
