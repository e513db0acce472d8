import { describe, expect, it } from 'vitest';
import { ManifestFileCompactor } from '../../agent/restore/manifest-files';
import type { ManifestFile__Output } from '../../shared/generated/pgrepo/v1/ManifestFile';

/** A file as protobufjs decodes it: every string its own copy. */
function decoded(i: number): ManifestFile__Output {
  const fresh = (s: string) => s.split('').join('');
  return {
    name: `pg_data/base/5/${16384 + i}`, size: 8192 * i, timestamp: 1764030000 + i, mode: fresh('0600'), user: fresh('postgres'), group: fresh('postgres'),
    checksum: 'a'.repeat(40), repo_size: 300 + i, repo_checksum: 'b'.repeat(40), reference: fresh(i % 2 ? '20261125-010203F' : ''),
    compress_type: fresh('zst'), bundle_id: i, bundle_offset: 300 * i,
  };
}

describe('ManifestFileCompactor', () => {
  it('keeps everything a restore reads and empties the stored bytes SHA-1', () => {
    const compactor = new ManifestFileCompactor();
    for (let i = 1; i <= 3; i++) {
      const want = { ...decoded(i), repo_checksum: '' };
      expect(compactor.compact(decoded(i))).toEqual(want);
    }
  });

  it('hands back the same object, changed in place', () => {
    const f = decoded(1);
    expect(new ManifestFileCompactor().compact(f)).toBe(f);
    expect(f.repo_checksum).toBe('');
  });
});
