import * as grpc from '@grpc/grpc-js';
import { StatusError } from '../../shared/errors';
import { validateManifestPath } from '../../shared/validate';
import type { Manifest, ManifestFile, PageErrorEntry } from '../../shared/info/manifest';
import type { FileUpload__Output } from '../../shared/generated/pgrepo/v1/FileUpload';
import type { PutFileResult } from '../../shared/generated/pgrepo/v1/PutFileResult';
import type { UnchangedFile__Output } from '../../shared/generated/pgrepo/v1/UnchangedFile';
import type { BackupBaselineRequest__Output } from '../../shared/generated/pgrepo/v1/BackupBaselineRequest';
import type { BackupBaselinePart } from '../../shared/generated/pgrepo/v1/BackupBaselinePart';
import type { PageChecksum__Output } from '../../shared/generated/pgrepo/v1/PageChecksum';
import type { ServerContext } from '../context';
import type { Caller } from '../service/guard';
import { backupFileKey, bundleKey } from '../repo/layout';
import { receiveIntoTemp, withOriginalChecksum, type ReceivedTrailer } from './receive-file';
import { BundleReceiver } from './receive-bundle';
import type { FileHeader__Output } from '../../shared/generated/pgrepo/v1/FileHeader';
import type { BundleUpload__Output } from '../../shared/generated/pgrepo/v1/BundleUpload';
import type { PutBundleResult } from '../../shared/generated/pgrepo/v1/PutBundleResult';

/** What the repository holds already: the prior backup (diff/incr) and the verified files of a resumed partial set. */
export interface SessionBaseline {
  prior: Manifest | null;
  resumable: Map<string, ManifestFile>;
}

export interface Tally {
  files: number;
  bytes: number;
  repoBytes: number;
}

const tally = (): Tally => ({ files: 0, bytes: 0, repoBytes: 0 });

function count(t: Tally, f: ManifestFile): void {
  t.files++;
  t.bytes += f.size;
  t.repoBytes += f.repoSize;
}

/**
 * A backup in progress: where the agent's uploads go and what they add to the manifest, and the
 * files the agent reported unchanged, resolved against the baseline so the manifest records the
 * repository's own sizes and checksums, never the agent's word for them.
 */
export class BackupSession {
  /** files whose data is in this backup's directory: uploaded now, or kept from the resumed partial set */
  readonly stored = new Map<string, ManifestFile>();
  /** files whose data is in an earlier backup of the set */
  readonly referenced = new Map<string, ManifestFile>();
  readonly copied = tally();
  readonly resumed = tally();
  readonly referencedTally = tally();
  /** told about every file stored, for progress saves of the partial manifest */
  onStored: (file: ManifestFile) => void = () => undefined;

  private bundles = 0;

  constructor(readonly jobId: string, readonly stanza: string, readonly label: string, readonly agentIdentity: string,
    readonly baseline: SessionBaseline) {}

  /** Bundles are numbered 1, 2, ... within a backup, in the order their uploads begin. */
  nextBundleId(): number {
    return ++this.bundles;
  }

  addUploaded(file: ManifestFile): void {
    this.referenced.delete(file.name);
    this.stored.set(file.name, file);
    count(this.copied, file);
    this.onStored(file);
  }

  /** The agent did not send a file: it must match what the baseline holds under that name. */
  addUnchanged(u: UnchangedFile__Output): void {
    const name = validateManifestPath(u.name);
    const held = u.resumed ? this.baseline.resumable.get(name) : this.priorFile(name);
    const source = u.resumed ? 'the partial backup being resumed' : `prior backup ${this.baseline.prior?.backup.label ?? '(none)'}`;
    if (!held || held.size !== u.size || held.checksum !== u.checksum) {
      throw new StatusError(grpc.status.INVALID_ARGUMENT,
        `the agent reported ${name} unchanged (${u.size} bytes, SHA-1 ${u.checksum}), but ${source} ${held ? `has ${held.size} bytes with SHA-1 ${held.checksum}` : 'does not have it'}`);
    }
    // data fields come from the repository's record; ownership, mode and mtime are today's
    const file: ManifestFile = { ...held, timestamp: u.timestamp, mode: u.mode, user: u.user, group: u.group };
    if (u.resumed) {
      delete file.reference;
      this.stored.set(name, file);
      count(this.resumed, file);
      this.onStored(file);
    } else {
      file.reference = held.reference ?? this.baseline.prior!.backup.label;
      this.referenced.set(name, file);
      count(this.referencedTally, file);
    }
  }

  private priorIndex: Map<string, ManifestFile> | undefined;

  private priorFile(name: string): ManifestFile | undefined {
    this.priorIndex ??= new Map(this.baseline.prior?.files.map((f) => [f.name, f]) ?? []);
    return this.priorIndex.get(name);
  }

  /** Every file of the backup, by name. */
  files(): ManifestFile[] {
    return [...this.referenced.values(), ...this.stored.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }
}

export class BackupSessions {
  private readonly sessions = new Map<string, BackupSession>();

  open(session: BackupSession): void {
    this.sessions.set(session.jobId, session);
  }

  close(session: BackupSession): void {
    this.sessions.delete(session.jobId);
  }

