#!/usr/bin/env node
import * as grpc from '@grpc/grpc-js';
import { formatHelp, parseOptions, type Options } from '../../shared/config/options';
import { UserError, describeCallError } from '../../shared/errors';
import { CHANNEL_OPTIONS, loadProto } from '../../shared/proto';
import { clientCredentials, readTlsFiles } from '../../shared/tls';
import { runMain } from '../../shared/cli/run-main';
import type { RepositoryClient } from '../../shared/generated/pgrepo/v1/Repository';
import type { OperationEvent__Output } from '../../shared/generated/pgrepo/v1/OperationEvent';
import type { OperationResult__Output } from '../../shared/generated/pgrepo/v1/OperationResult';
import { REPOCTL_OPTIONS, REPOCTL_USAGE } from './options';
import { fleetText, infoJson, infoText } from './format-info';
import { ProgressDisplay, progressMode } from './progress-display';
import { formatBytes, parseSize } from './units';
import { certCommand } from './cert-command';
import { expireJson, summarizeExpire } from './format-expire';
import { verifyText } from './format-verify';
import { retentionFromOptions, retentionToRequest } from '../expire/retention';
import { describeRestore } from './format-restore';

interface Cli {
  options: Options;
  client: RepositoryClient;
  server: string;
  json: boolean;
}

function unaryCall<Req, Res>(fn: (req: Req, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => fn(req, (err, res) => (err ? reject(err) : resolve(res as Res))));
}

/** Follows a long operation's event stream, showing progress, and returns its result. */
async function followOperation(cli: Cli, what: string, stream: AsyncIterable<OperationEvent__Output>): Promise<OperationResult__Output> {
  const display = new ProgressDisplay(what, progressMode(cli.json));
  try {
    for await (const event of stream) {
      if (event.progress) display.update(event.progress);
      else if (event.log) display.message(event.log);
      else if (event.result) return event.result;
    }
  } finally {
    display.finish();
  }
  throw new UserError(`the server ended the ${what} without a result`);
}

function backupSummary(r: OperationResult__Output): string {
  const size = (n: number | string) => formatBytes(Number(n));
  const lines = [
    `${r.type} backup ${r.label}${r.prior ? ` (prior ${r.prior})` : ''} complete in ${r.seconds.toFixed(1)}s from agent ${r.agent}, LSN ${r.lsn_start}..${r.lsn_stop}`,
    `  database: ${r.files} files, ${size(r.bytes)}; repository: ${size(r.repo_bytes)} for the whole set`,
    `  sent: ${r.files_copied} files, ${size(r.bytes_copied)} (${size(r.repo_bytes_copied)} stored)${r.delta ? ', chosen by checksum (delta)' : ''}`,
  ];
  if (r.files_referenced > 0) lines.push(`  unchanged since the prior backup: ${r.files_referenced} files, ${size(r.bytes_referenced)} (referenced, not sent)`);
  if (r.files_resumed > 0) lines.push(`  resumed: ${r.files_resumed} files, ${size(r.bytes_resumed)} kept from the interrupted backup`);
  if (r.page_error_files.length > 0) {
    lines.push(`  WARNING: invalid page checksums in ${r.page_error_files.length} file(s): ${r.page_error_files.join(', ')} (recorded in the manifest; see the warnings above)`);
  }
  return lines.join('\n');
}

function print(cli: Cli, json: unknown, text: string): void {
  process.stdout.write(cli.json ? `${JSON.stringify(json, null, 2)}\n` : `${text}\n`);
}

function requireStanza(options: Options): string {
  return options.requireStr('stanza', 'which stanza to work on');
}

