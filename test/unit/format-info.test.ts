import { describe, expect, it } from 'vitest';
import { fleetText, infoJson, infoText } from '../../repo-server/repoctl/format-info';
import type { StanzaInfo__Output } from '../../shared/generated/pgrepo/v1/StanzaInfo';

const stanza: StanzaInfo__Output = {
  name: 'main', status_code: 0, status_message: 'ok', agents: ['db1'], repo_size: 4096,
  db: [{ id: 1, system_id: '7311234567890123456', version: '15' }],
  archive: [{ id: '15-1', min: '000000010000000000000001', max: '000000010000000000000004', db_id: 1 }],
  backup: [{
    label: '20261124-101010F', type: 'full', prior: '', reference: [], timestamp_start: 1795000000, timestamp_stop: 1795000010,
    lsn_start: '0/2000028', lsn_stop: '0/2000100', archive_start: '000000010000000000000002', archive_stop: '000000010000000000000002',
    size: 1000, delta: 1000, repo_size: 100, repo_delta: 100, db_id: 1, error: false, wal_gap: '', wal_incomplete: false,
  }],
  wal_gap: [], wal_dropped: 0, wal_dropped_last: 0,
};

describe('info output', () => {
  it("has pgBackRest's info --output=json shape, with the system identifier as an exact JSON number", () => {
    const text = infoJson([stanza]);
    expect(text).toContain('"system-id": 7311234567890123456');
    const [s] = JSON.parse(text);
    expect(s.name).toBe('main');
    expect(s.status).toMatchObject({ code: 0, message: 'ok' });
    expect(s.archive[0]).toMatchObject({ id: '15-1', min: '000000010000000000000001', max: '000000010000000000000004' });
    expect(s.backup[0]).toMatchObject({
      label: '20261124-101010F', type: 'full', prior: null, reference: null,
      timestamp: { start: 1795000000, stop: 1795000010 }, lsn: { start: '0/2000028', stop: '0/2000100' },
      info: { size: 1000, delta: 1000, repository: { size: 100, delta: 100 } },
    });
  });

  it('prints a readable summary', () => {
    const text = infoText([stanza]);
    expect(text).toMatch(/stanza: main\n\s+status: ok/);
    expect(text).toContain('full backup: 20261124-101010F');
    expect(text).toContain('wal archive min/max (15-1): 000000010000000000000001/000000010000000000000004');
  });

  it('without --stanza: a line per stanza with status, last backup of each type and its age, WAL range, size', () => {
    const broken = { ...stanza, name: 'other', status_code: 3, status_message: 'missing stanza data', backup: [], archive: [], agents: [], repo_size: 0 };
    const lines = fleetText([stanza, broken], 1795000010 + 2 * 3600 + 60).trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^STANZA\s+STATUS\s+LAST FULL\s+LAST DIFF\s+LAST INCR\s+WAL ARCHIVE \(MIN - MAX\)\s+REPO SIZE\s+AGENTS$/);
    expect(lines[1]).toMatch(/^main\s+ok\s+20261124-101010F \(2h01m ago\)\s+-\s+-\s+000000010000000000000001 - 000000010000000000000004\s+4\.0KiB\s+db1$/);
    expect(lines[2]).toMatch(/^other\s+error: missing stanza data\s+-\s+-\s+-\s+-\s+0B\s+-$/);
  });
});

describe('info output of a backup set', () => {
  const incr = {
    ...stanza.backup[0], label: '20261124-101010F_20261125-020000I', type: 'incr', prior: '20261124-101010F', reference: ['20261124-101010F'],
    size: 1000, delta: 40, repo_size: 100, repo_delta: 5, error: true,
  };
  const set: StanzaInfo__Output = { ...stanza, backup: [stanza.backup[0], incr] };

  it('json: prior, references, the three sizes and the error flag, as pgBackRest names them', () => {
    const [s] = JSON.parse(infoJson([set]));
    expect(s.backup[1]).toMatchObject({
      label: incr.label, type: 'incr', prior: '20261124-101010F', reference: ['20261124-101010F'], error: true,
      info: { size: 1000, delta: 40, repository: { size: 100, delta: 5 } },
    });
  });

  it('text: the reference list and a page checksum error line', () => {
    const text = infoText([set]);
    expect(text).toContain(`incr backup: ${incr.label}`);
    expect(text).toContain('backup reference list: 20261124-101010F (prior 20261124-101010F)');
    expect(text).toMatch(/error: invalid page checksums/);
    expect(text.split('\n').filter((l) => /error: invalid page/.test(l))).toHaveLength(1);
  });
});
