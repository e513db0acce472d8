import { describe, expect, it } from 'vitest';
import { configFile as writeConfig } from '../../harness/config-file';
import { parseOptions, STANZA_OPTION } from '../../../shared/config/options';
import { overlayRetention, resolveRetention, retentionFromOptions, retentionFromRequest, retentionOptionSpecs } from '../../../repo-server/expire/retention';

const SPECS = [{ name: 'config', type: 'string' as const, description: '' }, { name: 'repo-path', type: 'string' as const, description: '' }, ...retentionOptionSpecs(true), STANZA_OPTION];

const configFile = (text: string) => writeConfig(text, 'server.conf');

describe('retention settings', () => {
  it('derives archive retention as pgBackRest does', () => {
    expect(resolveRetention({ full: 3 })).toMatchObject({ full: 3, fullType: 'count', archive: 3, archiveType: 'full', archiveDerived: true, warnings: [] });
    expect(resolveRetention({ full: 3, archive: 1 })).toMatchObject({ archive: 1, archiveDerived: false });
    expect(resolveRetention({ full: 3, diff: 4, archiveType: 'diff' })).toMatchObject({ archive: 4, archiveDerived: true });
    expect(resolveRetention({ full: 3, archiveType: 'diff' }).warnings.join()).toMatch(/neither option 'repo-retention-archive' nor option 'repo-retention-diff'/);
    expect(resolveRetention({ full: 3, archiveType: 'incr' })).toMatchObject({ archive: undefined });
    expect(resolveRetention({ full: 3, archive: 2, archiveType: 'diff' }).warnings.join()).toMatch(/'repo-retention-diff' is not set/);
    // time-based: derived later from the fulls that remain
    expect(resolveRetention({ full: 7, fullType: 'time' })).toMatchObject({ archive: undefined, archiveDerived: false });
  });

  it('a run\'s settings override the server\'s one by one', () => {
    expect(overlayRetention({ full: 4, diff: 2 }, { full: 1 })).toEqual({ full: 1, diff: 2 });
    expect(retentionFromRequest({ full: 0, full_type: '', diff: 3, archive: 0, archive_type: 'incr' })).toEqual({ full: undefined, fullType: undefined, diff: 3, archive: undefined, archiveType: 'incr' });
  });

  it('refuses values pgBackRest refuses', () => {
    expect(() => retentionFromOptions(parseOptions(SPECS, ['--repo-retention-full', '0']))).toThrow(/repo-retention-full must be between 1 and 9999999/);
    expect(() => retentionFromOptions(parseOptions(SPECS, ['--repo-retention-full-type', 'weeks']))).toThrow(/must be count or time/);
    expect(() => retentionFromRequest({ full: 1, full_type: '', diff: 0, archive: 0, archive_type: 'all' })).toThrow(/full or diff or incr/);
  });

  it('takes per-stanza settings from a [stanza] section and from --stanza-option; the specific wins over the global', () => {
    const file = configFile('repo-path=/r\nrepo-retention-full=4\n[main]\nrepo-retention-full=2\nrepo-retention-archive-type=diff\n[global]\nrepo-retention-diff=5\n[other]\nrepo-retention-diff=1\n');
    const o = parseOptions(SPECS, ['--config', file, '--repo-retention-full', '6', '--stanza-option', 'other:repo-retention-full=3']);
    expect(retentionFromOptions(o)).toMatchObject({ full: 6, diff: 5, archiveType: undefined });
    expect(retentionFromOptions(o.forStanza('main'))).toMatchObject({ full: 2, diff: 5, archiveType: 'diff' });
    expect(retentionFromOptions(o.forStanza('other'))).toMatchObject({ full: 3, diff: 1 });
    expect(retentionFromOptions(o.forStanza('unlisted'))).toMatchObject({ full: 6 });
    expect(o.stanzaNames()).toEqual(['main', 'other']);
  });

  it('refuses a global-only option in a stanza section, or a bad section, naming the file and line', () => {
    expect(() => parseOptions(SPECS, ['--config', configFile('[main]\nrepo-retention-full=1\nrepo-path=/x\n')]))
      .toThrow(/server\.conf:3: option 'repo-path' cannot be set for one stanza \('main'\)/);
    expect(() => parseOptions(SPECS, ['--config', configFile('[main]\nrepo-retension-full=1\n')])).toThrow(/server\.conf:2: unknown option 'repo-retension-full'/);
    expect(() => parseOptions(SPECS, ['--config', configFile('[../etc]\n')])).toThrow(/server\.conf:1: section \[\.\.\/etc\] is neither \[global\] nor a stanza name/);
    expect(() => parseOptions(SPECS, ['--stanza-option', 'main=repo-retention-full=1'])).toThrow(/expected STANZA:NAME=VALUE/);
    expect(() => parseOptions(SPECS, ['--stanza-option', 'main:repo-path=/x'])).toThrow(/cannot be set for one stanza/);
    expect(() => parseOptions(SPECS, ['--stanza-option', 'main:repo-retention-full=two'])).toThrow(/must be an integer/);
    // a program without per-stanza options still refuses any section but [global]
    expect(() => parseOptions(SPECS.filter((s) => !('perStanza' in s && s.perStanza)), ['--config', configFile('[main]\n')])).toThrow(/only \[global\] is supported/);
  });
});
