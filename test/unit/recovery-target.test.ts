import { describe, expect, it } from 'vitest';
import { describeRecovery, parseTargetTime, recoverySettings, validateRecoveryTarget } from '../../shared/restore/recovery-target';
import { confString, updateAutoConf } from '../../agent/restore/recovery-config';

const valid = (r: Parameters<typeof validateRecoveryTarget>[0]) => validateRecoveryTarget(r);
const settings = (r: Parameters<typeof validateRecoveryTarget>[0]) => recoverySettings(valid(r), 'get %f "%p"');

describe('restore --type and --target-* options', () => {
  it('defaults to type default with nothing else', () => {
    expect(valid(null)).toEqual({ type: 'default', target: '', target_exclusive: false, target_action: '', target_timeline: '' });
    expect(valid({ type: '' }).type).toBe('default');
  });

  it('refuses what does not fit the type, as pgBackRest does, naming the option and the types it fits', () => {
    expect(() => valid({ type: 'later' })).toThrow(/--type must be default, immediate, time, name, xid, lsn, standby, preserve or none, not 'later'/);
    for (const type of ['time', 'name', 'xid', 'lsn']) expect(() => valid({ type })).toThrow(new RegExp(`--type ${type} needs --target`));
    for (const type of ['default', 'immediate', 'standby', 'preserve', 'none']) {
      expect(() => valid({ type, target: 'x' })).toThrow(/--target applies to --type time, name, xid or lsn/);
    }
    for (const type of ['default', 'standby', 'preserve', 'none']) {
      expect(() => valid({ type, target_action: 'promote' })).toThrow(/--target-action applies to --type immediate, time, name, xid or lsn/);
    }
    for (const type of ['default', 'immediate', 'name', 'standby']) {
      expect(() => valid({ type, target: type === 'name' ? 'r' : '', target_exclusive: true })).toThrow(/--target-exclusive applies to --type time, xid or lsn/);
    }
    for (const type of ['immediate', 'preserve', 'none']) {
      expect(() => valid({ type, target_timeline: 'latest' })).toThrow(/--target-timeline applies to --type default, time, name, xid, lsn or standby/);
    }
    expect(() => valid({ type: 'name', target: 'r', target_action: 'stop' })).toThrow(/--target-action must be pause, promote or shutdown/);
    expect(() => valid({ target_timeline: 'newest' })).toThrow(/current, latest or a timeline number/);
  });

  it('checks target values that PostgreSQL would only reject at start-up', () => {
    expect(() => valid({ type: 'xid', target: '12a' })).toThrow(/not a transaction id/);
    expect(() => valid({ type: 'lsn', target: '0/ZZ' })).toThrow(/not an LSN/);
    expect(() => valid({ type: 'name', target: 'x'.repeat(64) })).toThrow(/longer than a restore point name/);
    expect(() => valid({ type: 'name', target: 'a\nrestore_command = evil' })).toThrow(/control characters/);
    expect(valid({ type: 'lsn', target: '0/3000028', target_exclusive: true, target_timeline: '2' })).toMatchObject({ type: 'lsn', target_exclusive: true, target_timeline: '2' });
    for (const timeline of ['current', 'latest', '3', '0x1F']) expect(valid({ target_timeline: timeline }).target_timeline).toBe(timeline);
  });

  it('becomes the settings PostgreSQL >= 12 reads, like pgBackRest writes them', () => {
    expect(settings({})).toEqual([['restore_command', 'get %f "%p"']]);
    expect(settings({ type: 'name', target: 'release', target_action: 'promote' })).toEqual([
      ['restore_command', 'get %f "%p"'], ['recovery_target_name', 'release'], ['recovery_target_action', 'promote'],
    ]);
    expect(settings({ type: 'time', target: '2026-01-01 00:00:00+00', target_exclusive: true, target_action: 'pause', target_timeline: 'current' })).toEqual([
      ['restore_command', 'get %f "%p"'], ['recovery_target_time', '2026-01-01 00:00:00+00'], ['recovery_target_inclusive', 'false'], ['recovery_target_timeline', 'current'],
    ]);
    // immediate never needs another timeline, and "latest" could make recovery fail
    expect(settings({ type: 'immediate' })).toEqual([['restore_command', 'get %f "%p"'], ['recovery_target', 'immediate'], ['recovery_target_timeline', 'current']]);
    expect(settings({ type: 'standby', target_timeline: 'latest' })).toEqual([['restore_command', 'get %f "%p"'], ['recovery_target_timeline', 'latest']]);
    expect(settings({ type: 'preserve' })).toBeNull();
    expect(settings({ type: 'none' })).toBeNull();
    expect(describeRecovery(valid({ type: 'standby' }))).toBe('standby.signal, recovery to the end of the archived WAL');
    expect(describeRecovery(valid({ type: 'xid', target: '7' }))).toBe("recovery.signal, recovery_target_xid = '7'");
  });

  it('reads target times with and without a zone', () => {
    expect(parseTargetTime('2026-11-24 10:00:00+00')).toBe(Date.UTC(2026, 10, 24, 10));
    expect(parseTargetTime('2026-11-24 10:00:00.250+02')).toBe(Date.UTC(2026, 10, 24, 8, 0, 0, 250));
    expect(parseTargetTime('2026-11-24T10:00:00-05:30')).toBe(Date.UTC(2026, 10, 24, 15, 30));
    expect(parseTargetTime('2026-11-24 10:00:00Z')).toBe(Date.UTC(2026, 10, 24, 10));
    expect(parseTargetTime('2026-11-24 10:00:00')).toBe(new Date(2026, 10, 24, 10).getTime());
    expect(parseTargetTime('yesterday')).toBeUndefined();
    expect(parseTargetTime('2026-13-01 00:00:00')).toBeUndefined();
  });
});

