/**
 * restore --type and the --target-* options: which fit together (pgBackRest's src/build/config/config.yaml
 * "depend" lists), what each value may look like, and the recovery settings they become for PostgreSQL ≥ 12.
 * The server validates a request with this before any agent touches a directory; the agent writes the settings.
 */
import { UserError } from '../errors';
import { parseLsn } from '../wal';
import type { RecoveryTarget } from '../generated/pgrepo/v1/RecoveryTarget';

export const RESTORE_TYPES = ['default', 'immediate', 'time', 'name', 'xid', 'lsn', 'standby', 'preserve', 'none'] as const;
export type RestoreType = (typeof RESTORE_TYPES)[number];

const TARGET_TYPES: readonly string[] = ['time', 'name', 'xid', 'lsn'];
const ACTION_TYPES: readonly string[] = ['immediate', 'time', 'name', 'xid', 'lsn'];
const EXCLUSIVE_TYPES: readonly string[] = ['time', 'xid', 'lsn'];
const TIMELINE_TYPES: readonly string[] = ['default', 'time', 'name', 'xid', 'lsn', 'standby'];
const TARGET_ACTIONS: readonly string[] = ['pause', 'promote', 'shutdown'];

/** Every field present, type never empty. */
export interface ValidRecoveryTarget {
  type: RestoreType;
  target: string;
  target_exclusive: boolean;
  target_action: string;
  target_timeline: string;
}

// recovery_target_name is a restore point name: PostgreSQL keeps at most MAXFNAMELEN - 1 = 63 bytes
const MAX_RESTORE_POINT_BYTES = 63;
const CONTROL_CHAR_RE = /[\u0000-\u001f\u007f]/;

function list(types: readonly string[]): string {
  return `${types.slice(0, -1).join(', ')} or ${types[types.length - 1]}`;
}

function checkTargetValue(type: string, target: string): void {
  if (CONTROL_CHAR_RE.test(target)) throw new UserError(`--target must not contain control characters (newlines, tabs)`);
  switch (type) {
    case 'xid':
      if (!/^\d+$/.test(target)) throw new UserError(`--target '${target}' is not a transaction id: --type xid needs a number such as 1234 (select txid_current())`);
      return;
    case 'lsn':
      try {
        parseLsn(target);
      } catch {
        throw new UserError(`--target '${target}' is not an LSN: --type lsn needs hex 'X/X' such as 0/3000028 (select pg_current_wal_lsn())`);
      }
      return;
    case 'name':
      if (Buffer.byteLength(target) > MAX_RESTORE_POINT_BYTES) throw new UserError(`--target '${target}' is longer than a restore point name can be (${MAX_RESTORE_POINT_BYTES} bytes)`);
      return;
    default:
      return;
  }
}

function checkTimeline(timeline: string): void {
  if (timeline === 'current' || timeline === 'latest' || /^[1-9]\d{0,9}$/.test(timeline) || /^0x[0-9a-f]{1,8}$/i.test(timeline)) return;
  throw new UserError(`--target-timeline '${timeline}' must be current, latest or a timeline number such as 2`);
}

