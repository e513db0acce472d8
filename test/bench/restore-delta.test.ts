/**
 * Benchmark (not part of the suite: runs only with PGREPO_BENCH=1): a pgbench cluster backed up, restored into
 * an empty directory, then delta restores onto it: unchanged (by checksum, and by size and time with --force),
 * and after a few files were changed, deleted and added. Prints files checked/fetched and seconds of each.
 *
 *   PGREPO_BENCH=1 PGREPO_BENCH_SCALE=10 npx vitest run test/bench/restore-delta.test.ts
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectSuccess } from '../harness/expect';
import { useFixture } from '../harness/fixture';
import { pgBindir } from '../harness/pg';
import { restoreWith, type RestoreResult } from '../harness/restore';
import { runOk } from '../harness/system';

const SCALE = Number(process.env.PGREPO_BENCH_SCALE ?? 10);
const PROCESS_MAX = Number(process.env.PGREPO_BENCH_PROCESS_MAX ?? 2);

describe.skipIf(process.env.PGREPO_BENCH !== '1')('restore benchmark: empty directory vs delta', () => {
  const fixture = useFixture();

  it(`pgbench scale ${SCALE}, --process-max ${PROCESS_MAX}`, async () => {
    const fx = fixture();
    const c = fx.cluster1;
    await runOk(path.join(pgBindir(), 'pgbench'), ['-i', '-q', '-s', String(SCALE), '-h', c.socketDir, '-p', String(c.port), '-U', 'postgres', 'postgres'], { asPostgres: true, timeoutMs: 600_000 });
    expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'stanza-create');
    const backupStart = Date.now();
    expectSuccess(await fx.repoctl(['backup', '--stanza', 'main', '--start-fast', '--process-max', String(PROCESS_MAX)], { timeoutMs: 600_000 }), 'backup');
    const backupSeconds = (Date.now() - backupStart) / 1000;

    const d = path.join(await fx.newDir('bench'), 'data');
    const args = ['--pg-path', d, '--process-max', String(PROCESS_MAX)];
    const rows: Array<[string, RestoreResult]> = [];
    rows.push(['into an empty directory', await restoreWith(fx, 'db2', args)]);
    rows.push(['--delta, nothing changed', await restoreWith(fx, 'db2', ['--delta', ...args])]);
    rows.push(['--delta --force, nothing changed', await restoreWith(fx, 'db2', ['--delta', '--force', ...args])]);

    // 10 relation segments changed in place (same size, so only a checksum sees them), 5 files deleted, 5 added
    const base = path.join(d, 'base', '5');
    const rel = fs.readdirSync(base).filter((n) => /^\d+$/.test(n)).map((n) => path.join(base, n)).filter((p) => fs.statSync(p).size >= 8192)
      .sort((a, b) => fs.statSync(a).size - fs.statSync(b).size); // the small ones: a delta that changes a few pages
    for (const p of rel.slice(0, 10)) {
      const fd = fs.openSync(p, 'r+');
      fs.writeSync(fd, Buffer.from([0xff]), 0, 1, 4000);
      fs.closeSync(fd);
    }
    for (const p of rel.slice(10, 15)) fs.rmSync(p);
    for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(d, `stray-${i}`), 'x');
    const changed = await restoreWith(fx, 'db2', ['--delta', ...args]);
    rows.push(['--delta, 10 changed, 5 deleted, 5 added', changed]);
    expect(changed.restore.files_fetched).toBe(10 + 5 + 2); // + pg_control and postgresql.auto.conf

    const table = rows.map(([what, r]) => `| ${what} | ${r.files} | ${r.restore.files_checked} | ${r.restore.files_fetched} | ${(r.restore.bytes_fetched / 2 ** 20).toFixed(1)} | ${r.restore.removed} | ${r.seconds.toFixed(2)} |`);
    console.log([
      `pgbench scale ${SCALE}: ${rows[0][1].files} files, ${(rows[0][1].restore.bytes_fetched / 2 ** 20).toFixed(0)} MiB; backup ${backupSeconds.toFixed(1)} s; --process-max ${PROCESS_MAX}`,
      '| restore | files | checked | fetched | MiB fetched | removed | seconds |',
      '|---|---|---|---|---|---|---|',
      ...table,
    ].join('\n'));
  }, 1_200_000);
});
