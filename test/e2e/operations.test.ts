/**
 * Running pgrepo as a service: server and agent booted from the example config files in
 * deploy/ (not flags), certificates from `repoctl cert`, Prometheus metrics that move with a
 * backup, SIGHUP reloading the authorization rules without a restart or a dropped agent, an
 * expired client certificate refused by name and date, and the systemd units checked by
 * systemd-analyze.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueCertificate } from '../../repo-server/repoctl/certificates';
import { expectRefused, expectSuccess } from '../harness/expect';
import { runCleanups } from '../harness/cleanup';
import { freePort, initCluster, makeTempDir, query, startCluster, switchWal, waitForArchived, type Cluster } from '../harness/pg';
import { archiveCommandFor, programPath, runProgram, runProgramOk, startProgram, type LogEntry, type Proc } from '../harness/processes';
import { chownToPostgres, repoRoot, run } from '../harness/system';

const deploy = path.join(repoRoot(), 'deploy');
const AUTH = ['db1=agent:main', 'ops=admin', 'viewer1=viewer'];

/**
 * The example config with the given keys set: each key's first line (set or commented out) is
 * replaced, further lines of a list key are dropped. Every key must be in the example.
 */
function configFrom(example: string, values: Record<string, string | string[]>): string {
  const done = new Set<string>();
  const out: string[] = [];
  for (const line of fs.readFileSync(path.join(deploy, example), 'utf8').split('\n')) {
    const key = /^#?([a-z][a-z0-9-]*)=/.exec(line)?.[1];
    if (key === undefined || !(key in values)) {
      out.push(line);
      continue;
    }
    if (done.has(key)) continue;
    done.add(key);
    const v = values[key];
    for (const value of Array.isArray(v) ? v : [v]) out.push(`${key}=${value}`);
  }
  const missing = Object.keys(values).filter((k) => !done.has(k));
  if (missing.length) throw new Error(`deploy/${example} has no line for ${missing.join(', ')}`);
  return out.join('\n');
}

async function writeConfig(file: string, text: string): Promise<string> {
  // replaced by rename, as an operator's editor or config management would
  await fsp.writeFile(`${file}.new`, text);
  await chownToPostgres(`${file}.new`);
  await fsp.rename(`${file}.new`, file);
  return file;
}

function scrape(port: number): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`/metrics answered ${res.statusCode}: ${body}`));
        const samples = new Map<string, number>();
        for (const line of body.split('\n')) {
          const m = /^(\w+(?:\{[^}]*\})?) (\S+)$/.exec(line);
          if (m) samples.set(m[1], Number(m[2]));
        }
        resolve(samples);
      });
    }).on('error', reject);
  });
}

/** The SHA-256 fingerprint of the certificate the server presents to a new connection. */
function serverFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.destroy();
      resolve(fingerprint);
    });
    socket.on('error', reject);
  });
}

function listFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

const portOf = (entry: LogEntry) => Number(/:(\d+)$/.exec(String(entry.address))![1]);