  /** Uploads are accepted only from the agent the backup job was given to. */
  forUpload(jobId: string, caller: Caller): BackupSession {
    const session = this.sessions.get(jobId);
    if (!session) throw new StatusError(grpc.status.NOT_FOUND, `no backup in progress has job id '${jobId}' (it may have failed or been cancelled)`);
    if (session.agentIdentity !== caller.identity) {
      throw new StatusError(grpc.status.PERMISSION_DENIED, `backup job '${jobId}' belongs to agent '${session.agentIdentity}', not '${caller.identity}'`);
    }
    return session;
  }
}

/** pgBackRest's checksum-page-error: a lone block as a number, a run as [first, last]. */
function pageErrorEntries(result: PageChecksum__Output): PageErrorEntry[] {
  return result.error.map((r) => (r.first === r.last ? r.first : [r.first, r.last]));
}

/** The manifest record of an uploaded file, from its header and the trailer the server checked. */
function manifestEntry(name: string, header: FileHeader__Output, trailer: ReceivedTrailer): ManifestFile {
  const file: ManifestFile = {
    name,
    size: trailer.size,
    timestamp: header.timestamp,
    mode: header.mode,
    user: header.user,
    group: header.group,
    checksum: trailer.checksum,
    repoSize: trailer.repo_size,
    repoChecksum: trailer.repo_checksum,
    compressType: header.compress_type,
  };
  if (trailer.checksum_page) {
    file.checksumPage = trailer.checksum_page.valid;
    if (!trailer.checksum_page.valid) file.checksumPageError = pageErrorEntries(trailer.checksum_page);
  }
  return file;
}

/** The first message of an upload must be its header, naming a backup in progress of the calling agent. */
async function openUpload<M extends { header?: { job_id: string } | null }>(ctx: ServerContext, call: AsyncIterable<M>, caller: Caller,
  method: string): Promise<{ messages: AsyncIterator<M>; header: NonNullable<M['header']>; session: BackupSession }> {
  const messages = call[Symbol.asyncIterator]();
  const first = await messages.next();
  const header = first.done ? undefined : first.value.header;
  if (!header) throw new StatusError(grpc.status.INVALID_ARGUMENT, `${method}: the first message must be the header`);
  return { messages, header: header as NonNullable<M['header']>, session: ctx.sessions.forUpload(header.job_id, caller) };
}

export async function putBackupFile(ctx: ServerContext, call: AsyncIterable<FileUpload__Output>, caller: Caller): Promise<PutFileResult> {
  const { messages, header, session } = await openUpload(ctx, call, caller, 'PutBackupFile');
  const name = validateManifestPath(header.name);
  const temp = await ctx.storage.openTemp(backupFileKey(session.stanza, session.label, name, header.compress_type));
  try {
    const what = `backup file ${name}`;
    const trailer = withOriginalChecksum(await receiveIntoTemp(messages, temp, what), header.compress_type, what);
    await temp.commit();
    ctx.metrics.received(session.stanza, 'backup', trailer.repo_size);
    session.addUploaded(manifestEntry(name, header, trailer));
    return { repo_size: trailer.repo_size };
  } finally {
    await temp.discard();
  }
}

/**
 * PutBundle: small files, each compressed on its own, one after another in one repository
 * object, many to a message (BundleFiles). Each file's trailer is checked as it arrives
 * (receive-bundle.ts); the bundle becomes durable, and its files part of the backup, only when
 * the whole upload has arrived. A resumed backup does not keep bundles of the interrupted run
 * (they are not files of the partial manifest): their files are sent again.
 */
export async function putBundle(ctx: ServerContext, call: AsyncIterable<BundleUpload__Output>, caller: Caller): Promise<PutBundleResult> {
  const { messages, session } = await openUpload(ctx, call, caller, 'PutBundle');
  const bundleId = session.nextBundleId();
  const temp = await ctx.storage.openTemp(bundleKey(session.stanza, session.label, bundleId));
  const receiver = new BundleReceiver(temp, bundleId);
  try {
    for (;;) {
      const next = await messages.next();
      if (next.done) break;
      const pieces = next.value.files?.piece;
      if (!pieces) {
        throw new StatusError(grpc.status.INVALID_ARGUMENT, `bundle ${bundleId}: expected the files' pieces, got '${next.value.part ?? 'empty'}'` +
          (next.value.part === 'file' ? ' (an agent older than this server sends a message per file: upgrade the agent)' : ''));
      }
      await receiver.add(pieces);
    }
    const received = await receiver.done();
    await temp.commit();
    const repoSize = received.reduce((n, f) => n + f.trailer.repo_size, 0);
    ctx.metrics.received(session.stanza, 'backup', repoSize);
    for (const f of received) session.addUploaded({ ...manifestEntry(f.name, f.header, f.trailer), bundleId, bundleOffset: f.offset });
    return { bundle_id: bundleId, repo_size: repoSize, files: received.length };
  } finally {
    await receiver.settle();
    await temp.discard();
  }
}

const BASELINE_PART_FILES = 2000;

/** The files an agent compares its PGDATA with: the prior backup's, then the resumable ones. */
export async function getBackupBaseline(ctx: ServerContext, req: BackupBaselineRequest__Output, caller: Caller,
  write: (part: BackupBaselinePart) => Promise<void>): Promise<void> {
  const { baseline } = ctx.sessions.forUpload(req.job_id, caller);
  const entries = [
    ...(baseline.prior?.files ?? []).map((f) => ({ f, resumable: false })),
    ...[...baseline.resumable.values()].map((f) => ({ f, resumable: true })),
  ];
  for (let i = 0; i < entries.length; i += BASELINE_PART_FILES) {
    await write({ files: entries.slice(i, i + BASELINE_PART_FILES).map(({ f, resumable }) => ({
      name: f.name, size: f.size, timestamp: f.timestamp, checksum: f.checksum, resumable,
    })) });
  }
}
