import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exampleConfig, type ExampleConfig } from '../../shared/config/example-config';
import { parseOptions } from '../../shared/config/options';
import { SERVER_EXAMPLE_CONFIG } from '../../repo-server/options';
import { AGENT_EXAMPLE_CONFIG } from '../../agent/options';
import { REPOCTL_EXAMPLE_CONFIG } from '../../repo-server/repoctl/options';

const deploy = path.join(__dirname, '..', '..', 'deploy');
const EXAMPLES: [string, ExampleConfig][] = [
  ['pgrepo-server.conf', SERVER_EXAMPLE_CONFIG],
  ['pgrepo-agent.conf', AGENT_EXAMPLE_CONFIG],
  ['repoctl.conf', REPOCTL_EXAMPLE_CONFIG],
];

function withLine(file: string, line: string): string {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pgrepo-ex-')), path.basename(file));
  fs.writeFileSync(out, `${fs.readFileSync(file, 'utf8')}${line}\n`);
  return out;
}

describe.each(EXAMPLES)('deploy/%s', (file, example) => {
  const target = path.join(deploy, file);

  it('is what the option table generates (run npm run build && npm run gen:configs after changing options)', () => {
    expect(fs.readFileSync(target, 'utf8')).toBe(exampleConfig(example));
  });

  it('lists every option that a config file may set, with its default', () => {
    const text = fs.readFileSync(target, 'utf8');
    for (const spec of example.specs.filter((s) => !s.flagOnly)) {
      expect(text, spec.name).toMatch(new RegExp(`^#?${spec.name}=`, 'm'));
    }
    expect(text.match(/^# default: /gm)?.length).toBe(example.specs.filter((s) => !s.flagOnly).length);
  });

  it('is accepted by the program as it stands, and every uncommented default is the real default', () => {
    const options = parseOptions(example.specs, ['--config', target]);
    for (const spec of example.specs.filter((s) => s.default !== undefined && s.example === undefined)) {
      if (spec.type === 'bool') expect(options.bool(spec.name), spec.name).toBe(spec.default);
      else expect(options.str(spec.name), spec.name).toBe(String(spec.default));
    }
  });

  it('refuses an unknown key and a bad value, naming the file, the line and the reason', () => {
    const lines = fs.readFileSync(target, 'utf8').split('\n').length;
    expect(() => parseOptions(example.specs, ['--config', withLine(target, 'no-such-option=1')]))
      .toThrow(new RegExp(`${file}:${lines}: unknown option 'no-such-option'`));
    expect(() => parseOptions(example.specs, ['--config', withLine(target, 'log-level=loud')]))
      .toThrow(new RegExp(`${file}:${lines}: option 'log-level' must be one of fatal, .*got 'loud'`));
    expect(() => parseOptions(example.specs, ['--config', withLine(target, 'config=/etc/other.conf')]))
      .toThrow(/unknown option 'config'/);
  });
});

describe('the example config of a program with per-stanza options', () => {
  it('ends with a commented [STANZA] section naming them', () => {
    const text = exampleConfig({
      program: 'p', path: '/etc/p.conf', about: [],
      specs: [{ name: 'keep', type: 'int', default: 2, perStanza: true, description: 'how many to keep' }, { name: 'other', type: 'string', description: 'x' }],
    });
    expect(text).toMatch(/# Per stanza [^[]*\[STANZA\][\s\S]*: keep\. For example:\n#\[main\]\n#keep=2\n$/);
  });
});

describe('per-program value checks', () => {
  const refuse = (ex: ExampleConfig, line: string, why: RegExp) => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pgrepo-ex-')), `${ex.program}.conf`);
    fs.writeFileSync(file, `[global]\n${line}\n`);
    expect(() => parseOptions(ex.specs, ['--config', file])).toThrow(new RegExp(`${ex.program}\\.conf:\\d+: .*${why.source}`));
  };

  it('server: auth rules, listen address, metrics address, archive-timeout', () => {
    refuse(SERVER_EXAMPLE_CONFIG, 'auth=db9=superuser', /option 'auth' .*CN=ROLE/);
    refuse(SERVER_EXAMPLE_CONFIG, 'auth=db9=agent', /an agent must be granted stanzas/);
    refuse(SERVER_EXAMPLE_CONFIG, 'metrics-listen=8432', /must be HOST:PORT/);
    refuse(SERVER_EXAMPLE_CONFIG, 'metrics-listen=localhost:99999', /port above 65535/);
    refuse(SERVER_EXAMPLE_CONFIG, 'archive-timeout=0', /must be at least 1/);
    refuse(SERVER_EXAMPLE_CONFIG, 'listen=127.0.0.1:1\nlisten=127.0.0.1:2', /already set on line 2/);
  });

  it('agent: server address, port range, compression', () => {
    refuse(AGENT_EXAMPLE_CONFIG, 'pg-port=70000', /must be at most 65535/);
    refuse(AGENT_EXAMPLE_CONFIG, 'compress-type=rar', /must be one of gz/);
    refuse(AGENT_EXAMPLE_CONFIG, 'compress-level=-1', /at least 0/);
  });

  it('repoctl: output and process-max', () => {
    refuse(REPOCTL_EXAMPLE_CONFIG, 'output=yaml', /must be one of text, json/);
    refuse(REPOCTL_EXAMPLE_CONFIG, 'process-max=0', /at least 1/);
  });

  it('the command line is checked the same way', () => {
    expect(() => parseOptions(SERVER_EXAMPLE_CONFIG.specs, ['--log-level', 'chatty'])).toThrow(/command line: option 'log-level' must be one of/);
  });
});
