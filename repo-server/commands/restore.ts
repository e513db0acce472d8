import * as grpc from '@grpc/grpc-js';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { StatusError } from '../../shared/errors';
import { validateRecoveryTarget, type ValidRecoveryTarget } from '../../shared/restore/recovery-target';
import { validateBackupLabel, validateManifestPath } from '../../shared/validate';
import type { Manifest } from '../../shared/info/manifest';
import type { RestoreRequest__Output } from '../../shared/generated/pgrepo/v1/RestoreRequest';
import type { GetManifestRequest__Output } from '../../shared/generated/pgrepo/v1/GetManifestRequest';
import type { ManifestPart } from '../../shared/generated/pgrepo/v1/ManifestPart';
import type { GetBackupFileRequest__Output } from '../../shared/generated/pgrepo/v1/GetBackupFileRequest';
import type { FileChunk } from '../../shared/generated/pgrepo/v1/FileChunk';
import type { GetBackupFilesRequest__Output } from '../../shared/generated/pgrepo/v1/GetBackupFilesRequest';
import type { BackupFilesChunk } from '../../shared/generated/pgrepo/v1/BackupFilesChunk';
import type { ServerContext } from '../context';
import { authorizeStanza, type Caller } from '../service/guard';
import { storedLocation } from '../repo/layout';
import { frameIndex, partRange, plainIndex } from '../../shared/stream/frame-walk';
import { FRAMED_TYPES, wholeFramesLength } from '../../shared/stream/frame-codec';
import type { Emit } from './backup';
import { chooseBackup, zeroedDatabases } from './restore-plan';
import { rawChunk, readBuffer } from './restore-send';
import type { RawMessage } from '../../shared/stream/raw-message';

/** The label to restore for GetManifest: the one asked for, which must be a complete backup, or the newest. */
async function resolveLabel(ctx: ServerContext, stanza: string, set: string): Promise<string> {
  const info = await ctx.store.backupInfo(stanza);
  return chooseBackup(stanza, info.backups, set, validateRecoveryTarget(null)).label;
}

function recoveryOf(req: RestoreRequest__Output): ValidRecoveryTarget {
  try {
    return validateRecoveryTarget(req.recovery);
  } catch (err) {
    throw new StatusError(grpc.status.INVALID_ARGUMENT, (err as Error).message);
  }
}

// PostgreSQL 12 moved recovery settings from recovery.conf into postgresql.conf; only that form is written
const FIRST_RECOVERY_GUC_VERSION = 12;

function describeOptions(req: RestoreRequest__Output): string {
  const mode = req.delta ? (req.force ? 'delta, by size and time' : 'delta, by checksum') : req.force ? 'force' : 'into an empty directory';
  return `${mode}, ${Math.max(1, req.process_max || 1)} file(s) at a time`;
}

export async function runRestore(ctx: ServerContext, req: RestoreRequest__Output, emit: Emit): Promise<void> {
  const began = Date.now();
  const stanza = req.stanza;
  if (!req.host) throw new StatusError(grpc.status.INVALID_ARGUMENT, 'restore needs --host: the identity of the agent that writes the restored cluster');
  const recovery = recoveryOf(req);
  const agent = ctx.agents.get(req.host);
  if (!agent || agent.stanza !== stanza) {
    throw new StatusError(grpc.status.FAILED_PRECONDITION, `agent '${req.host}' is not attached for stanza '${stanza}' (attached: ${ctx.agents.forStanza(stanza).map((a) => a.identity).join(', ') || 'none'})`);
  }
  const chosen = chooseBackup(stanza, (await ctx.store.backupInfo(stanza)).backups, req.set, recovery);
  const label = chosen.label;
  const manifest = await ctx.store.manifest(stanza, label);
  if (Number(manifest.db.version) < FIRST_RECOVERY_GUC_VERSION) {
    throw new StatusError(grpc.status.FAILED_PRECONDITION, `backup ${label} is of PostgreSQL ${manifest.db.version}: pgrepo writes recovery settings for PostgreSQL ${FIRST_RECOVERY_GUC_VERSION} and later only`);
  }
  const zero = zeroedDatabases(manifest, req.db_include);
  emit({ log: `restoring backup ${label} (${chosen.reason}) of stanza '${stanza}' on agent '${agent.identity}', ${describeOptions(req)}` });
  if (zero.names.length > 0) emit({ log: `selective restore: the files of ${zero.names.join(', ')} are written as sparse zeroed files; drop those databases once recovery is done` });
  ctx.log.info({ stanza, label, agent: agent.identity, pgPath: req.pg_path || agent.pgPath, type: recovery.type, delta: req.delta, force: req.force, zeroed: zero.oids }, 'restore started');
  const job = agent.startJob({
    restore: {
      stanza, label, pg_path: req.pg_path, tablespace_map: req.tablespace_map, process_max: Math.max(1, req.process_max || 1),
      recovery, delta: req.delta, force: req.force, tablespace_map_all: req.tablespace_map_all, zero_db_oid: zero.oids,
    },
  });
  try {
    for (;;) {
      const reply = await job.next();
      if (reply.progress) emit({ progress: reply.progress });
      if (reply.warning) {
        ctx.log.warn({ stanza, label, agent: agent.identity }, reply.warning);
        emit({ log: reply.warning });
      }
      if (reply.restore_done) {
        const done = reply.restore_done;
        const seconds = (Date.now() - began) / 1000;
        ctx.log.info({ stanza, label, agent: agent.identity, files: done.files, bytes: done.bytes, pgPath: done.pg_path, seconds, ...done.summary }, 'restore complete');
        emit({ result: { label, files: done.files, bytes: done.bytes, agent: agent.identity, pg_path: done.pg_path, seconds, restore: done.summary } });
        return;
      }
    }
  } catch (err) {
    ctx.log.warn({ stanza, label, agent: agent.identity, err: (err as Error).message }, 'restore failed');
    throw err;
  } finally {
    agent.endJob(job.id);
  }
}

