/**
 * verify --process-max 2 reads on worker threads: on a bundled backup of a cluster with one large,
 * poorly compressible table (many frames, large enough that an idle thread helps decode it) it
 * passes while the repository is whole; after one byte of a frame in the middle of that table's
 * stored file and one byte of a small file inside a bundle are flipped, it exits non-zero naming
 * exactly those two, and the other files stay valid. Without its manifest's copy, then without the
 * manifest too, it says so.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { expectRefused, expectSuccess } from '../harness/expect';
import { useFixture } from '../harness/fixture';
import { query } from '../harness/pg';
import { scenario } from '../harness/scenario';
import { frameLength } from '../../shared/stream/frame-codec';

interface VerifyJson {
  ok: boolean;
  problems: { kind: string; file: string; detail: string }[];
  files_checked: number;
  backups: { label: string; status: string; files: number; valid: number; problems: { kind: string; file: string; detail: string }[] }[];
}

describe('verify --process-max 2', () => {
  const fixture = useFixture();
  const step = scenario();
  const s: { label?: string; relation?: string; frames?: number; damaged?: string[]; bundled?: { name: string; key: string } } = {};

  const manifestOf = (label: string) => fs.readFileSync(path.join(fixture().repoDir, 'backup', 'main', label, 'backup.manifest'), 'utf8');

  step('a bundled backup of a cluster with a table of ~20 MiB of random bytes', async () => {
    const fx = fixture();
    expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'stanza-create');
    // random bytes kept in the heap (storage plain, rows under 2 KiB): one file that zstd cannot shrink
    await query(fx.cluster1, 'create table big (id int, b bytea)');
    await query(fx.cluster1, 'alter table big alter column b set storage plain');
    await query(fx.cluster1, "insert into big select g, decode(string_agg(md5(random()::text || g), ''), 'hex') from generate_series(1, 11000) g, generate_series(1, 100) r group by g");
    await query(fx.cluster1, 'checkpoint');
    s.relation = (await query<{ f: string }>(fx.cluster1, "select pg_relation_filepath('big') as f"))[0].f;
    const res = await fx.repoctl(['backup', '--stanza', 'main', '--start-fast', '--bundle', '--process-max', '2', '--output', 'json'], { timeoutMs: 200_000 });
    expectSuccess(res, 'backup --bundle');
    s.label = (JSON.parse(res.stdout) as { label: string }).label;
  });

  step('passes on the whole repository, every file valid', async () => {
    const fx = fixture();
    const stored = path.join(fx.repoDir, 'backup', 'main', s.label!, 'pg_data', `${s.relation}.zst`);
    const bytes = fs.readFileSync(stored);
    // many frames, and more than the 16 MiB stored that makes an idle thread help with it
    let frames = 0;
    for (let at = 0; at < bytes.length; frames++) at += frameLength('zst', bytes.subarray(at), bytes.length - at) as number;
    expect(frames).toBeGreaterThan(16);
    expect(bytes.length).toBeGreaterThan(16 * 1024 * 1024);
    s.frames = frames;
    const res = await fx.repoctl(['verify', '--stanza', 'main', '--process-max', '2', '--output', 'json'], { timeoutMs: 200_000 });
    expectSuccess(res, 'verify of a whole repository');
    const r = JSON.parse(res.stdout) as VerifyJson;
    expect(r.ok).toBe(true);
    expect(r.backups).toEqual([expect.objectContaining({ label: s.label, status: 'valid', problems: [] })]);
    expect(r.backups[0].valid).toBe(r.backups[0].files);
    expect(r.files_checked).toBeGreaterThan(r.backups[0].files / 2);
  });

  step('names a damaged frame in the large file and a damaged file in a bundle, and exits non-zero', async () => {
    const fx = fixture();
    const label = s.label!;
    // one byte in the middle of a frame in the middle of the large file
    const rel = path.join('backup', 'main', label, 'pg_data', `${s.relation}.zst`);
    const stored = path.join(fx.repoDir, rel);
    const bytes = fs.readFileSync(stored);
    let at = 0;
    for (let i = 0; i < Math.floor(s.frames! / 2); i++) at += frameLength('zst', bytes.subarray(at), bytes.length - at) as number;
    const length = frameLength('zst', bytes.subarray(at), bytes.length - at) as number;
    bytes[at + Math.floor(length / 2)] ^= 0xff;
    fs.writeFileSync(stored, bytes);
    // a small file stored inside a bundle: one byte of its range
    const line = manifestOf(label).split('\n').find((l) => /^pg_data\/base\/\d+\/\d+=.*"bni":\d+/.test(l) && Number(/"repo-size":(\d+)/.exec(l)?.[1] ?? 0) > 100)!;
    expect(line, 'a bundled relation file in the manifest').toBeDefined();
    const [, name, bni, bno, repoSize] = /^([^=]+)=.*"bni":(\d+),"bno":(\d+).*"repo-size":(\d+)/.exec(line)!;
    const bundleKey = path.join('backup', 'main', label, 'bundle', bni);
    const bundle = fs.readFileSync(path.join(fx.repoDir, bundleKey));
    bundle[Number(bno) + Math.floor(Number(repoSize) / 2)] ^= 0xff;
    fs.writeFileSync(path.join(fx.repoDir, bundleKey), bundle);
    s.bundled = { name, key: `${bundleKey}#${bno}` };

    const res = await fx.repoctl(['verify', '--stanza', 'main', '--process-max', '2'], { timeoutMs: 200_000 });
    expectRefused(res, 'verify of a damaged repository', /verify found missing or corrupt files in stanza 'main'/);
    expect(res.stdout).toMatch(new RegExp(`backup ${label}: invalid`));
    expect(res.stdout).toContain(rel);
    expect(res.stdout).toContain(`${s.bundled.key}: ${name}: `);

    const json = await fx.repoctl(['verify', '--stanza', 'main', '--process-max', '2', '--output', 'json'], { timeoutMs: 200_000 });
    const b = (JSON.parse(json.stdout) as VerifyJson).backups[0];
    expect(b.status).toBe('invalid');
    expect(b.problems.map((p) => p.file).sort()).toEqual([rel, s.bundled.key].sort());
    expect(b.valid).toBe(b.files - 2);
  });

  step('a missing manifest copy, then a missing manifest, are named', async () => {
    const fx = fixture();
    const key = path.join('backup', 'main', s.label!, 'backup.manifest');
    fs.rmSync(path.join(fx.repoDir, `${key}.copy`));
    let r = JSON.parse((await fx.repoctl(['verify', '--stanza', 'main', '--process-max', '2', '--output', 'json'], { timeoutMs: 200_000 })).stdout) as VerifyJson;
    expect(r.problems).toContainEqual({ kind: 'info', file: `${key}.copy`, detail: 'missing' });
    expect(r.backups[0].status).toBe('invalid'); // still read from the manifest: the two damaged files
    fs.rmSync(path.join(fx.repoDir, key));
    r = JSON.parse((await fx.repoctl(['verify', '--stanza', 'main', '--output', 'json'], { timeoutMs: 200_000 })).stdout) as VerifyJson;
    expect(r.ok).toBe(false);
    expect(r.backups[0].status).toBe('missing-manifest');
    expect(r.problems.map((p) => p.file).sort()).toEqual([key, `${key}.copy`]);
  });
});
