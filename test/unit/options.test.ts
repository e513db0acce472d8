import { describe, expect, it } from 'vitest';
import { configFile } from '../harness/config-file';
import { parseOptions, type OptionSpec } from '../../shared/config/options';
import { parseSize } from '../../shared/config/size';
import { UserError } from '../../shared/errors';

const SPECS: OptionSpec[] = [
  { name: 'config', type: 'string', description: '' },
  { name: 'server', type: 'string', default: '127.0.0.1:8432', description: '' },
  { name: 'pg-port', type: 'int', default: 5432, description: '' },
  { name: 'start-fast', type: 'bool', default: false, description: '' },
  { name: 'auth', type: 'list', description: '' },
  { name: 'queue-max', type: 'size', description: '' },
];

describe('options', () => {
  it('reads flags in both forms, keeps positionals, and falls back to defaults', () => {
    const o = parseOptions(SPECS, ['backup', '--server', 'h:1', '--pg-port=6000', '--start-fast', '--auth', 'a=admin', '--auth=b=viewer']);
    expect(o.positional).toEqual(['backup']);
    expect(o.str('server')).toBe('h:1');
    expect(o.int('pg-port')).toBe(6000);
    expect(o.bool('start-fast')).toBe(true);
    expect(o.list('auth')).toEqual(['a=admin', 'b=viewer']);
    expect(parseOptions(SPECS, []).int('pg-port')).toBe(5432);
    expect(parseOptions(SPECS, ['--no-start-fast']).bool('start-fast')).toBe(false);
  });

  it('takes every option from the config file, and the flag wins', () => {
    const file = configFile('# comment\n[global]\nserver=file:1\npg-port = 7000\nstart-fast=y\nauth=x=admin\nauth=y=viewer\n');
    const fromFile = parseOptions(SPECS, ['--config', file]);
    expect(fromFile.str('server')).toBe('file:1');
    expect(fromFile.int('pg-port')).toBe(7000);
    expect(fromFile.bool('start-fast')).toBe(true);
    expect(fromFile.list('auth')).toEqual(['x=admin', 'y=viewer']);
    const flagWins = parseOptions(SPECS, ['--config', file, '--server', 'flag:2', '--auth', 'z=admin']);
    expect(flagWins.str('server')).toBe('flag:2');
    expect(flagWins.list('auth')).toEqual(['z=admin']);
  });

  it('refuses an unknown key or bad value, naming the file and line', () => {
    expect(() => parseOptions(SPECS, ['--config', configFile('server=a\nsevrer=b\n')])).toThrow(/pgrepo\.conf:2: unknown option 'sevrer'/);
    expect(() => parseOptions(SPECS, ['--config', configFile('pg-port=abc\n')])).toThrow(/pgrepo\.conf:1: option 'pg-port' must be an integer/);
    expect(() => parseOptions(SPECS, ['--config', configFile('just words\n')])).toThrow(/expected 'key=value'/);
    expect(() => parseOptions(SPECS, ['--config', '/nonexistent/pgrepo.conf'])).toThrow(/cannot read config file/);
  });

  it('refuses unknown flags and missing values with a UserError', () => {
    expect(() => parseOptions(SPECS, ['--sever', 'x'])).toThrow(UserError);
    expect(() => parseOptions(SPECS, ['--server'])).toThrow(/needs a value/);
    expect(() => parseOptions(SPECS, ['--start-fast=maybe'])).toThrow(/must be y or n/);
  });

  it("takes sizes as pgBackRest does: bytes or KiB/MiB/GiB/TiB (powers of 1024), case-insensitive", () => {
    expect(parseSize('1048576')).toBe(1048576);
    expect(parseSize('64MiB')).toBe(64 * 1024 ** 2);
    expect(parseSize('64mb')).toBe(64 * 1024 ** 2);
    expect(parseSize('5g')).toBe(5 * 1024 ** 3);
    expect(parseSize('1.5GiB')).toBe(1.5 * 1024 ** 3);
    expect(parseSize(' 2 KB ')).toBe(2048);
    for (const bad of ['', 'MiB', '-1', '1 XB', '1e3']) expect(parseSize(bad), bad).toBeUndefined();
    expect(parseOptions(SPECS, ['--queue-max', '4GiB']).int('queue-max')).toBe(4 * 1024 ** 3);
    expect(() => parseOptions(SPECS, ['--queue-max', 'lots'])).toThrow(/must be a size/);
  });
});
