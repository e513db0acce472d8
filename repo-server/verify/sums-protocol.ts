/** Messages between the server's thread and the verify threads (sums-pool.ts, sums-worker.ts). */
import type { MessagePort } from 'node:worker_threads';
import type { StoredSums, SumsRequest } from './stored-sums';

export type ToWorker =
  /** read and sum these files, in order */
  | { kind: 'sums'; id: number; files: SumsRequest[] }
  /** to the thread reading a large file: another thread decodes frames for it through `port` */
  | { kind: 'help'; port: MessagePort }
  /** to an idle thread: decode the frames that come through `port` until it closes */
  | { kind: 'assist'; port: MessagePort };

export type FromWorker =
  | { kind: 'sums'; id: number; sums: StoredSums[] }
  /** the file it helped with is done: the thread is free again */
  | { kind: 'assisted' };

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