const MANIFEST_PART_FILES = 2000;

export async function getManifest(ctx: ServerContext, req: GetManifestRequest__Output, caller: Caller, write: (part: ManifestPart) => Promise<void>): Promise<void> {
  const stanza = authorizeStanza(ctx, caller, req.stanza);
  const label = await resolveLabel(ctx, stanza, req.label);
  const m = await ctx.store.manifest(stanza, label);
  const tablespaceOf = new Map(m.targets.filter((t) => t.type === 'link').map((t) => [`pg_data/${t.name}`, t]));
  await write({
    label,
    cluster: { system_id: m.db.systemId, version: m.db.version, catalog_version: m.db.catalogVersion, control_version: m.db.controlVersion },
    compress_type: m.options.compressType,
    paths: m.paths,
    links: m.links.map((l) => ({
      ...l, tablespace_oid: tablespaceOf.get(l.name)?.tablespaceId ?? 0, tablespace_name: tablespaceOf.get(l.name)?.tablespaceName ?? '',
    })),
    databases: m.databases.map((d) => ({ name: d.name, oid: d.oid, last_system_oid: d.lastSystemOid })),
  });
  for (let i = 0; i < m.files.length; i += MANIFEST_PART_FILES) {
    await write({ label, files: m.files.slice(i, i + MANIFEST_PART_FILES).map((f) => ({ ...f, repo_size: f.repoSize, repo_checksum: f.repoChecksum, compress_type: f.compressType, reference: f.reference ?? '',
      bundle_id: f.bundleId ?? 0, bundle_offset: f.bundleOffset ?? 0 })) });
  }
}

// a restore asks for every file of a manifest by name: index each manifest once
const fileIndexes = new WeakMap<Manifest, Map<string, Manifest['files'][number]>>();

function manifestFile(m: Manifest, name: string) {
  let index = fileIndexes.get(m);
  if (!index) {
    index = new Map(m.files.map((f) => [f.name, f]));
    fileIndexes.set(m, index);
  }
  const file = index.get(name);
  if (!file) throw new StatusError(grpc.status.NOT_FOUND, `backup ${m.backup.label} has no file '${name}'`);
  return file;
}

type StoredFile = Manifest['files'][number];

/**
 * The repository file last read, kept open for the next: the small files of one GetBackupFiles
 * call mostly lie one after another in the same bundle, which is then opened once, not once per
 * file (100,000 opens and closes for a cluster of 100,000 small tables).
 */
class LastOpened {
  private last?: { key: string; handle: Promise<fsp.FileHandle> };

  constructor(private readonly ctx: ServerContext) {}

  readonly get = (key: string): Promise<fsp.FileHandle> => {
    if (this.last?.key !== key) {
      const previous = this.last?.handle;
      previous?.then((h) => h.close(), () => undefined);
      this.last = { key, handle: fsp.open(this.ctx.storage.path(key), 'r') };
      // a failed open is reported where it is awaited; the next file opens afresh
      this.last.handle.catch(() => undefined);
    }
    return this.last.handle;
  };

  async close(): Promise<void> {
    await this.last?.handle.then((h) => h.close(), () => undefined);
    this.last = undefined;
  }
}

/**
 * Where a message of a framed file's stored bytes ends: after its last whole frame, so the agent
 * decodes each frame where it arrived instead of first putting together one that spans two
 * messages (a copy of nearly every byte: the frames of incompressible data fill most of a message).
 */
function framed(type: string): ((buf: Buffer, n: number) => number) | undefined {
  return (FRAMED_TYPES as readonly string[]).includes(type) ? (buf, n) => wholeFramesLength(type, buf, n) : undefined;
}

