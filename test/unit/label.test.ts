import { describe, expect, it } from 'vitest';
import { formatLabelTime, newFullLabel } from '../../repo-server/commands/label';

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
