import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../shared/errors';
import { describeRecovery, validateRecoveryTarget, type ValidRecoveryTarget } from '../../shared/restore/recovery-target';
import type { RestoreJob__Output } from '../../shared/generated/pgrepo/v1/RestoreJob';
import type { JobReply } from '../../shared/generated/pgrepo/v1/JobReply';
import type { ManifestFile__Output } from '../../shared/generated/pgrepo/v1/ManifestFile';
import type { ManifestPart__Output } from '../../shared/generated/pgrepo/v1/ManifestPart';
import type { RestoreSummary__Output } from '../../shared/generated/pgrepo/v1/RestoreSummary';
import type { AgentContext } from '../context';
import { largestFirst } from '../transfer/schedule';
import { CodecPool } from '../../shared/stream/codec-pool';
import { forEachLimited, ProgressReporter } from '../../shared/progress';
import { syncDirectory, syncFile, syncFileSystems } from '../../shared/fs-sync';
import { assertDataDirectoryOrEmpty, assertNotRunning, claimRestoreTarget, prepareEmptyDirectory } from './target';
import { sleep } from '../../shared/sleep';
import { writeRecoveryConfig } from './recovery-config';
import { RestoreLayout, tablespaceTargets } from './layout';
import { cleanTree, type ManifestIndex } from './clean';
import { compareLocalFile, writeZeroedFile, type LocalState } from './file';
import { fetchOrdinarily, restoreItems } from './batch';
import { RestoreFetchPool, UnframedFiles } from './fetch-pool';
import { partsFor, restoreInParts } from './split';
import { zeroedFileFilter } from './selective';
import { ManifestFileCompactor } from './manifest-files';

type Reply = (reply: Omit<JobReply, 'job_id'>) => void;

interface ManifestView {
  label: string;
  first: ManifestPart__Output;
  files: ManifestFile__Output[];
}

const PG_CONTROL = 'pg_data/global/pg_control';
// links in pg_tblspc are made from the tablespace mapping; a restored tablespace_map would make PostgreSQL
// re-create them from the places at backup time (pgBackRest leaves it out for the same reason)
const TABLESPACE_MAP = 'pg_data/tablespace_map';
const AUTO_CONF = 'postgresql.auto.conf';
const PRESERVED = [AUTO_CONF, 'recovery.signal', 'standby.signal'];

async function fetchManifest(ctx: AgentContext, job: RestoreJob__Output): Promise<ManifestView> {
  const parts: ManifestPart__Output[] = [];
  const compactor = new ManifestFileCompactor();
  for await (const part of ctx.client.GetManifest({ stanza: job.stanza, label: job.label }) as AsyncIterable<ManifestPart__Output>) {
    part.files.forEach((f) => compactor.compact(f));
    parts.push(part);
  }
  if (parts.length === 0 || !parts[0].cluster) throw new UserError(`the server sent no manifest for backup ${job.label}`);
  return { label: parts[0].label, first: parts[0], files: parts.flatMap((p) => p.files) };
}

function describeMode(job: RestoreJob__Output): string {
  if (job.delta) return job.force ? 'delta (size and time)' : 'delta (checksum)';
  return job.force ? 'force' : 'empty';
}

async function readLink(p: string): Promise<string | undefined> {
  try {
    return await fsp.readlink(p);
  } catch {
    return undefined;
  }
}

/** Directories with the manifest's modes, and links (tablespaces at their mapped places). */
async function buildPaths(view: ManifestView, layout: RestoreLayout, links: ReadonlyMap<string, string>): Promise<void> {
  for (const p of view.first.paths) {
    const local = layout.localPath(p.name);
    await fsp.mkdir(local, { recursive: true, mode: parseInt(p.mode, 8) });
    await fsp.chmod(local, parseInt(p.mode, 8));
  }
  for (const link of view.first.links) {
    const at = layout.localPath(link.name);
    const target = links.get(link.name)!;
    if ((await readLink(at)) === target) continue;
    await fsp.rm(at, { recursive: true, force: true });
    await fsp.symlink(target, at);
  }
}

/** Restore files the backup does not need here: the tablespace_map, and a postgresql.auto.conf --type preserve keeps. */
function filesToRestore(view: ManifestView, kept: ReadonlySet<string>): ManifestFile__Output[] {
  return view.files.filter((f) => f.name !== TABLESPACE_MAP && !(kept.has(AUTO_CONF) && f.name === `pg_data/${AUTO_CONF}`));
}

/**
 * Makes the target ready for the files: with --delta/--force, removes what the backup lacks (and pg_control first,
 * so that a restore stopped half-way leaves a mix PostgreSQL refuses to start); else it must be empty. Returns
 * how many entries were removed.
 */
