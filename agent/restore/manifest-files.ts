import type { ManifestFile__Output } from '../../shared/generated/pgrepo/v1/ManifestFile';

/**
 * The manifest's files as the agent holds them for a whole restore, made smaller as each part of
 * the manifest arrives. protobufjs decodes every string afresh, so 100,000 files held 100,000
 * copies each of their mode, owner, group and compress-type (~7 MB of the main thread's heap),
 * and their stored bytes' SHA-1 (~5 MB), which a restore does not use: the stored bytes are
 * counted, and the SHA-1 of the original bytes proves the file. Repeated strings are shared, and
 * `repo_checksum` is left empty.
 */
export class ManifestFileCompactor {
  private readonly strings = new Map<string, string>();

  compact(file: ManifestFile__Output): ManifestFile__Output {
    file.mode = this.shared(file.mode);
    file.user = this.shared(file.user);
    file.group = this.shared(file.group);
    file.compress_type = this.shared(file.compress_type);
    file.reference = this.shared(file.reference);
    file.repo_checksum = '';
    return file;
  }

  private shared(s: string): string {
    const known = this.strings.get(s);
    if (known !== undefined) return known;
    this.strings.set(s, s);
    return s;
  }
}
