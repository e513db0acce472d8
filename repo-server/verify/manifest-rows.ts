/**
 * A backup's manifest for verify, loaded on a thread of its own: a manifest of 100,000 files
 * takes the best part of a second to parse, which the server's thread must not spend while
 * backups and WAL arrive. What comes back is only what verify needs of each file, in chunks.
 */
import fs from 'node:fs';
import { Worker } from 'node:worker_threads';
import { parseManifest, type ManifestFile } from '../../shared/info/manifest';
import type { VerifyProblem } from '../../shared/generated/pgrepo/v1/VerifyProblem';
import { workerScript } from '../../shared/worker-script';
import { judgeInfoPair } from './info-pair';
import { problem } from './model';
import type { FromWorker } from './sums-protocol';

/** What verify needs of a manifest file. */
export type ManifestRow = Pick<ManifestFile, 'name' | 'size' | 'checksum' | 'repoSize' | 'repoChecksum' | 'reference' | 'bundleId' | 'bundleOffset' | 'compressType'>;

const FIELDS = ['name', 'size', 'checksum', 'repoSize', 'repoChecksum', 'reference', 'bundleId', 'bundleOffset', 'compressType'] as const;
/** Rows per message: each is parsed on the server's thread in a few milliseconds. */
const CHUNK = 5000;

const readText = (file: string): string | null => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
};

/**
 * On the loading thread: the manifest at `file` (and its .copy) judged as an info pair and
 * parsed; the rows go to `send` as JSON arrays of CHUNK rows. The problems found; `loaded` when
 * the files could be read from the manifest.
 */
export function loadManifestRows(file: string, key: string, send: (rows: string) => void): { problems: VerifyProblem[]; loaded: boolean } {
  const pair = judgeInfoPair(key, [readText(file), readText(`${file}.copy`)]);
  if (!pair.sections) return { problems: pair.problems, loaded: false };
  let files: ManifestFile[];
  try {
    files = parseManifest(pair.sections, key).files;
  } catch (err) {
    return { problems: [...pair.problems, problem('manifest', key, (err as Error).message)], loaded: false };
  }
  for (let i = 0; i < files.length; i += CHUNK) send(JSON.stringify(files.slice(i, i + CHUNK).map((f) => FIELDS.map((k) => f[k] ?? null))));
  return { problems: pair.problems, loaded: true };
}

/**
 * On the server's thread: loads the manifest on a thread started for it; `each` gets its files'
 * rows, a chunk at a time, with the event loop free between chunks.
 */
export async function readManifestOffThread(file: string, key: string, each: (rows: ManifestRow[]) => void): Promise<{ problems: VerifyProblem[]; loaded: boolean }> {
  const worker = new Worker(workerScript(__dirname, 'sums-worker.js'));
  try {
    return await new Promise((resolve, reject) => {
      // a thread's messages are all handled in one turn of the event loop: the chunks wait here and are handled one per turn
      const chunks: string[] = [];
      let result: { problems: VerifyProblem[]; loaded: boolean } | undefined;
      let scheduled = false;
      const pump = () => {
        scheduled = false;
        const chunk = chunks.shift();
        try {
          if (chunk) each((JSON.parse(chunk) as unknown[][]).map((r) => Object.fromEntries(FIELDS.map((k, i) => [k, r[i] ?? undefined])) as unknown as ManifestRow));
        } catch (err) {
          reject(err);
          return;
        }
        if (chunks.length) schedule();
        else if (result) resolve(result);
      };
      const schedule = () => {
        if (!scheduled) setImmediate(pump);
        scheduled = true;
      };
      worker.on('message', (m: FromWorker) => {
        if (m.kind === 'manifest-rows') {
          chunks.push(m.rows);
        } else if (m.kind === 'manifest') {
          if (m.error) {
            reject(new Error(m.error));
            return;
          }
          result = { problems: m.problems, loaded: m.loaded };
        }
        schedule();
      });
      worker.on('error', reject);
      worker.on('exit', (code) => reject(new Error(`the thread loading ${key} exited (code ${code})`)));
      worker.postMessage({ kind: 'manifest', file, key });
    });
  } finally {
    await worker.terminate();
  }
}
