/**
 * The benchmark's clusters, each generated once into `<benchDir>/<name>/pg` and reused while its
 * parameters stay the same (a `ready` marker beside it holds them, and how long generation took).
 * Each kind knows how to describe itself and how to fingerprint its data, so a restored copy can
 * be checked against the original.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { clusterAt, freePort, initCluster, pgBindir, query, queryDb, startCluster, stopCluster, type Cluster } from '../test/harness/pg';
import { runOk } from '../test/harness/system';
import { ownedDir } from './setup';

const MiB = 1024 * 1024;

export type ClusterName = 'pgbench' | 'random' | 'small-tables' | 'mixed';
export const CLUSTER_NAMES: ClusterName[] = ['pgbench', 'random', 'small-tables', 'mixed'];

export interface ClusterSizes {
  /** pgbench cluster: pgbench -i scale (100 ≈ 1.5 GB) */
  pgbenchScale: number;
  /** random cluster: MiB of poorly compressible data, about 55 % of it in one table's TOAST file */
  randomMib: number;
  /** small-tables cluster: how many one-page tables */
  smallTables: number;
  /** mixed cluster (the first benchmark's): MiB of random bytea in one TOAST file + pgbench scale */
  mixedBlobMib: number;
  mixedPgbenchScale: number;
}

export const DEFAULT_SIZES: ClusterSizes = { pgbenchScale: 100, randomMib: 1500, smallTables: 100_000, mixedBlobMib: 950, mixedPgbenchScale: 20 };

export interface ClusterKind {
  name: ClusterName;
  /** what it holds, for the report */
  title: string;
  /** the parameters it was generated with: a change regenerates it */
  params: Record<string, number>;
  /** small files are what this cluster is about: both tools bundle them */
  bundle: boolean;
  generate(c: Cluster): Promise<void>;
  /** a text that differs when the data differs (cheap enough to run on every verified restore) */
  fingerprint(c: Cluster): Promise<string>;
}

export interface BenchCluster {
  kind: ClusterKind;
  cluster: Cluster;
  /** seconds the generation took (from the marker, so also for a reused cluster) */
  generationSeconds: number;
  reused: boolean;
}

async function psql(c: Cluster, sql: string): Promise<void> {
  await runOk(path.join(pgBindir(), 'psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', c.socketDir, '-p', String(c.port), '-U', 'postgres', '-d', 'postgres', '-c', sql], { asPostgres: true, timeoutMs: 3_600_000 });
}

async function pgbenchInit(c: Cluster, scale: number): Promise<void> {
  await runOk(path.join(pgBindir(), 'pgbench'), ['-i', '-q', '-s', String(scale), '-h', c.socketDir, '-p', String(c.port), '-U', 'postgres', 'postgres'], { asPostgres: true, timeoutMs: 3_600_000 });
}

/** Runs `n` batches on `workers` connections at once (generation uses both cores). */
async function inParallel(n: number, workers: number, batch: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: workers }, async () => {
    while (next < n) await batch(next++);
  }));
}

const one = async (c: Cluster, sql: string): Promise<string> => {
  const rows = await query<{ v: string | null }>(c, sql);
  return String(rows[0]?.v);
};

function pgbenchKind(scale: number): ClusterKind {
  return {
    name: 'pgbench', title: `pgbench -i -s ${scale} (ordinary, very compressible tables)`, params: { scale, v: 1 }, bundle: false,
    generate: (c) => pgbenchInit(c, scale),
    // every page read (data checksums are on), every row's text hashed
    fingerprint: (c) => one(c, `select count(*) || ':' || sum(aid::bigint) || ':' || sum(abalance) || ':' || sum(hashtext(a::text)::bigint) || ':' || (select sum(bbalance) from pgbench_branches) as v from pgbench_accounts a`),
  };
}

/**
 * Poorly compressible, as real data that is already compressed or random is: random bytea and
 * base64 text (random bytes spelled in 64 letters: gzip gets ~0.75, not 0.5). One table whose
 * TOAST relation is one large file (about 55 % of the data, so one file dominates and chunking
 * shows), and medium tables of rows with bytea and text inline, with primary keys.
 */