/** The stored bytes of one file of a backup, in reads of about a frame (whole frames), each into a buffer of readBuffer(). */
async function* storedPieces(ctx: ServerContext, stanza: string, label: string, file: StoredFile,
  part?: { start: number; length: number }, opened?: LastOpened): AsyncGenerator<{ buf: Buffer; n: number }> {
  const { key, range: whole } = storedLocation(stanza, label, file);
  const range = part ?? whole;
  try {
    for await (const piece of ctx.storage.readPieces(key, readBuffer, range, opened?.get, framed(file.compressType))) {
      ctx.metrics.sent(stanza, 'backup', piece.n);
      yield piece;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new StatusError(grpc.status.DATA_LOSS, `backup ${label} of stanza '${stanza}' is damaged: its file ${key} is missing from the repository`);
    }
    throw err;
  }
}

export async function getBackupFile(ctx: ServerContext, req: GetBackupFileRequest__Output, caller: Caller, write: (chunk: FileChunk | RawMessage) => Promise<void>): Promise<void> {
  const stanza = authorizeStanza(ctx, caller, req.stanza);
  const label = validateBackupLabel(req.label);
  const file = manifestFile(await ctx.store.manifest(stanza, label), validateManifestPath(req.name));
  const part = req.parts > 1 ? await partOf(ctx, stanza, label, file, req.part, req.parts) : undefined;
  if (part) await write({ data: Buffer.alloc(0), original_offset: part.originalOffset });
  for await (const { buf, n } of storedPieces(ctx, stanza, label, file, part?.range)) await write(rawChunk(buf, n));
}

/** Parts a file may be asked for in at most: bounds the index a request makes the server build. */
const MAX_PARTS = 64;

/**
 * Part `part` of `parts` of a stored file: its stored byte range (whole frames) and where its
 * original bytes start. The frames are found by their headers, a few small reads per frame; an
 * uncompressed file is cut anywhere (at MiB boundaries).
 */
async function partOf(ctx: ServerContext, stanza: string, label: string, file: StoredFile, part: number, parts: number) {
  if (parts > MAX_PARTS || part >= parts) throw new StatusError(grpc.status.INVALID_ARGUMENT, `part ${part} of ${parts}: ask for at most ${MAX_PARTS} parts, numbered from 0`);
  const { key, range } = storedLocation(stanza, label, file);
  let handle;
  try {
    handle = await fsp.open(ctx.storage.path(key), 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new StatusError(grpc.status.DATA_LOSS, `backup ${label} of stanza '${stanza}' is damaged: its file ${key} is missing from the repository`);
    }
    throw err;
  }
  try {
    const base = range?.start ?? 0;
    const size = range?.length ?? (await handle.stat()).size;
    const fd = handle.fd;
    const readAt = (pos: number, n: number) => {
      const buf = Buffer.allocUnsafe(n);
      return buf.subarray(0, fs.readSync(fd, buf, 0, n, base + pos));
    };
    const index = file.compressType === 'none' ? plainIndex(size) : frameIndex(file.compressType, readAt, size);
    if (!index) throw new StatusError(grpc.status.FAILED_PRECONDITION, `file ${file.name} of backup ${label} is not stored in delimited frames: fetch it whole`);
    const { start, length, firstFrame } = partRange(index.stored, size, part, parts);
    return { range: { start: base + start, length }, originalOffset: firstFrame < index.original.length ? index.original[firstFrame] : 0 };
  } finally {
    await handle.close();
  }
}

/** Files asked for in one GetBackupFiles call at most: bounds the work one request can start. */
export const MAX_FILES_PER_CALL = 10_000;

export async function getBackupFiles(ctx: ServerContext, req: GetBackupFilesRequest__Output, caller: Caller,
  write: (chunk: BackupFilesChunk | RawMessage) => Promise<void>): Promise<void> {
  const stanza = authorizeStanza(ctx, caller, req.stanza);
  const label = validateBackupLabel(req.label);
  if (req.names.length > MAX_FILES_PER_CALL) {
    throw new StatusError(grpc.status.INVALID_ARGUMENT, `GetBackupFiles asks for ${req.names.length} files; at most ${MAX_FILES_PER_CALL} per call`);
  }
  const manifest = await ctx.store.manifest(stanza, label);
  const files = req.names.map((name) => manifestFile(manifest, validateManifestPath(name)));
  const opened = new LastOpened(ctx);
  try {
    for (let index = 0; index < files.length; index++) {
      // one piece behind, so the file's last piece carries the end mark: a small file is one message
      let held: { buf: Buffer; n: number } | undefined;
      for await (const piece of storedPieces(ctx, stanza, label, files[index], undefined, opened)) {
        if (held) await write(rawChunk(held.buf, held.n, { index, end: false }));
        held = piece;
      }
      await write(held ? rawChunk(held.buf, held.n, { index, end: true }) : { index, data: Buffer.alloc(0), end: true });
    }
  } finally {
    await opened.close();
  }
}
