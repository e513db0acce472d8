import { describe, expect, it } from 'vitest';
import { formatLabelTime, newBackupLabel, newFullLabel } from '../../repo-server/commands/label';

describe('backup labels', () => {
  const at = new Date(2026, 10, 24, 10, 10, 10);

  it('formats YYYYMMDD-HHMMSSF from the time', () => {
    expect(formatLabelTime(at)).toBe('20261124-101010');
    expect(newFullLabel([], at)).toBe('20261124-101010F');
  });

  it('moves one second on when the latest label has the same time, and refuses a clock that went back', () => {
    expect(newFullLabel(['20261124-101010F'], at)).toBe('20261124-101011F');
    expect(newFullLabel(['20261124-101010F_20261124-101010I'], at)).toBe('20261124-101011F');
    expect(() => newFullLabel(['20261124-120000F'], at)).toThrow(/clock or the time zone/);
  });
});

describe('diff and incr labels', () => {
  const at = new Date(2026, 10, 25, 2, 0, 0);

  it('are the full label of the set, then the time and D or I', () => {
    expect(newBackupLabel('diff', '20261124-101010F', ['20261124-101010F'], at)).toBe('20261124-101010F_20261125-020000D');
    // an incr whose prior is itself an incr still names the full of the set
    expect(newBackupLabel('incr', '20261124-101010F_20261124-230000I', ['20261124-101010F', '20261124-101010F_20261124-230000I'], at))
      .toBe('20261124-101010F_20261125-020000I');
  });

  it('sort after every existing label, moving on a second when needed', () => {
    expect(newBackupLabel('diff', '20261124-101010F', ['20261124-101010F_20261125-020000I'], at)).toBe('20261124-101010F_20261125-020001D');
    expect(() => newBackupLabel('incr', '20261124-101010F', ['20261126-000000F'], at)).toThrow(/clock or the time zone/);
  });
});
