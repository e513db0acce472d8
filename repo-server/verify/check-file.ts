import type { StoredSums } from './stored-sums';

/** What a stored file must be; undefined fields are not known and not checked. */
export interface Expected {
  /** SHA-1 of the original bytes */
  checksum: string;
  size?: number;
  /** SHA-1 and size of the bytes as stored */
  repoChecksum?: string;
  repoSize?: number;
}

export interface FileProblem {
  kind: 'missing' | 'checksum' | 'size' | 'unreadable';
  detail: string;
}

export interface FileCheck {
  problem?: FileProblem;
  storedBytes: number;
  originalBytes: number;
  /** the first bytes of the original, when asked for (a WAL segment's header) */
  head?: Buffer;
}

/**
 * A stored file's verdict from what reading it once gave (stored-sums.ts): SHA-1 and size of the
 * stored bytes and of the original, compared with what the manifest (or the WAL file's name) says.
 */
export function judgeStoredFile(sums: StoredSums, compressType: string, expected: Expected): FileCheck {
  if (sums.error) {
    if (sums.error.code === 'ENOENT') return { problem: { kind: 'missing', detail: 'the file is missing' }, storedBytes: 0, originalBytes: 0 };
    return { problem: { kind: 'unreadable', detail: `cannot be read or decompressed (${compressType}): ${sums.error.message}` }, storedBytes: 0, originalBytes: 0 };
  }
  const result: FileCheck = { storedBytes: sums.storedSize, originalBytes: sums.originalSize, head: sums.head && Buffer.from(sums.head.buffer, sums.head.byteOffset, sums.head.byteLength) };
  const problems: FileProblem[] = [];
  if (expected.repoSize !== undefined && sums.storedSize !== expected.repoSize) {
    problems.push({ kind: 'size', detail: `stored size is ${sums.storedSize} bytes, the manifest says ${expected.repoSize}` });
  }
  if (expected.repoChecksum !== undefined && sums.storedChecksum !== expected.repoChecksum) {
    problems.push({ kind: 'checksum', detail: `stored bytes have SHA-1 ${sums.storedChecksum}, expected ${expected.repoChecksum}` });
  }
  if (expected.size !== undefined && sums.originalSize !== expected.size) {
    problems.push({ kind: 'size', detail: `original size is ${sums.originalSize} bytes, expected ${expected.size}` });
  }
  if (sums.originalChecksum !== expected.checksum) {
    problems.push({ kind: 'checksum', detail: `content has SHA-1 ${sums.originalChecksum}, expected ${expected.checksum}` });
  }
  if (problems.length) result.problem = { kind: problems.some((p) => p.kind === 'checksum') ? 'checksum' : 'size', detail: problems.map((p) => p.detail).join('; ') };
  return result;
}