describe('postgresql.auto.conf after a restore', () => {
  const stamp = '2026-11-24 10:00:00 UTC';

  it('quotes values for the config parser', () => {
    expect(confString("it's")).toBe("'it''s'");
    expect(confString('C:\\wal')).toBe("'C:\\\\wal'");
  });

  it('comments out earlier recovery settings and appends the new ones once', () => {
    const earlier = [
      '# Do not edit this file manually!',
      "work_mem = '64MB'",
      '',
      '# Recovery settings generated by pgrepo restore on 2026-11-23 09:00:00 UTC',
      "restore_command = 'old %f \"%p\"'",
      "recovery_target_name = 'release'",
      "  recovery_target_action='promote'",
      '',
    ].join('\n');
    const out = updateAutoConf(earlier, [['restore_command', 'new %f "%p"'], ['recovery_target_xid', '42']], stamp);
    const active = out.split('\n').filter((l) => /^\s*[a-z_]+\s*=/.test(l));
    expect(active).toEqual(["work_mem = '64MB'", "restore_command = 'new %f \"%p\"'", "recovery_target_xid = '42'"]);
    expect(out).toContain(`# Removed by pgrepo restore on ${stamp} # recovery_target_name = 'release'`);
    expect(out).toContain(`# Removed by pgrepo restore on ${stamp} # restore_command = 'old %f "%p"'`);
    // restoring again comments the new ones and does not pile up
    const again = updateAutoConf(out, [['restore_command', 'new %f "%p"']], stamp);
    expect(again.split('\n').filter((l) => /^\s*restore_command\s*=/.test(l))).toHaveLength(1);
    expect(again.split('\n').filter((l) => /^\s*recovery_target/.test(l))).toHaveLength(0);
  });

  it('--type none comments out targets but writes nothing and keeps restore_command', () => {
    const out = updateAutoConf("restore_command = 'x'\nrecovery_target = 'immediate'\n", null, stamp);
    expect(out).toBe(`restore_command = 'x'\n# Removed by pgrepo restore on ${stamp} # recovery_target = 'immediate'\n`);
  });
});