describe('operations: config files, metrics, reload, certificates, systemd', { timeout: 180_000 }, () => {
  let work: string;
  let tlsDir: string;
  let serverConf: string;
  let server: Proc;
  let agent: Proc;
  let cluster: Cluster;
  let grpcPort: number;
  let metricsPort: number;
  let repoctlConf: string;
  const cert = (cn: string) => ({ 'tls-cert': path.join(tlsDir, `${cn}.crt`), 'tls-key': path.join(tlsDir, `${cn}.key`), 'tls-ca': path.join(tlsDir, 'ca.crt') });
  const serverValues = (auth: string[]) => ({
    listen: '127.0.0.1:0', 'metrics-listen': '127.0.0.1:0', 'repo-path': path.join(work, 'repo'), ...cert('localhost'), auth,
  });
  const repoctl = (args: string[], as = 'ops') => runProgram('repoctl', ['--config', repoctlConf, '--tls-cert', cert(as)['tls-cert'], '--tls-key', cert(as)['tls-key'], ...args]);

  beforeAll(async () => {
    work = await makeTempDir('pgrepo-ops');
    tlsDir = path.join(work, 'tls');
    expectSuccess(await runProgram('repoctl', ['cert', 'init', '--cert-dir', tlsDir]), 'repoctl cert init');
    for (const [kind, ...cns] of [['server', 'localhost'], ['agent', 'db1'], ['operator', 'ops', 'viewer1']]) {
      expectSuccess(await runProgram('repoctl', ['cert', 'issue', kind, ...cns, '--cert-dir', tlsDir]), `repoctl cert issue ${kind} ${cns.join(' ')}`);
    }
    await chownToPostgres(tlsDir, true);

    serverConf = await writeConfig(path.join(work, 'pgrepo-server.conf'), configFrom('pgrepo-server.conf', serverValues(AUTH)));
    server = await startProgram('pgrepo-server', 'server', ['--config', serverConf]);
    grpcPort = portOf(await server.waitForLog('listening'));
    metricsPort = portOf(await server.waitForLog('metrics listening'));

    const socketDir = path.join(work, 'sock');
    await fsp.mkdir(socketDir);
    await chownToPostgres(socketDir);
    const agentSocket = path.join(socketDir, 'agent.sock');
    cluster = await initCluster({ name: 'ops-cluster', dir: path.join(work, 'pg'), port: await freePort(), socketDir, archiveCommand: await archiveCommandFor(agentSocket) });
    await startCluster(cluster);
    const agentConf = await writeConfig(path.join(work, 'pgrepo-agent.conf'), configFrom('pgrepo-agent.conf', {
      server: `127.0.0.1:${grpcPort}`, stanza: 'main', 'pg-path': cluster.dir, 'pg-port': String(cluster.port), 'pg-socket-path': socketDir,
      socket: agentSocket, ...cert('db1'),
    }));
    agent = await startProgram('pgrepo-agent db1', 'agent', ['--config', agentConf]);
    await agent.waitForLog('attached to repository server');
    repoctlConf = await writeConfig(path.join(work, 'repoctl.conf'), configFrom('repoctl.conf', { server: `127.0.0.1:${grpcPort}`, ...cert('ops') }));
    expectSuccess(await repoctl(['stanza-create', '--stanza', 'main']), 'repoctl stanza-create');
  }, 180_000);

  afterAll(() => runCleanups(), 180_000);

  it('refuses to start on a config file with an unknown key or a bad value, naming the file, the line and the reason', async () => {
    for (const [program, example, line, why] of [
      ['server', 'pgrepo-server.conf', 'repo-pth=/srv/repo', /unknown option 'repo-pth'/],
      ['agent', 'pgrepo-agent.conf', 'pg-port=99999', /option 'pg-port' must be at most 65535, got '99999'/],
      ['repoctl', 'repoctl.conf', 'output=yaml', /option 'output' must be one of text, json/],
    ] as const) {
      const text = `${fs.readFileSync(path.join(deploy, example), 'utf8')}${line}\n`;
      const file = await writeConfig(path.join(work, `bad-${example}`), text);
      const res = await runProgram(program, ['--config', file, ...(program === 'repoctl' ? ['info'] : [])]);
      expectRefused(res, `${program} --config with '${line}'`, new RegExp(`bad-${example.replace('.', '\\.')}:${text.split('\n').length - 1}: `), why);
    }
  });

  it('serves metrics that move with a backup, and logs one summary line for it', async () => {
    const before = await scrape(metricsPort);
    expect(before.get('pgrepo_agents_attached{stanza="main"}')).toBe(1);
    expect(before.get('pgrepo_agent_attached{identity="db1",stanza="main"}')).toBe(1);
    expect(before.get('pgrepo_backup_last_good_timestamp_seconds{stanza="main",type="full"}')).toBeUndefined();
    const receivedBefore = before.get('pgrepo_received_bytes_total{stanza="main",kind="backup"}') ?? 0;
    const pushesBefore = before.get('pgrepo_archive_push_total{stanza="main"}') ?? 0;

    const mark = server.mark();
    const res = await repoctl(['backup', '--stanza', 'main', '--type', 'full', '--start-fast', '--output', 'json']);
    expectSuccess(res, 'repoctl backup --output json');
    const result = JSON.parse(res.stdout) as { label: string; bytes: number; repo_bytes: number };
    // for scripts: every progress line on stderr is JSON, and the last one says all bytes are done
    const events = res.stderr.trim().split('\n').map((l) => JSON.parse(l) as { event: string; operation?: string; bytesDone?: number; bytesTotal?: number });
    const progress = events.filter((e) => e.event === 'progress');
    expect(progress.length, res.stderr).toBeGreaterThan(0);
    expect(progress[progress.length - 1].bytesDone).toBe(progress[progress.length - 1].bytesTotal);

    const summary = await server.waitForLog('backup complete', 10_000, mark);
    expect(summary).toMatchObject({ stanza: 'main', label: result.label, type: 'full' });
    expect(server.findLogs('backup complete', mark)).toHaveLength(1);

    const after = await scrape(metricsPort);
    const stop = after.get('pgrepo_backup_last_good_timestamp_seconds{stanza="main",type="full"}');
    expect(stop).toBeGreaterThan(0);
    expect(after.get('pgrepo_backup_last_good_age_seconds{stanza="main",type="full"}')).toBeGreaterThanOrEqual(0);
    expect(after.get('pgrepo_backup_last_good_duration_seconds{stanza="main",type="full"}')).toBeGreaterThanOrEqual(0);
    expect(after.get('pgrepo_backup_last_good_size_bytes{stanza="main",type="full"}')).toBe(result.bytes);
    expect(after.get('pgrepo_received_bytes_total{stanza="main",kind="backup"}')).toBe(receivedBefore + result.repo_bytes);
    // the backup waited for its WAL: pushes were counted and the newest segment is named
    expect(after.get('pgrepo_archive_push_total{stanza="main"}')).toBeGreaterThan(pushesBefore);
    expect([...after.keys()].some((k) => /^pgrepo_wal_last_archived_info\{stanza="main",segment="[0-9A-F]{24}"\}$/.test(k))).toBe(true);
    expect(after.get('pgrepo_wal_last_archived_age_seconds{stanza="main"}')).toBeGreaterThanOrEqual(0);
    expect(after.get('pgrepo_repo_size_bytes{stanza="main",kind="backup"}')).toBe(result.repo_bytes);
    expect(after.get('pgrepo_archive_push_failures_total{stanza="main"}') ?? 0).toBe(0);

    // the fleet view: one line for the stanza with its backup, WAL range and size
    const fleet = await repoctl(['info']);
    expectSuccess(fleet, 'repoctl info');
    expect(fleet.stdout).toMatch(new RegExp(`^main\\s+ok\\s+${result.label} \\(\\S+ ago\\)\\s+-\\s+-\\s+[0-9A-F]{24} - [0-9A-F]{24}\\s+\\S+B\\s+db1$`, 'm'));
  });

  it('SIGHUP reloads the rules: a removed CN is refused at once, the attached agent stays attached', async () => {
    expectSuccess(await repoctl(['info'], 'viewer1'), 'repoctl info as viewer1 before the reload');
    const serverMark = server.mark();
    const agentMark = agent.mark();
    await writeConfig(serverConf, configFrom('pgrepo-server.conf', serverValues(AUTH.filter((r) => !r.startsWith('viewer1=')))));
    server.signal('SIGHUP');
    const reloaded = await server.waitForLog(/^reloaded authorization rules/, 10_000, serverMark);
    expect(reloaded).toMatchObject({ removed: ['viewer1'], detached: [] });

    expectRefused(await repoctl(['info'], 'viewer1'), 'repoctl info as viewer1 after the reload', /viewer1/, /not authorized/);

    // a broken file is refused by name and line, and the rules in force stay
    const good = fs.readFileSync(serverConf, 'utf8');
    await writeConfig(serverConf, `${good}\nauth=viewer1=superuser\n`);
    const badMark = server.mark();
    server.signal('SIGHUP');
    const failed = await server.waitForLog(/^reload failed/, 10_000, badMark);
    expect(String(failed.err)).toMatch(new RegExp(`pgrepo-server\\.conf:${good.split('\n').length + 1}: option 'auth'`));
    await writeConfig(serverConf, good);
    expectRefused(await repoctl(['info'], 'viewer1'), 'repoctl info as viewer1 after a failed reload', /viewer1/, /not authorized/);
    expectSuccess(await repoctl(['info']), 'repoctl info as ops after the reload');
    // same process, same agent channel: WAL still flows through it and nothing was re-attached
    await waitForArchived(cluster, await switchWal(cluster));
    expect(server.running).toBe(true);
    expect(server.findLogs(/agent (attached|detached)/, serverMark)).toEqual([]);
    expect(agent.findLogs(/lost the repository server|refused this agent/, agentMark)).toEqual([]);
    expect((await scrape(metricsPort)).get('pgrepo_agent_attached{identity="db1",stanza="main"}')).toBe(1);
  });

  it('refuses an expired client certificate, naming its CN and expiry, and warns about one expiring soon', async () => {
    const ca = { cert: fs.readFileSync(path.join(tlsDir, 'ca.crt'), 'utf8'), key: fs.readFileSync(path.join(tlsDir, 'ca.key'), 'utf8') };
    const day = 86_400_000;
    const notAfter = new Date(Math.floor((Date.now() - 2 * day) / 1000) * 1000);
    for (const [name, validity] of [['expired', { notBefore: new Date(Date.now() - 30 * day), notAfter }],
      ['soon', { notBefore: new Date(Date.now() - day), notAfter: new Date(Date.now() + 10 * day) }]] as const) {
      const pair = await issueCertificate({ ca, cn: 'ops', kind: 'operator', validity });
      fs.writeFileSync(path.join(tlsDir, `${name}.crt`), pair.cert);
      fs.writeFileSync(path.join(tlsDir, `${name}.key`), pair.key, { mode: 0o600 });
    }
    await chownToPostgres(tlsDir, true);

    const mark = server.mark();
    expectRefused(await repoctl(['info'], 'expired'), 'repoctl with an expired certificate', /'ops'/, new RegExp(`expired on ${notAfter.toISOString()}`));
    const refusal = await server.waitForLog(/refused a client: .*expired/, 10_000, mark);
    expect(refusal).toMatchObject({ identity: 'ops', notAfter: notAfter.toISOString() });

    expectSuccess(await repoctl(['info'], 'soon'), 'repoctl with a certificate that expires in 10 days');
    const warning = await server.waitForLog(/expires within 30 days/, 10_000, mark);
    expect(warning).toMatchObject({ cn: 'ops', daysLeft: expect.any(Number) });
    expect(warning.level).toBe(40);
  });

  it('SIGHUP also swaps the server certificate for new connections, and detaches an agent whose rule is gone', async () => {
    const before = await serverFingerprint(grpcPort);
    expect(before).toBe(new X509Certificate(fs.readFileSync(cert('localhost')['tls-cert'])).fingerprint256);
    expectSuccess(await runProgram('repoctl', ['cert', 'issue', 'server', 'localhost', '--cert-dir', tlsDir]), 'repoctl cert issue server localhost (renewal)');
    await chownToPostgres(tlsDir, true);
    const renewed = new X509Certificate(fs.readFileSync(cert('localhost')['tls-cert'])).fingerprint256;
    expect(renewed).not.toBe(before);

    const serverMark = server.mark();
    const agentMark = agent.mark();
    await writeConfig(serverConf, configFrom('pgrepo-server.conf', serverValues(['ops=admin'])));
    server.signal('SIGHUP');
    expect(await server.waitForLog(/^reloaded authorization rules/, 10_000, serverMark)).toMatchObject({ removed: ['db1'], detached: ['db1'] });
    expect(await serverFingerprint(grpcPort)).toBe(renewed);
    expectSuccess(await repoctl(['info']), 'repoctl info against the renewed server certificate');
    // the agent hears it was cut off and, dialling again, is refused by name
    await agent.waitForLog('the repository server refused this agent', 30_000, agentMark);
    expect((await scrape(metricsPort)).get('pgrepo_agents_attached{stanza="main"}')).toBe(0);

    await writeConfig(serverConf, configFrom('pgrepo-server.conf', serverValues(AUTH)));
    server.signal('SIGHUP');
    await agent.waitForLog('attached to repository server', 60_000, agentMark);
  });

  it('SIGTERM during a backup: the backup stops cleanly, nothing of it stays in the repository, the server exits 0', async () => {
    await query(cluster, 'create table bulk as select g, md5(g::text) as a, md5((g * 7)::text) as b from generate_series(1, 500000) g');
    const before = fs.readFileSync(path.join(work, 'repo', 'backup', 'main', 'backup.info'), 'utf8');
    const labelsBefore = fs.readdirSync(path.join(work, 'repo', 'backup', 'main')).sort();
    const backup = await startProgram('repoctl backup', 'repoctl', ['--config', repoctlConf, 'backup', '--stanza', 'main', '--start-fast', '--compress-level', '9', '--output', 'json']);
    // repoctl's JSON progress lines: wait until files are being copied
    await backup.waitForLog((e) => e.event === 'progress' && Number(e.bytesDone) < Number(e.bytesTotal), 60_000);
    const mark = server.mark();
    server.signal('SIGTERM');
    await server.exited;
    expect(server.exitCode, server.tail()).toBe(0);
    await server.waitForLog('shutting down: ending work in flight', 1000, mark);
    await server.waitForLog('shut down cleanly', 1000, mark);
    await server.waitForLog(/^backup .*failed/, 1000, mark);
    expect(server.findLogs('backup complete', mark)).toEqual([]);

    await backup.exited;
    expect(backup.exitCode).not.toBe(0);
    expect(backup.lines.map((l) => l.text).join('\n')).toMatch(/repoctl: error: .*(shut|disconnect|unavailable)/i);
    // the interrupted backup left nothing that looks like a complete backup (at most a partial set
    // kept for resume, which has no backup.manifest and is not in backup.info), and no temp file
    const stanzaDir = path.join(work, 'repo', 'backup', 'main');
    expect(fs.readFileSync(path.join(stanzaDir, 'backup.info'), 'utf8')).toBe(before);
    for (const name of fs.readdirSync(stanzaDir).filter((n) => !labelsBefore.includes(n))) {
      expect(fs.existsSync(path.join(stanzaDir, name, 'backup.manifest')), `${name} looks complete`).toBe(false);
    }
    expect(listFiles(path.join(work, 'repo')).filter((f) => f.includes('.pgrepo.tmp.'))).toEqual([]);
  });

  describe('systemd units', () => {
    const analyze = run('sh', ['-c', 'command -v systemd-analyze']).then((r) => r.code === 0);

    it('pass systemd-analyze verify and rate at most 3.5 in its offline security review', async (ctx) => {
      if (!(await analyze)) ctx.skip('systemd-analyze is not installed on this machine (apt-get install systemd)');
      // verify checks that ExecStart's program exists: point /usr/local/bin at this build's programs
      const bin = path.join(work, 'bin');
      await fsp.mkdir(bin);
      fs.symlinkSync(await programPath('server'), path.join(bin, 'pgrepo-server'));
      fs.symlinkSync(await programPath('agent'), path.join(bin, 'pgrepo-agent'));
      for (const unit of ['pgrepo-server.service', 'pgrepo-agent.service']) {
        const source = path.join(deploy, 'systemd', unit);
        const copy = path.join(work, unit);
        fs.writeFileSync(copy, fs.readFileSync(source, 'utf8').replaceAll('/usr/local/bin/', `${bin}/`));
        const verify = await run('systemd-analyze', ['verify', copy]);
        expect(verify.code, `systemd-analyze verify ${unit}\n${verify.stdout}${verify.stderr}`).toBe(0);
        expect(verify.stderr.trim(), unit).toBe('');

        const security = await run('systemd-analyze', ['security', '--offline=true', source]);
        const score = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(security.stdout)?.[1]);
        expect(score, `${unit}\n${security.stdout}${security.stderr}`).toBeLessThanOrEqual(3.5);
      }
    });
  });
});
