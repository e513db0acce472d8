import { describe, expect, it } from 'vitest';
import { verifyText } from '../../repo-server/repoctl/format-verify';
import { expireJson, summarizeExpire } from '../../repo-server/repoctl/format-expire';
import type { VerifyReport__Output } from '../../shared/generated/pgrepo/v1/VerifyReport';
import type { ExpireReport__Output } from '../../shared/generated/pgrepo/v1/ExpireReport';

const damaged: VerifyReport__Output = {
  ok: false,
  problems: [],
  archives: [{
    archive_id: '15-1', files: 9, valid: 9,
    ranges: [{ start: '000000010000000000000001', stop: '000000010000000000000002' }, { start: '000000010000000000000004', stop: '000000010000000000000009' }],
    gaps: [{ start: '000000010000000000000003', stop: '000000010000000000000003' }],
    expired_gaps: [], problems: [], dropped: [],
  }],
  backups: [{
    label: '20261124-101010F', status: 'invalid', files: 970, valid: 969, archive_start: '000000010000000000000003', archive_stop: '000000010000000000000003',
    wal_missing: [{ start: '000000010000000000000003', stop: '000000010000000000000003' }],
    problems: [{ kind: 'unreadable', file: 'backup/main/20261124-101010F/pg_data/base/5/1259.gz', detail: 'cannot be read or decompressed (gz): incorrect header check' }],
  }],
  bytes_read: 3 * 1024 * 1024, bytes_checked: 30 * 1024 * 1024, files_checked: 979,
};

describe('repoctl output for verify and expire', () => {
  it('verify names every damaged file and missing segment, and the throughput', () => {
    const text = verifyText('main', damaged, 2);
    expect(text).toMatch(/^stanza main: verify FOUND PROBLEMS$/m);
    expect(text).toContain('archive 15-1: 9 WAL files, 9 valid; present 000000010000000000000001-000000010000000000000002, 000000010000000000000004-000000010000000000000009');
    expect(text).toContain('missing WAL 000000010000000000000003 (a hole in the archive');
    expect(text).toContain('backup 20261124-101010F: invalid (969/970 files valid, WAL 000000010000000000000003-000000010000000000000003)');
    expect(text).toContain('missing WAL 000000010000000000000003, which the backup needs to be consistent');
    expect(text).toContain('unreadable: backup/main/20261124-101010F/pg_data/base/5/1259.gz: cannot be read or decompressed (gz): incorrect header check');
    expect(text).toContain('read 979 files, 3.0MiB stored, 30.0MiB decompressed, in 2.0s: 1.5MiB/s stored, 15.0MiB/s decompressed');
  });

  it('expire sums up what went, or would go', () => {
    const r: ExpireReport__Output = {
      dry_run: true, error: '', warnings: [], removed: ['backup directory 20261120-000000F_20261121-000000I'], wal_files: 12,
      backups: [{ label: '20261120-000000F', type: 'full', reason: 'repo-retention-full=1', set: ['20261120-000000F', '20261120-000000F_20261121-000000D'] }],
      wal: [{ archive_id: '15-1', start: '000000010000000000000001', stop: '00000001000000000000000C', files: 12, reason: 'older than ...' }],
    };
    expect(summarizeExpire(r)).toBe('would expire 2 backups (20261120-000000F, 20261120-000000F_20261121-000000D) and 12 WAL files, and remove backup directory 20261120-000000F_20261121-000000I');
    expect(summarizeExpire({ ...r, dry_run: false, backups: [], removed: [], wal_files: 1 })).toBe('expired no backups and 1 WAL file');
    expect(expireJson(r)).toMatchObject({ 'dry-run': true, backup: [{ label: '20261120-000000F' }], archive: [{ id: '15-1', files: 12 }], 'wal-files': 12 });
  });
});
