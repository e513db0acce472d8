/**
 * Retention settings (pgBackRest's repo-retention-* options): where they come from (the
 * server's configuration, global or per stanza, overridden by repoctl flags for one run) and
 * the defaults pgBackRest derives from them (src/config/load.c cfgLoadUpdateOption).
 */
import { UserError } from '../../shared/errors';
import type { OptionSpec, Options } from '../../shared/config/options';
import type { Retention as RetentionMessage } from '../../shared/generated/pgrepo/v1/Retention';

export type FullRetentionType = 'count' | 'time';
export type ArchiveRetentionType = 'full' | 'diff' | 'incr';

/** What was configured or asked for; undefined = not set. */
export interface RetentionInput {
  full?: number;
  fullType?: FullRetentionType;
  diff?: number;
  archive?: number;
  archiveType?: ArchiveRetentionType;
}

/** The settings one expire runs with. */
export interface Retention {
  /** full backups to keep (count), or days to keep them (time); undefined = fulls are not expired */
  full?: number;
  fullType: FullRetentionType;
  diff?: number;
  /** backups of archiveType whose WAL stays for point-in-time recovery; undefined = WAL is not expired */
  archive?: number;
  archiveType: ArchiveRetentionType;
  /** archive was not set and comes from repo-retention-full or -diff */
  archiveDerived: boolean;
  warnings: string[];
}

const MAX_RETENTION = 9_999_999;
const FULL_TYPES: readonly string[] = ['count', 'time'];
const ARCHIVE_TYPES: readonly string[] = ['full', 'diff', 'incr'];

/** The option specs; on the server they may be set per stanza, on repoctl they apply to one run. */
export function retentionOptionSpecs(perStanza: boolean): OptionSpec[] {
  return [
    { name: 'repo-retention-full', type: 'int', perStanza, description: 'full backups to keep (or days, with repo-retention-full-type=time); unset: fulls are never expired' },
    { name: 'repo-retention-full-type', type: 'string', perStanza, description: 'count or time (default count)' },
    { name: 'repo-retention-diff', type: 'int', perStanza, description: 'differential backups to keep (fulls count as differentials)' },
    { name: 'repo-retention-archive', type: 'int', perStanza, description: 'backups whose WAL is kept for point-in-time recovery (default: repo-retention-full, or -diff with type diff)' },
    { name: 'repo-retention-archive-type', type: 'string', perStanza, description: 'which backups repo-retention-archive counts: full, diff or incr (default full)' },
  ];
}

function checkCount(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < 1 || value > MAX_RETENTION) {
    throw new UserError(`option ${name} must be between 1 and ${MAX_RETENTION}, got ${value}`);
  }
  return value;
}

function checkType<T extends string>(name: string, value: string | undefined, allowed: readonly string[]): T | undefined {
  if (value === undefined || value === '') return undefined;
  if (!allowed.includes(value)) throw new UserError(`option ${name} must be ${allowed.join(' or ')}, got '${value}'`);
  return value as T;
}

/** Reads and checks the options (of the server, for one stanza, or of repoctl). */
export function retentionFromOptions(o: Options): RetentionInput {
  return {
    full: checkCount('repo-retention-full', o.int('repo-retention-full')),
    fullType: checkType<FullRetentionType>('repo-retention-full-type', o.str('repo-retention-full-type'), FULL_TYPES),
    diff: checkCount('repo-retention-diff', o.int('repo-retention-diff')),
    archive: checkCount('repo-retention-archive', o.int('repo-retention-archive')),
    archiveType: checkType<ArchiveRetentionType>('repo-retention-archive-type', o.str('repo-retention-archive-type'), ARCHIVE_TYPES),
  };
}

/** A request's retention fields: 0 and '' mean "not given". */
export function retentionFromRequest(r: RetentionMessage | null | undefined): RetentionInput {
  if (!r) return {};
  return {
    full: checkCount('repo-retention-full', r.full || undefined),
    fullType: checkType<FullRetentionType>('repo-retention-full-type', r.full_type || undefined, FULL_TYPES),
    diff: checkCount('repo-retention-diff', r.diff || undefined),
    archive: checkCount('repo-retention-archive', r.archive || undefined),
    archiveType: checkType<ArchiveRetentionType>('repo-retention-archive-type', r.archive_type || undefined, ARCHIVE_TYPES),
  };
}

export function retentionToRequest(r: RetentionInput): RetentionMessage {
  return { full: r.full ?? 0, full_type: r.fullType ?? '', diff: r.diff ?? 0, archive: r.archive ?? 0, archive_type: r.archiveType ?? '' };
}

/** `over`'s settings where given, else `base`'s. */
export function overlayRetention(base: RetentionInput, over: RetentionInput): RetentionInput {
  const out: RetentionInput = { ...base };
  for (const [key, value] of Object.entries(over) as [keyof RetentionInput, never][]) {
    if (value !== undefined) out[key] = value;
  }
  return out;
}

/**
 * Fills in what pgBackRest derives: archive retention defaults to the full retention count
 * (type full) or the diff retention (type diff); with type incr it must be set. Time-based full
 * retention derives it later, from the fulls that remain (see planBackupExpiry).
 */
export function resolveRetention(input: RetentionInput): Retention {
  const r: Retention = {
    full: input.full,
    fullType: input.fullType ?? 'count',
    diff: input.diff,
    archive: input.archive,
    archiveType: input.archiveType ?? 'full',
    archiveDerived: false,
    warnings: [],
  };
  if (r.full === undefined) {
    r.warnings.push('option repo-retention-full is not set, so no full backup is expired and the repository may run out of space (set it to the maximum, 9999999, to keep fulls for ever without this warning)');
  }
  if (r.archive === undefined) {
    if (r.archiveType === 'full' && r.fullType === 'count' && r.full !== undefined) {
      r.archive = r.full;
      r.archiveDerived = true;
    } else if (r.archiveType === 'diff') {
      if (r.diff !== undefined) {
        r.archive = r.diff;
        r.archiveDerived = true;
      } else {
        r.warnings.push("WAL segments will not be expired: option 'repo-retention-archive-type=diff' but neither option 'repo-retention-archive' nor option 'repo-retention-diff' is set");
      }
    } else if (r.archiveType === 'incr') {
      r.warnings.push("WAL segments will not be expired: option 'repo-retention-archive-type=incr' but option 'repo-retention-archive' is not set");
    }
  } else if (r.archiveType === 'diff' && r.diff === undefined) {
    r.warnings.push("option 'repo-retention-diff' is not set for 'repo-retention-archive-type=diff' (set it to the maximum, 9999999, to keep differential backups for ever without this warning)");
  }
  return r;
}

/** One line saying what the settings are, for logs. */
export function describeRetention(r: Retention): string {
  const parts = [
    r.full === undefined ? 'repo-retention-full unset' : `repo-retention-full=${r.full}${r.fullType === 'time' ? ' days' : ''}`,
    r.diff === undefined ? '' : `repo-retention-diff=${r.diff}`,
    r.archive === undefined ? 'repo-retention-archive unset' : `repo-retention-archive=${r.archive} (type ${r.archiveType}${r.archiveDerived ? ', derived' : ''})`,
  ];
  return parts.filter(Boolean).join(', ');
}
