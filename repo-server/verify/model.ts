/** What verify works on: the files it reads, grouped as the analysis needs them. */
import type { PgDb } from '../../shared/info/pg-db';
import type { VerifyProblem } from '../../shared/generated/pgrepo/v1/VerifyProblem';
import type { Expected, FileCheck } from './check-file';
import type { SumsRequest } from './stored-sums';

export const DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024;

export const problem = (kind: string, file: string, detail: string): VerifyProblem => ({ kind, file, detail });

/** One stored file to read, with what it must be; `result` once read. */
export interface FileJob {
  /** what is reported; for a file inside a bundle, `<bundle key>#<offset>` */
  key: string;
  /** where its bytes are read, when that is not `key`: a range of a bundle */
  read?: { key: string; range?: { start: number; length: number } };
  /** the file's name in the manifest, when the key does not say it (a file inside a bundle) */
  name?: string;
  compressType: string;
  expected: Expected;
  /** stored bytes, for progress */
  bytes: number;
  wal?: { name: string };
  /** how a verify thread reads it */
  req: SumsRequest;
  result?: FileCheck;
}

export interface ArchiveScan {
  db: PgDb;
  id: string;
  /** WAL file name (000000010000000000000003, 00000002.history, ...) → its stored copies */
  files: Map<string, FileJob[]>;
}
