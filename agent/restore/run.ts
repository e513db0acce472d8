import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../../shared/errors';
import { decompressStream, fileHandleSink } from '../../shared/stream/pipeline';
import { validateManifestPath } from '../../shared/validate';
import type { RestoreJob__Output } from '../../shared/generated/pgrepo/v1/RestoreJob';
import type { JobReply } from '../../shared/generated/pgrepo/v1/JobReply';
import type { ManifestFile__Output } from '../../shared/generated/pgrepo/v1/ManifestFile';
import type { ManifestPart__Output } from '../../shared/generated/pgrepo/v1/ManifestPart';
import type { AgentContext } from '../context';
import { dataStream } from '../transfer/download';
import { forEachLimited, ProgressReporter } from '../../shared/progress';
import { prepareEmptyDirectory } from './target';
import { writeRecoveryConfig } from './recovery-config';
import { syncDirectory } from '../../shared/fs-sync';

type Reply = (reply: Omit<JobReply, 'job_id'>) => void;

interface ManifestView {
  label: string;
  parts: ManifestPart__Output[];
  files: ManifestFile__Output[];
}

async function fetchManifest(ctx: AgentContext, job: RestoreJob__Output): Promise<ManifestView> {
  const parts: ManifestPart__Output[] = [];
  for await (const part of ctx.client.GetManifest({ stanza: job.stanza, label: job.label })) parts.push(part as ManifestPart__Output);
  if (parts.length === 0) throw new UserError(`the server sent no manifest for backup ${job.label}`);
  return { label: parts[0].label, parts, files: parts.flatMap((p) => p.files) };
}

/** Where each tablespace goes: --tablespace-map by name or oid, else where it was. */
function tablespaceTargets(view: ManifestView, job: RestoreJob__Output): Map<number, string> {
  const links = view.parts[0].links.filter((l) => l.tablespace_oid > 0);
  const targets = new Map<number, string>();
  for (const mapping of job.tablespace_map) {
    const link = links.find((l) => l.tablespace_name === mapping.name || String(l.tablespace_oid) === mapping.name);
    if (!link) {
      throw new UserError(`--tablespace-map names tablespace '${mapping.name}', which backup ${view.label} does not have (it has: ${links.map((l) => `${l.tablespace_name} (${l.tablespace_oid})`).join(', ') || 'none'})`);
    }
    if (!path.isAbsolute(mapping.path)) throw new UserError(`--tablespace-map ${mapping.name}=${mapping.path}: the path must be absolute`);
    targets.set(link.tablespace_oid, mapping.path);
  }
  for (const link of links) if (!targets.has(link.tablespace_oid)) targets.set(link.tablespace_oid, link.destination);
  return targets;
}

/** Manifest name → path on this host. */
function localPath(name: string, pgData: string, tablespaces: Map<number, string>): string {
  validateManifestPath(name);
  if (name === 'pg_data' || name.startsWith('pg_data/')) return path.join(pgData, name.slice('pg_data'.length));
  const m = /^pg_tblspc\/(\d+)(\/.*)?$/.exec(name)!;
  const root = tablespaces.get(Number(m[1]));
  if (!root) throw new UserError(`manifest file ${name} belongs to tablespace ${m[1]}, which the manifest does not list`);
  return path.join(root, m[2] ?? '');
}

async function restoreFile(ctx: AgentContext, job: RestoreJob__Output, label: string, file: ManifestFile__Output, dest: string): Promise<void> {
  const handle = await fsp.open(dest, 'w', parseInt(file.mode, 8));
  try {
    const sink = fileHandleSink(handle);
    const source = dataStream(ctx.client.GetBackupFile({ stanza: job.stanza, label, name: file.name }));
    let sums;
    try {
      sums = await decompressStream(source, file.compress_type, sink);
    } catch (err) {
      if ((err as { code?: unknown }).code && typeof (err as { code?: unknown }).code === 'string' && /^Z_/.test((err as { code: string }).code)) {
        throw new UserError(`file ${file.name} of backup ${label}: the repository copy cannot be decompressed (${(err as Error).message}); the repository is damaged`, 'CORRUPT');
      }
      throw err;
    }
    if (sums.stored.checksum !== file.repo_checksum && file.repo_checksum) {
      throw new UserError(`file ${file.name} of backup ${label}: the repository copy has SHA-1 ${sums.stored.checksum}, but the manifest records ${file.repo_checksum}; the repository is damaged`, 'CORRUPT');
    }
    if (sums.original.checksum !== file.checksum || sums.original.size !== file.size) {
      throw new UserError(`file ${file.name} of backup ${label}: restored ${sums.original.size} bytes with SHA-1 ${sums.original.checksum}, but the manifest records ${file.size} bytes with SHA-1 ${file.checksum}; the repository is damaged`, 'CORRUPT');
    }
    await handle.chmod(parseInt(file.mode, 8));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fsp.utimes(dest, file.timestamp, file.timestamp);
}

function rewriteTablespaceMap(pgData: string, tablespaces: Map<number, string>): void {
  const file = path.join(pgData, 'tablespace_map');
  if (!fs.existsSync(file)) return;
  // PostgreSQL re-creates pg_tblspc links from this file at recovery start, so it must name the new places
  const lines = [...tablespaces].map(([oid, dir]) => `${oid} ${dir}`);
  fs.writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
}

export async function runRestoreJob(ctx: AgentContext, job: RestoreJob__Output, reply: Reply, cancelled: () => boolean): Promise<void> {
  const pgData = job.pg_path || ctx.pgPath;
  prepareEmptyDirectory(pgData, 'restore target');
  const view = await fetchManifest(ctx, job);
  const tablespaces = tablespaceTargets(view, job);
  for (const [oid, dir] of tablespaces) prepareEmptyDirectory(dir, `tablespace ${oid} directory`);

  const first = view.parts[0];
  for (const p of first.paths) await fsp.mkdir(localPath(p.name, pgData, tablespaces), { recursive: true, mode: parseInt(p.mode, 8) });
  for (const p of first.paths) await fsp.chmod(localPath(p.name, pgData, tablespaces), parseInt(p.mode, 8));
  for (const link of first.links) {
    const at = path.join(pgData, link.name.slice('pg_data/'.length));
    const target = link.tablespace_oid > 0 ? tablespaces.get(link.tablespace_oid)! : link.destination;
    await fsp.rm(at, { recursive: true, force: true });
    await fsp.symlink(target, at);
  }

  const bytesTotal = view.files.reduce((n, f) => n + f.size, 0);
  const progress = new ProgressReporter(bytesTotal, view.files.length, (p) => reply({ progress: p }));
  await forEachLimited(view.files, job.process_max || 1, async (file) => {
    await restoreFile(ctx, job, view.label, file, localPath(file.name, pgData, tablespaces));
    progress.add(file.size);
  }, cancelled);
  if (cancelled()) throw new UserError('the restore was cancelled');
  progress.flush();

  rewriteTablespaceMap(pgData, tablespaces);
  writeRecoveryConfig(pgData, ctx.archiveGetCommand);
  for (const p of first.paths) await syncDirectory(localPath(p.name, pgData, tablespaces));
  ctx.log.info({ label: view.label, pgPath: pgData, files: view.files.length, bytes: bytesTotal }, 'restore written');
  reply({ restore_done: { files: view.files.length, bytes: bytesTotal, pg_path: pgData } });
}