async function prepareTarget(job: RestoreJob__Output, view: ManifestView, layout: RestoreLayout, files: ManifestFile__Output[],
  links: ReadonlyMap<string, string>, kept: ReadonlySet<string>, log: AgentContext['log']): Promise<number> {
  if (!job.delta && !job.force) {
    prepareEmptyDirectory(layout.pgData, 'restore target', kept);
    for (const [oid, dir] of layout.tablespaces) prepareEmptyDirectory(path.join(dir, layout.tablespaceId), `tablespace ${oid} directory`);
    return 0;
  }
  assertDataDirectoryOrEmpty(layout.pgData);
  await fsp.rm(path.join(layout.pgData, 'global', 'pg_control'), { force: true });
  const index: ManifestIndex = { files: new Set(files.map((f) => f.name)), paths: new Set(view.first.paths.map((p) => p.name)), links };
  let removed = 0;
  for (const tree of layout.ownedTrees()) {
    removed += await cleanTree(tree, index, tree.name === 'pg_data' ? kept : new Set(), (p, what) => log.debug({ path: p }, `removed ${what} the backup does not have`));
  }
  return removed;
}

/**
 * Everything written so far on disk for good, before pg_control makes the directory startable.
 * `written` holds the manifest's files, not their paths: 100,000 paths held to the end of a
 * restore were ~9 MB of the main thread's heap, for a fallback that seldom runs.
 */
async function makeDurable(written: readonly ManifestFile__Output[], layout: RestoreLayout): Promise<void> {
  if (written.length === 0 || (await syncFileSystems([layout.pgData, ...layout.tablespaces.values()]))) return;
  await forEachLimited(written.map((f) => layout.localPath(f.name)), 8, syncFile);
}

/**
 * A restore job: the manifest from the server, then the target made to hold exactly the backup: into an empty
 * directory, or over an existing one with --delta (matching files kept, the rest fetched, extras removed) or
 * --force; then the recovery settings, and pg_control last, so a restore that stops half-way leaves a
 * directory PostgreSQL refuses to start.
 */
async function restoreInto(pgData: string, ctx: AgentContext, job: RestoreJob__Output, reply: Reply, cancelled: () => boolean): Promise<void> {
  const recovery = validateRecoveryTarget(job.recovery);
  assertNotRunning(pgData);
  // files are fetched, decoded, checked and written by process-max worker threads with channels of their own;
  // they start (load their code, dial the server) while the manifest arrives and the target is prepared
  const fetchers = new RestoreFetchPool(job.process_max || 1, { server: ctx.server, tls: ctx.tls });
  try {
    await restoreWith(fetchers, pgData, ctx, job, recovery, reply, cancelled);
  } finally {
    await fetchers.close();
  }
}

