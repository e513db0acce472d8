/**
 * Which files a backup must send, given the prior backup's files and the partial set being
 * resumed (pgBackRest's manifestBuildValidate, manifestBuildIncr and backupResumeClean, done on
 * the host that can see the files). Pure logic: the caller reads and sends.
 */

/** What the repository already holds of one file. */
export interface BaselineEntry {
  size: number;
  timestamp: number;
  checksum: string;
}

export interface Baseline {
  /** the prior backup's files (diff/incr) */
  prior: Map<string, BaselineEntry>;
  /** the verified files of the partial set being resumed */
  resumable: Map<string, BaselineEntry>;
}

export interface PlannedFile {
  name: string;
  size: number;
  mtime: number;
}

export type FileAction =
  /** send it */
  | { kind: 'copy' }
  /** send nothing: the repository has these bytes (in the prior backup, or in the resumed partial set) */
  | { kind: 'keep'; resumed: boolean; checksum: string }
  /** delta: checksum the local file, then keep or send (see afterHash) */
  | { kind: 'hash'; prior?: BaselineEntry; resumable?: BaselineEntry };

export interface PlanOptions {
  /** --delta */
  delta: boolean;
  /** label of the prior backup, for messages; null for a full */
  priorLabel: string | null;
  /** timeline of the prior backup's last WAL; 0 when there is none */
  priorTimeline: number;
  timeline: number;
  /** the database clock's second when the listing was done; a later mtime is in the future */
  listedAt: number;
}

export interface Plan {
  delta: boolean;
  /** why delta was switched on, for the operator */
  warnings: string[];
  actions: FileAction[];
}

/** The first reason found to distrust size and mtime, or null (pgBackRest stops at the first, too). */
function deltaReason(files: readonly PlannedFile[], baseline: Baseline, o: PlanOptions): string | null {
  const future = files.find((f) => f.mtime > o.listedAt);
  if (future) {
    return `file '${future.name}' has timestamp ${future.mtime} in the future (relative to copy start ${o.listedAt}), enabling delta checksum`;
  }
  if (o.priorLabel === null) return null;
  if (o.priorTimeline !== 0 && o.priorTimeline !== o.timeline) {
    return `a timeline switch has occurred since the ${o.priorLabel} backup (timeline ${o.priorTimeline}, now ${o.timeline}), enabling delta checksum; this is normal after a restore or a promotion`;
  }
  for (const f of files) {
    const prior = baseline.prior.get(f.name);
    if (!prior) continue;
    if (f.mtime < prior.timestamp) {
      return `file '${f.name}' has timestamp earlier than in the prior backup ${o.priorLabel} (prior ${prior.timestamp}, current ${f.mtime}), enabling delta checksum`;
    }
    if (f.mtime === prior.timestamp && f.size !== prior.size) {
      return `file '${f.name}' has the same timestamp (${f.mtime}) as in the prior backup ${o.priorLabel} but a different size (prior ${prior.size}, current ${f.size}), enabling delta checksum`;
    }
  }
  return null;
}

/** One object for every file sent whole: a list of 100,000 files does not carry 100,000 copies of it. */
const COPY: FileAction = Object.freeze({ kind: 'copy' });

function actionFor(f: PlannedFile, baseline: Baseline, delta: boolean): FileAction {
  const resumable = baseline.resumable.get(f.name);
  const prior = baseline.prior.get(f.name);
  // an empty file costs nothing to send: it is resumed never, referenced only when it was empty before too
  const resumeCandidate = resumable && resumable.size === f.size && f.size > 0 ? resumable : undefined;
  const priorCandidate = prior && prior.size === f.size ? prior : undefined;
  if (priorCandidate && f.size === 0) return { kind: 'keep', resumed: false, checksum: priorCandidate.checksum };
  if (delta) {
    return resumeCandidate || priorCandidate ? { kind: 'hash', prior: priorCandidate, resumable: resumeCandidate } : COPY;
  }
  if (resumeCandidate && resumeCandidate.timestamp === f.mtime) return { kind: 'keep', resumed: true, checksum: resumeCandidate.checksum };
  if (priorCandidate && priorCandidate.timestamp === f.mtime) return { kind: 'keep', resumed: false, checksum: priorCandidate.checksum };
  return COPY;
}

export function planBackup(files: readonly PlannedFile[], baseline: Baseline, o: PlanOptions): Plan {
  const warnings: string[] = [];
  let delta = o.delta;
  if (!delta) {
    const reason = deltaReason(files, baseline, o);
    if (reason) {
      warnings.push(reason);
      delta = true;
    }
  }
  return { delta, warnings, actions: files.map((f) => actionFor(f, baseline, delta)) };
}

/** Delta: what the local file's checksum says. A resumable copy wins over a reference (it is this backup's own). */
export function afterHash(action: Extract<FileAction, { kind: 'hash' }>, checksum: string): FileAction {
  if (action.resumable?.checksum === checksum) return { kind: 'keep', resumed: true, checksum };
  if (action.prior?.checksum === checksum) return { kind: 'keep', resumed: false, checksum };
  return COPY;
}