/** The request's recovery options, checked and completed; a refusal names the option and what fits. */
export function validateRecoveryTarget(r: RecoveryTarget | null | undefined): ValidRecoveryTarget {
  const type = r?.type || 'default';
  if (!(RESTORE_TYPES as readonly string[]).includes(type)) throw new UserError(`restore --type must be ${list(RESTORE_TYPES)}, not '${type}'`);
  const target = r?.target ?? '';
  const action = r?.target_action ?? '';
  const timeline = r?.target_timeline ?? '';
  const exclusive = r?.target_exclusive === true;
  if (TARGET_TYPES.includes(type)) {
    if (target === '') throw new UserError(`--type ${type} needs --target: the ${type === 'time' ? 'time' : type === 'name' ? 'restore point name' : type} to recover to`);
    checkTargetValue(type, target);
  } else if (target !== '') {
    throw new UserError(`--target applies to --type ${list(TARGET_TYPES)}, not --type ${type}`);
  }
  if (action !== '') {
    if (!ACTION_TYPES.includes(type)) throw new UserError(`--target-action applies to --type ${list(ACTION_TYPES)}, not --type ${type}`);
    if (!TARGET_ACTIONS.includes(action)) throw new UserError(`--target-action must be ${list(TARGET_ACTIONS)}, not '${action}'`);
  }
  if (exclusive && !EXCLUSIVE_TYPES.includes(type)) throw new UserError(`--target-exclusive applies to --type ${list(EXCLUSIVE_TYPES)}, not --type ${type}`);
  if (timeline !== '') {
    if (!TIMELINE_TYPES.includes(type)) throw new UserError(`--target-timeline applies to --type ${list(TIMELINE_TYPES)}, not --type ${type}`);
    checkTimeline(timeline);
  }
  return { type: type as RestoreType, target, target_exclusive: exclusive, target_action: action, target_timeline: timeline };
}

/**
 * Recovery settings for postgresql.auto.conf, in the order pgBackRest writes them (src/command/restore/config.c.inc);
 * null for preserve and none, which write none.
 */
export function recoverySettings(r: ValidRecoveryTarget, restoreCommand: string): Array<[string, string]> | null {
  if (r.type === 'preserve' || r.type === 'none') return null;
  const settings: Array<[string, string]> = [['restore_command', restoreCommand]];
  if (r.type === 'immediate') settings.push(['recovery_target', 'immediate']);
  if (TARGET_TYPES.includes(r.type)) {
    settings.push([`recovery_target_${r.type}`, r.target]);
    if (r.target_exclusive) settings.push(['recovery_target_inclusive', 'false']);
  }
  // pause is PostgreSQL's default: written only when it is something else
  if (r.target_action !== '' && r.target_action !== 'pause') settings.push(['recovery_target_action', r.target_action]);
  if (r.target_timeline !== '') settings.push(['recovery_target_timeline', r.target_timeline]);
  // an immediate target never changes timeline, and "latest" can make recovery fail to reach a timeline
  // this backup is not on (pgBackRest does the same)
  else if (r.type === 'immediate') settings.push(['recovery_target_timeline', 'current']);
  return settings;
}

/**
 * A --target time as epoch milliseconds, for choosing a backup: YYYY-MM-DD HH:MM:SS with optional fraction and
 * optional zone (+HH, +HHMM, +HH:MM, Z or UTC); without a zone it is the local time of the process (as in pgBackRest).
 * undefined when the text is not in that form.
 */
export function parseTargetTime(text: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)?$/i.exec(text.trim());
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  const ms = m[7] ? Math.floor(Number(m[7]) * 1000) : 0;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return undefined;
  const zone = m[8];
  if (zone === undefined) return new Date(year, month - 1, day, hour, minute, second, ms).getTime();
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  if (/^(Z|UTC)$/i.test(zone)) return utc;
  const z = /^([+-])(\d{2}):?(\d{2})?$/.exec(zone)!;
  const offsetMinutes = (Number(z[2]) * 60 + Number(z[3] ?? 0)) * (z[1] === '-' ? -1 : 1);
  return utc - offsetMinutes * 60_000;
}

/** "recovery_target_name = 'release', recovery_target_action = 'promote'" for the operator (no restore_command). */
export function describeRecovery(r: ValidRecoveryTarget): string {
  if (r.type === 'preserve') return 'recovery settings of the target directory kept (--type preserve)';
  if (r.type === 'none') return 'no recovery settings (--type none): PostgreSQL recovers from the WAL in pg_wal only';
  const settings = recoverySettings(r, '')!.filter(([key]) => key !== 'restore_command');
  const signal = r.type === 'standby' ? 'standby.signal' : 'recovery.signal';
  const targets = settings.map(([k, v]) => `${k} = '${v}'`).join(', ');
  return `${signal}${targets ? `, ${targets}` : ', recovery to the end of the archived WAL'}`;
}
