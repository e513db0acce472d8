/**
 * The smoke run of the backup benchmark (bench/backup-matrix.ts) on a tiny cluster, for the e2e
 * tests that keep the benchmark's code from rotting: one codec, one run, every restore started
 * and compared with the original, nothing written to bench/RESULTS.md.
 */
import path from 'node:path';
import { expect } from 'vitest';
import { formatTable, runMatrix, type MatrixResult, type Tool } from '../../bench/backup-matrix';
import { clusterKind, ensureCluster, type ClusterName } from '../../bench/clusters';
import { makeTempDir } from './pg';

/** Cluster sizes of the smoke runs: a few MiB. */
export const TINY = { pgbenchScale: 1, randomMib: 8, smallTables: 300, mixedBlobMib: 4, mixedPgbenchScale: 1 };

/** Generates the tiny cluster `name` and runs the matrix on it at zst-3, process-max 2. */
export async function benchSmoke(name: ClusterName, o: { basebackup: boolean; rssProcessMax: number[] }): Promise<MatrixResult> {
  const dir = await makeTempDir('bench');
  const bench = await ensureCluster(dir, clusterKind(name, TINY), dir);
  const r = await runMatrix({ workDir: path.join(dir, 'run'), bench, rows: [{ codec: { type: 'zst', level: 3 }, p: 2 }], rssProcessMax: o.rssProcessMax, runs: 1, basebackup: o.basebackup, verify: true });
  const table = formatTable(r.rows, r.dataBytes);
  console.log(table);
  expect(table).toContain('| backup | zst-3 | 2 | 1 |');
  return r;
}

/** Every tool has a backup and a restore row with time, CPU, RSS and (backups) a repository of the data's order; each restore was verified. */
export function expectSaneResult(r: MatrixResult, tools: Tool[]): void {
  for (const what of ['backup', 'restore'] as const) {
    for (const tool of tools) {
      const row = r.rows.find((x) => x.what === what && x.samples[tool]);
      expect(row, `${tool} ${what} row`).toBeDefined();
      const s = row!.samples[tool]!;
      expect(s.wall, `${tool} ${what} wall`).toBeGreaterThan(0);
      expect(s.cpu, `${tool} ${what} CPU`).toBeGreaterThan(0);
      expect(s.rss, `${tool} ${what} peak RSS`).toBeGreaterThan(1024 * 1024);
      // compressed, but of the same order as what was backed up
      if (what === 'backup') expect(s.repoBytes, `${tool} repository bytes`).toBeGreaterThan(r.dataBytes / 20);
    }
  }
  expect([...r.verified].sort()).toEqual([...tools].sort());
}
