import { describe, expect, it } from 'vitest';
import { StanzaLocks } from '../../../repo-server/repo/stanza-store';

describe('stanza locks', () => {
  it('one backup or expire per stanza; other stanzas are free; released locks can be taken again', () => {
    const locks = new StanzaLocks();
    const release = locks.acquire('main', 'expire');
    expect(() => locks.acquire('main', 'backup')).toThrow(/^an expire of stanza 'main' is already running; wait for it to finish, then run backup again$/);
    const other = locks.acquire('other', 'backup');
    expect(locks.holder('main')).toBe('expire');
    release();
    expect(locks.holder('main')).toBeUndefined();
    locks.acquire('main', 'backup');
    expect(() => locks.acquire('main', 'expire')).toThrow(/^a backup of stanza 'main' is already running/);
    other();
  });
});