const commands: Record<string, (cli: Cli) => Promise<void>> = {
  async 'stanza-create'(cli) {
    const stanza = requireStanza(cli.options);
    const res = await unaryCall(cli.client.StanzaCreate.bind(cli.client), { stanza, host: cli.options.str('host') ?? '' });
    const c = res.cluster!;
    print(cli, { stanza, agent: res.agent, 'system-id': c.system_id, version: c.version, 'already-existed': res.already_existed },
      `stanza '${stanza}' ${res.already_existed ? 'already exists and matches' : 'created for'} PostgreSQL ${c.version}, system identifier ${c.system_id} (agent ${res.agent})`);
  },

  async backup(cli) {
    const o = cli.options;
    const result = await followOperation(cli, 'backup', cli.client.Backup({
      stanza: requireStanza(o), type: o.str('type') ?? '', host: o.str('host') ?? '', start_fast: o.bool('start-fast'),
      compress_type: o.str('compress-type'), compress_level: o.int('compress-level') ?? -1,
      process_max: o.int('process-max'), archive_timeout: o.int('archive-timeout') ?? 0,
      retention: retentionToRequest(retentionFromOptions(o)),
      delta: o.bool('delta'), no_resume: !o.bool('resume'),
      bundle: o.bool('bundle'), bundle_limit: parseSize('bundle-limit', o.str('bundle-limit')!), bundle_size: parseSize('bundle-size', o.str('bundle-size')!),
    }));
    const expire = result.expire;
    const expired = expire && !expire.error ? `\nexpire: ${summarizeExpire(expire)}` : '';
    print(cli, result, `${backupSummary(result)}${expired}`);
    // like pgBackRest, a failed expire fails the command, though the backup itself is complete
    if (expire?.error) throw new UserError(`backup ${result.label} is complete, but the expire after it failed: ${expire.error}`);
  },

  async restore(cli) {
    const o = cli.options;
    const tablespaceMap = o.list('tablespace-map').map((m) => {
      const eq = m.indexOf('=');
      if (eq <= 0) throw new UserError(`--tablespace-map '${m}' must be NAME=DIR`);
      return { name: m.slice(0, eq), path: m.slice(eq + 1) };
    });
    const result = await followOperation(cli, 'restore', cli.client.Restore({
      stanza: requireStanza(o), set: o.str('set') ?? '', host: o.requireStr('host', 'the agent that writes the restored cluster'),
      pg_path: o.str('pg-path') ?? '', tablespace_map: tablespaceMap, tablespace_map_all: o.str('tablespace-map-all') ?? '',
      process_max: o.int('process-max'), delta: o.bool('delta'), force: o.bool('force'), db_include: o.list('db-include'),
      recovery: {
        type: o.str('type') ?? 'default', target: o.str('target') ?? '', target_exclusive: o.bool('target-exclusive'),
        target_action: o.str('target-action') ?? '', target_timeline: o.str('target-timeline') ?? '',
      },
    }));
    print(cli, result, describeRestore(result));
  },

  async expire(cli) {
    const o = cli.options;
    const result = await followOperation(cli, 'expire', cli.client.Expire({
      stanza: requireStanza(o), set: o.str('set') ?? '', dry_run: o.bool('dry-run'), retention: retentionToRequest(retentionFromOptions(o)),
    }));
    print(cli, expireJson(result.expire!), summarizeExpire(result.expire!));
  },

  async check(cli) {
    const o = cli.options;
    const stanza = requireStanza(o);
    const result = await followOperation(cli, 'check', cli.client.Check({ stanza, host: o.str('host') ?? '', archive_timeout: o.int('archive-timeout') ?? 0 }));
    const c = result.check!;
    print(cli, { stanza, agent: c.agent, 'system-id': c.system_id, version: c.version, 'archive-command': c.archive_command, wal: c.wal_segment, 'archived-to': c.archived_to, seconds: result.seconds },
      `check of stanza '${stanza}' passed: agent ${c.agent} reached PostgreSQL ${c.version} (system identifier ${c.system_id}); WAL segment ${c.wal_segment} was archived to ${c.archived_to} in ${result.seconds.toFixed(1)}s`);
  },

  async verify(cli) {
    const o = cli.options;
    const stanza = requireStanza(o);
    const result = await followOperation(cli, 'verify', cli.client.Verify({ stanza, set: o.str('set') ?? '', process_max: o.int('process-max') }));
    const r = result.verify!;
    print(cli, r, verifyText(stanza, r, result.seconds));
    if (!r.ok) throw new UserError(`verify found missing or corrupt files in stanza '${stanza}' (listed above)`);
  },

  async info(cli) {
    const stanza = cli.options.str('stanza') ?? '';
    const res = await unaryCall(cli.client.Info.bind(cli.client), { stanza });
    process.stdout.write(cli.json ? `${infoJson(res.stanzas)}\n` : stanza ? infoText(res.stanzas) : fleetText(res.stanzas));
  },
};

async function main(): Promise<number | void> {
  const options = parseOptions(REPOCTL_OPTIONS, process.argv.slice(2));
  const command = options.positional[0];
  if (options.bool('help') || !command) {
    process.stdout.write(formatHelp(REPOCTL_USAGE, REPOCTL_OPTIONS));
    return command || options.bool('help') ? 0 : 2;
  }
  const json = options.str('output') === 'json';
  if (command === 'cert') {
    const result = await certCommand(options, options.positional.slice(1));
    process.stdout.write(json ? `${JSON.stringify(result.json, null, 2)}\n` : `${result.text}\n`);
    return;
  }
  const run = commands[command];
  if (!run) throw new UserError(`unknown command '${command}'; commands: ${[...Object.keys(commands), 'cert'].join(', ')}`);
  const server = options.str('server')!;
  const Client = loadProto().pgrepo.v1.Repository;
  const client = new Client(server, clientCredentials(readTlsFiles(options)), CHANNEL_OPTIONS);
  try {
    await run({ options, client, server, json });
  } catch (err) {
    throw err instanceof UserError ? err : new UserError(describeCallError(err, server));
  } finally {
    client.close();
  }
}

runMain('repoctl', main);