function randomKind(mib: number): ClusterKind {
  const bigMib = Math.round(mib * 0.55);
  const medium = 6;
  const mediumMib = (mib - bigMib) / medium;
  return {
    name: 'random', title: `random bytea and base64 text (poorly compressible): table docs, one ${bigMib} MiB TOAST file; ${medium} tables events_1..${medium} of ~${Math.round(mediumMib)} MiB with indexes`,
    params: { mib, v: 1 }, bundle: false,
    async generate(c) {
      await query(c, 'create extension if not exists pgcrypto');
      // external: stored as is, PostgreSQL's own compression neither helps nor costs
      await query(c, 'create table docs (id int primary key, title text, body text)');
      await query(c, 'alter table docs alter column body set storage external');
      for (let i = 1; i <= medium; i++) {
        await query(c, `create table events_${i} (id bigint primary key, at timestamptz not null, kind text not null, payload bytea, note text)`);
        await query(c, `alter table events_${i} alter column payload set storage main, alter column note set storage main`);
      }
      // docs: 8 KiB of base64 text a row (6 KiB of random bytes), 4000 rows a batch
      const docRows = Math.ceil((bigMib * MiB) / 8300);
      const perBatch = 4000;
      const jobs: Array<() => Promise<void>> = [];
      for (let from = 1; from <= docRows; from += perBatch) {
        const to = Math.min(docRows, from + perBatch - 1);
        jobs.push(() => query(c, `insert into docs select g, 'document ' || g, (select string_agg(encode(gen_random_bytes(768), 'base64'), ' ') from generate_series(1, 8) where g > 0)
                                    from generate_series(${from}, ${to}) g`).then(() => undefined));
      }
      // events: ~620 bytes a row (300 random bytes + 300 chars of base64 text), inline
      const eventRows = Math.ceil((mediumMib * MiB) / 700);
      for (let i = 1; i <= medium; i++) {
        for (let from = 1; from <= eventRows; from += 50_000) {
          const to = Math.min(eventRows, from + 49_999);
          jobs.push(() => query(c, `insert into events_${i} select g, now() - g * interval '1 second', (array['login','order','refund','view'])[1 + g % 4],
                                      gen_random_bytes(300), encode(gen_random_bytes(225), 'base64') from generate_series(${from}, ${to}) g`).then(() => undefined));
        }
      }
      await inParallel(jobs.length, 2, (i) => jobs[i]());
    },
    fingerprint: (c) => one(c, `select (select count(*) || ':' || sum(octet_length(body)) || ':' || md5(string_agg(body, '' order by id)) from docs where id % 97 = 0)
                                || ':' || (select count(*) || ':' || md5(string_agg(payload::text, '' order by id)) from events_1 where id % 997 = 0)
                                || ':' || (select count(*) from events_${medium}) as v`),
  };
}

/**
 * Many one-page tables: created in transactions of 1000 tables (a DO block each) on two
 * connections, so 100,000 take minutes, not the hours of one CREATE at a time.
 */
function smallTablesKind(n: number): ClusterKind {
  const perTx = 1000;
  return {
    name: 'small-tables', title: `${n} small tables (st_1..st_${n}, one row each: one 8 KiB file per table)`, params: { n, v: 1 }, bundle: true,
    async generate(c) {
      await inParallel(Math.ceil(n / perTx), 2, async (b) => {
        const from = b * perTx + 1;
        const to = Math.min(n, from + perTx - 1);
        await psql(c, `do $$ begin for i in ${from}..${to} loop
                          execute format('create table st_%s (id int, v int, note varchar(40))', i);
                          execute format('insert into st_%s values (%s, %s, %L)', i, i, i * 7, 'row of table ' || i);
                        end loop; end $$`);
      });
    },
    fingerprint: (c) => one(c, `select (select count(*) from pg_class where relname ~ '^st_[0-9]+$' and relkind = 'r')
                                || ':' || (select sum(v) from st_1) || ':' || (select sum(v) from st_${Math.ceil(n / 2)}) || ':' || (select note from st_${n}) as v`),
  };
}

/** The first benchmark's cluster: one ~1 GB TOAST file of random bytes plus pgbench tables. */
function mixedKind(blobMib: number, scale: number): ClusterKind {
  return {
    name: 'mixed', title: `one table whose TOAST file holds ${blobMib} MiB of random bytes + pgbench -i -s ${scale}`,
    // the same marker as before this module existed, so the cluster already generated is reused
    params: { BLOB_MIB: blobMib, PGBENCH_SCALE: scale, v: 1 }, bundle: false,
    async generate(c) {
      await query(c, 'create extension if not exists pgcrypto');
      await query(c, 'create table blob (id int, b bytea)');
      await query(c, 'alter table blob alter column b set storage external');
      const rows = Math.ceil((blobMib * MiB) / 8000);
      for (let done = 0; done < rows; done += 20000) {
        await query(c, `insert into blob select g, (select string_agg(gen_random_bytes(1000), ''::bytea) from generate_series(1, 8) where g > 0)
                        from generate_series($1::int, $2::int) g`, [done + 1, Math.min(rows, done + 20000)]);
      }
      await pgbenchInit(c, scale);
    },
    fingerprint: (c) => one(c, `select (select count(*) || ':' || sum(octet_length(b)) from blob) || ':' || (select count(*) || ':' || sum(abalance) from pgbench_accounts) as v`),
  };
}

