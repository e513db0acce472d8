import { describe, expect, it } from 'vitest';
import { AuthRules, mayAccessStanza, parseAuthRule } from '../../repo-server/auth';

describe('--auth rules', () => {
  it('parses agent, admin and viewer rules', () => {
    expect(parseAuthRule('db1=agent:main,other')).toEqual({ identity: 'db1', role: 'agent', stanzas: ['main', 'other'] });
    expect(parseAuthRule('ops=admin')).toEqual({ identity: 'ops', role: 'admin', stanzas: null });
    expect(parseAuthRule('v=viewer:main')).toEqual({ identity: 'v', role: 'viewer', stanzas: ['main'] });
  });

  it('refuses malformed rules, agents without stanzas and duplicate identities', () => {
    expect(() => parseAuthRule('db1')).toThrow(/CN=ROLE/);
    expect(() => parseAuthRule('db1=root')).toThrow(/CN=ROLE/);
    expect(() => parseAuthRule('db1=agent')).toThrow(/must be granted stanzas/);
    expect(() => AuthRules.parse(['a=admin', 'a=viewer'])).toThrow(/twice/);
  });

  it('limits a rule to its stanzas', () => {
    const agent = parseAuthRule('db1=agent:main');
    expect(mayAccessStanza(agent, 'main')).toBe(true);
    expect(mayAccessStanza(agent, 'other')).toBe(false);
    expect(mayAccessStanza(parseAuthRule('ops=admin'), 'anything')).toBe(true);
  });
});
