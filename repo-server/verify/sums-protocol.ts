/** Messages between the server's thread and the verify threads (sums-pool.ts, sums-worker.ts). */
import type { MessagePort } from 'node:worker_threads';
import type { VerifyProblem } from '../../shared/generated/pgrepo/v1/VerifyProblem';
import type { StoredSums, SumsRequest } from './stored-sums';

export type ToWorker =
  /** read and sum these files, in order */
  | { kind: 'sums'; id: number; files: SumsRequest[] }
  /** to the thread reading a large file: another thread decodes frames for it through `port` */
  | { kind: 'help'; port: MessagePort }
  /** to an idle thread: decode the frames that come through `port` until it closes */
  | { kind: 'assist'; port: MessagePort }
  /** load a backup's manifest (manifest-rows.ts) */
  | { kind: 'manifest'; file: string; key: string };

export type FromWorker =
  | { kind: 'sums'; id: number; sums: StoredSums[] }
  /** the file it helped with is done: the thread is free again */
  | { kind: 'assisted' }
  /** some of the manifest's files, a JSON array of rows */
  | { kind: 'manifest-rows'; rows: string }
  /** the manifest is loaded (its rows sent), or could not be (problems), or the thread failed (error) */
  | { kind: 'manifest'; problems: VerifyProblem[]; loaded: boolean; error?: string };

export interface FrameRequest {
  id: number;
  type: string;
  frame: Uint8Array;
}

export interface FrameReply {
  id: number;
  data?: Uint8Array;
  error?: string;
}