export function clusterKind(name: ClusterName, s: ClusterSizes): ClusterKind {
  switch (name) {
    case 'pgbench': return pgbenchKind(s.pgbenchScale);
    case 'random': return randomKind(s.randomMib);
    case 'small-tables': return smallTablesKind(s.smallTables);
    case 'mixed': return mixedKind(s.mixedBlobMib, s.mixedPgbenchScale);
  }
}

/** Where a cluster lives: the mixed one where the first benchmark put it, the others in a directory of their own. */
function clusterPaths(benchDir: string, name: ClusterName): { dir: string; marker: string } {
  if (name === 'mixed') return { dir: path.join(benchDir, 'pg'), marker: path.join(benchDir, 'pg.ready') };
  return { dir: path.join(benchDir, name, 'pg'), marker: path.join(benchDir, name, 'ready') };
}

interface Marker {
  params: Record<string, number>;
  seconds?: number;
}

function readMarker(file: string): Marker | undefined {
  try {
    const m = JSON.parse(fs.readFileSync(file, 'utf8')) as Marker | Record<string, number>;
    // the first benchmark's marker was the bare parameters
    return 'params' in m ? (m as Marker) : { params: m as Record<string, number> };
  } catch {
    return undefined;
  }
}

/**
 * The cluster of this kind under benchDir, generated when missing or made with other parameters,
 * stopped (the caller starts it with its own settings). PostgreSQL's settings for the run are
 * the caller's: port and socket are given at start.
 */
export async function ensureCluster(benchDir: string, kind: ClusterKind, socketDir: string): Promise<BenchCluster> {
  const { dir, marker } = clusterPaths(benchDir, kind.name);
  await ownedDir(path.dirname(dir));
  const port = await freePort();
  const cluster = clusterAt({ dir, port, socketDir, name: kind.name });
  const old = readMarker(marker);
  if (old && JSON.stringify(old.params) === JSON.stringify(kind.params) && fs.existsSync(path.join(dir, 'PG_VERSION'))) {
    return { kind, cluster, generationSeconds: old.seconds ?? NaN, reused: true };
  }
  await fsp.rm(marker, { force: true });
  await fsp.rm(dir, { recursive: true, force: true });
  console.log(`[bench] generating cluster ${kind.name} in ${dir}: ${kind.title} (once; reused while its parameters stay the same)`);
  const t0 = Date.now();
  await initCluster({
    dir, port, socketDir, name: kind.name, archiveMode: true, archiveCommand: '/bin/true',
    settings: { max_wal_size: '4GB', shared_buffers: '128MB', max_locks_per_transaction: 1024, checkpoint_completion_target: 0.9 },
  });
  await startCluster(cluster, { timeoutMs: 120_000 });
  await kind.generate(cluster);
  await query(cluster, 'checkpoint');
  await stopCluster(cluster);
  const seconds = (Date.now() - t0) / 1000;
  fs.writeFileSync(marker, JSON.stringify({ params: kind.params, seconds } satisfies Marker));
  console.log(`[bench] cluster ${kind.name} generated in ${seconds.toFixed(0)} s`);
  return { kind, cluster, generationSeconds: seconds, reused: false };
}

/** One line on what is in the cluster: files, sizes, the largest file. */
export async function describeCluster(c: Cluster): Promise<{ text: string; files: number; largest: number }> {
  const [db] = await queryDb<{ size: string }>(c, 'postgres', 'select pg_database_size(current_database())::text as size');
  let files = 0;
  let largest = 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.name === 'pg_wal' && d === c.dir) continue;
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        files++;
        largest = Math.max(largest, fs.statSync(p).size);
      }
    }
  };
  walk(c.dir);
  return { text: `database ${(Number(db.size) / MiB).toFixed(0)} MiB, ${files} files (pg_wal excluded), largest file ${(largest / MiB).toFixed(0)} MiB`, files, largest };
}