async function restoreWith(fetchers: RestoreFetchPool, pgData: string, ctx: AgentContext, job: RestoreJob__Output, recovery: ValidRecoveryTarget,
  reply: Reply, cancelled: () => boolean): Promise<void> {
  const view = await fetchManifest(ctx, job);
  const cluster = view.first.cluster!;
  const tablespaces = tablespaceTargets(view.first.links, view.label, pgData, job.tablespace_map, job.tablespace_map_all);
  const layout = new RestoreLayout(pgData, tablespaces, `PG_${cluster.version}_${cluster.catalog_version}`);
  const log = ctx.log.child({ label: view.label, pgPath: pgData });

  const kept = new Set(recovery.type === 'preserve' ? PRESERVED.filter((f) => fs.existsSync(path.join(pgData, f))) : []);
  if (recovery.type === 'preserve' && !kept.has(AUTO_CONF)) {
    reply({ warning: `--type preserve: ${path.join(pgData, AUTO_CONF)} does not exist, so the backup's copy is restored unchanged` });
  }
  const files = filesToRestore(view, kept);
  const links = new Map(view.first.links.map((l) => [l.name, l.tablespace_oid > 0 ? tablespaces.get(l.tablespace_oid)! : l.destination]));
  const summary: RestoreSummary__Output = {
    files_fetched: 0, bytes_fetched: 0, files_checked: 0, files_matched: 0, bytes_matched: 0, files_zeroed: 0,
    removed: await prepareTarget(job, view, layout, files, links, kept, log),
    recovery: describeRecovery(recovery), mode: describeMode(job),
  };
  await buildPaths(view, layout, links);

  const zeroed = zeroedFileFilter(job.zero_db_oid);
  const bytesTotal = files.reduce((n, f) => n + f.size, 0);
  const progress = new ProgressReporter(bytesTotal, files.length, (p) => reply({ progress: p }));
  /** Zeroes a left-out database's file, or with --delta compares the file there: 'missing' or 'different' must be fetched. */
  // written without an fsync each: made durable together before pg_control (makeDurable)
  const written: ManifestFile__Output[] = [];
  const settledLocally = async (file: ManifestFile__Output, dest: string): Promise<LocalState | 'zeroed'> => {
    if (zeroed(file.name)) {
      await writeZeroedFile(file, dest, false);
      written.push(file);
      summary.files_zeroed++;
      return 'zeroed';
    }
    const state = job.delta ? await compareLocalFile(file, dest, job.force) : 'missing';
    if (state !== 'missing') summary.files_checked++;
    if (state === 'matches') {
      summary.files_matched++;
      summary.bytes_matched += file.size;
    }
    return state;
  };
  const done = async (file: ManifestFile__Output) => {
    progress.add(file.size);
    if (ctx.testRestoreFileDelayMs > 0) await sleep(ctx.testRestoreFileDelayMs);
  };
  const fetched = (file: ManifestFile__Output, found: LocalState) => {
    summary.files_fetched++;
    summary.bytes_fetched += file.size;
    log.debug({ file: file.name, size: file.size, found }, 'file fetched');
  };
  // the main thread's codec pool serves only stored files that are not in delimited frames
  let codecs: CodecPool | undefined;
  const partsOf = (file: ManifestFile__Output) => partsFor(file, fetchers.size, ctx.testRestorePartMin);
  const fetch = async (wanted: Array<{ file: ManifestFile__Output; state: LocalState }>, batch: boolean, durable: boolean, partsWritten?: () => void) => {
    const files = wanted.map(({ file }) => ({ file, dest: layout.localPath(file.name), durable }));
    try {
      const parts = batch ? 1 : partsOf(files[0].file);
      if (parts > 1) await restoreInParts(fetchers, job.stanza, view.label, files[0], parts, partsWritten).catch(async (err: unknown) => {
        if (!(err instanceof UnframedFiles)) throw err;
        log.debug({ file: files[0].file.name }, 'the server cannot cut the file into parts: fetched whole');
        await fetchers.run({ stanza: job.stanza, label: view.label, batch, files });
      });
      else await fetchers.run({ stanza: job.stanza, label: view.label, batch, files });
    } catch (err) {
      if (!(err instanceof UnframedFiles)) throw err;
      log.debug({ files: files.length, first: files[0].file.name }, 'stored bytes not in delimited frames: read through the streaming decoder');
      codecs ??= new CodecPool(job.process_max || 1);
      await fetchOrdinarily(ctx.client, job.stanza, view.label, files, batch, codecs);
    }
    for (const { file, state } of wanted) {
      if (!durable) written.push(file);
      fetched(file, state);
    }
  };
  const restoreOne = async (file: ManifestFile__Output, durable = false, partsWritten?: () => void) => {
    const state = await settledLocally(file, layout.localPath(file.name));
    if (state === 'missing' || state === 'different') await fetch([{ file, state }], false, durable, partsWritten);
    await done(file);
  };
  const restoreBatch = async (files: ManifestFile__Output[]) => {
    const wanted: Array<{ file: ManifestFile__Output; state: LocalState }> = [];
    for (const file of files) {
      const state = await settledLocally(file, layout.localPath(file.name));
      if (state === 'missing' || state === 'different') wanted.push({ file, state });
      else await done(file);
    }
    if (wanted.length === 0) return;
    await fetch(wanted, true, false);
    for (const { file } of wanted) await done(file);
  };
  // biggest first keeps every worker busy to the end; small files travel many to a call
  const items = restoreItems(largestFirst(files.filter((f) => f.name !== PG_CONTROL)));
  const inParts = items.filter((item): item is { kind: 'file'; file: ManifestFile__Output } => item.kind === 'file' && partsOf(item.file) > 1);
  try {
    // files restored in parts go first, one at a time over every worker: their parts are written
    // early, and the reading back of their later parts for the SHA-1 overlaps the other files
    // rather than being the restore's tail
    const finishing: Array<Promise<void>> = [];
    let failure: unknown;
    for (const item of inParts) {
      if (failure !== undefined || cancelled()) break;
      await new Promise<void>((written) => {
        finishing.push(restoreOne(item.file, false, written).catch((err: unknown) => {
          failure ??= err;
        }).finally(written));
      });
    }
    const rest = items.filter((item) => !(inParts as typeof items).includes(item));
    try {
      await forEachLimited(rest, fetchers.inFlight, (item) => (item.kind === 'file' ? restoreOne(item.file) : restoreBatch(item.files)), () => failure !== undefined || cancelled());
    } finally {
      await Promise.all(finishing);
    }
    if (failure !== undefined) throw failure;
    if (cancelled()) throw new UserError('the restore was cancelled');

    writeRecoveryConfig(pgData, recovery, ctx.archiveGetCommand);
    await fetchers.flush();
    await makeDurable(written, layout);
    const control = files.find((f) => f.name === PG_CONTROL);
    if (control) await restoreOne(control, true);
  } finally {
    await codecs?.close();
  }
  progress.flush();
  for (const p of view.first.paths) await syncDirectory(layout.localPath(p.name));

  log.info({ files: files.length, bytes: bytesTotal, ...summary }, 'restore written');
  reply({ restore_done: { files: files.length, bytes: bytesTotal, pg_path: pgData, summary } });
}

/** The restore job as the agent runs it: one at a time into a directory. */
export async function runRestoreJob(ctx: AgentContext, job: RestoreJob__Output, reply: Reply, cancelled: () => boolean): Promise<void> {
  const pgData = path.resolve(job.pg_path || ctx.pgPath);
  const release = claimRestoreTarget(pgData);
  try {
    await restoreInto(pgData, ctx, job, reply, cancelled);
  } finally {
    release();
  }
}
