/**
 * A large file restored in parts by several workers (agent/restore/split.ts): the server cuts the
 * stored file into runs of whole frames, each worker writes its run at its offset (with direct
 * I/O, agent/restore/file-writer.ts), and the file's SHA-1 is checked over the whole file before
 * it counts. A small part size (a test-only option) splits a ~20 MiB table file across the
 * workers: 2 parts at --process-max 2, 4 at --process-max 4.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { expectRefused, expectSuccess } from '../harness/expect';
import { useFixture } from '../harness/fixture';
import { freePort, stopCluster, tableDigest } from '../harness/pg';
import { backupBigTable } from '../harness/restore';
import { startRestored } from '../harness/restored';
import { scenario } from '../harness/scenario';
import { frameIndex } from '../../shared/stream/frame-walk';
import { decodeFrame } from '../../shared/stream/frame-codec';

describe('a large file restored in parts by several workers', () => {
  const fixture = useFixture();
  const step = scenario();
  const s: { bigFile?: string; digest?: { count: number; sum: string }; label?: string } = {};
  const storedPath = () => path.join(fixture().repoDir, 'backup', 'main', s.label!, 'pg_data', `${s.bigFile}.zst`);
  /** A restore of the backup into a new directory at `processMax`; its result. */
  const restoreInto = async (name: string, processMax: number) => {
    const target = path.join(await fixture().newDir(name), 'data');
    return { target, res: await fixture().repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', target, '--process-max', String(processMax)]) };
  };

  step('a zst backup of a cluster with one table file of many frames', async () => {
    const fx = fixture();
    Object.assign(s, await backupBigTable(fx, 'zst'));
    await fx.startAgent2({ extraArgs: ['--test-restore-part-min', String(4 * 1024 * 1024)] });
  });

  // the first part's worker takes the SHA-1 as it writes, the second part's bytes are read back for it
  for (const [half, where] of [['first', 1 / 4], ['second', 3 / 4]] as const) step(`a frame damaged in the ${half} half fails the restore as damage, naming the file; nothing of it stays behind`, async () => {
    const fx = fixture();
    const stored = path.join(fx.repoDir, 'backup', 'main', s.label!, 'pg_data', `${s.bigFile}.zst`);
    const bytes = fs.readFileSync(stored);
    const index = frameIndex('zst', (p, n) => bytes.subarray(p, p + n), bytes.length)!;
    expect(index.stored.length, 'the stored file is many frames').toBeGreaterThan(8);
    // inside a frame of that part: its headers stay whole, so the server still cuts the file
    const frame = Math.floor(index.stored.length * where);
    const damaged = Buffer.from(bytes);
    const at = Math.floor((index.stored[frame] + index.stored[frame + 1]) / 2);
    for (let i = 0; i < 64; i++) damaged[at + i] ^= 0x5a;
    fs.writeFileSync(stored, damaged);
    try {
      const target = path.join(await fx.newDir(`damaged-${half}`), 'data');
      const res = await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', target, '--process-max', '2']);
      expectRefused(res, 'a restore of a damaged frame', new RegExp(`file pg_data/${s.bigFile} of backup ${s.label}: .*the repository is damaged`));
      expect(fs.existsSync(path.join(target, s.bigFile!)), 'the file is not left behind').toBe(false);
      expect(fs.existsSync(path.join(target, 'global', 'pg_control')), 'no pg_control').toBe(false);
    } finally {
      fs.writeFileSync(stored, bytes);
    }
  });

  step('the file restored whole (--process-max 1), in 2 parts and in 4 is byte for byte the stored frames decoded', async () => {
    const bytes = fs.readFileSync(storedPath());
    const index = frameIndex('zst', (p, n) => bytes.subarray(p, p + n), bytes.length)!;
    const original = Buffer.concat(index.stored.map((start, i) => Buffer.from(decodeFrame('zst', bytes.subarray(start, index.stored[i + 1] ?? bytes.length)))));
    for (const p of [1, 2, 4]) {
      const { target, res } = await restoreInto(`bytes-p${p}`, p);
      expectSuccess(res, `the restore at --process-max ${p}`);
      expect(fs.readFileSync(path.join(target, s.bigFile!)).equals(original), `the file restored at --process-max ${p}`).toBe(true);
      fs.rmSync(target, { recursive: true, force: true });
    }
  });

  // a part that ends early: the frames after the cut are missing, or the last frame ends in its middle
  for (const [what, keep] of [['after a whole frame', (starts: number[]) => starts[starts.length - 3]], ['in the middle of a frame', (starts: number[]) => starts[starts.length - 3] + 1000]] as const) {
    step(`a stored file cut short ${what} fails the restore as damage at --process-max 1, 2 and 4; nothing of it stays behind`, async () => {
      const stored = storedPath();
      const bytes = fs.readFileSync(stored);
      const index = frameIndex('zst', (p, n) => bytes.subarray(p, p + n), bytes.length)!;
      fs.writeFileSync(stored, bytes.subarray(0, keep(index.stored)));
      try {
        for (const p of [1, 2, 4]) {
          const { target, res } = await restoreInto(`short-${keep(index.stored)}-p${p}`, p);
          expectRefused(res, `a restore of a file cut short at --process-max ${p}`, new RegExp(`file pg_data/${s.bigFile} of backup ${s.label}: .*the repository is damaged`));
          expect(fs.existsSync(path.join(target, s.bigFile!)), 'the file is not left behind').toBe(false);
          expect(fs.existsSync(path.join(target, 'global', 'pg_control')), 'no pg_control').toBe(false);
        }
      } finally {
        fs.writeFileSync(stored, bytes);
      }
    });
  }

  step('the same file restored in parts round-trips: the restored cluster has every row', async () => {
    const fx = fixture();
    const target = path.join(await fx.newDir('whole'), 'data');
    const res = await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', target, '--process-max', '2']);
    expectSuccess(res, 'the restore');
    const restored = await startRestored(fx, { name: 'restored', dir: target, port: fx.restorePort, immediate: true });
    expect(await tableDigest(restored, 'big')).toEqual(s.digest);
    await stopCluster(restored);
  });

  step('an uncompressed backup is cut anywhere: restored in parts, the cluster has every row', async () => {
    const fx = fixture();
    expectSuccess(await fx.repoctl(['backup', '--stanza', 'main', '--type', 'full', '--start-fast', '--compress-type', 'none']), 'backup');
    const target = path.join(await fx.newDir('plain'), 'data');
    const res = await fx.repoctl(['restore', '--stanza', 'main', '--host', 'db2', '--pg-path', target, '--process-max', '2']);
    expectSuccess(res, 'the restore');
    const restored = await startRestored(fx, { name: 'restored-plain', dir: target, port: await freePort(), immediate: true });
    expect(await tableDigest(restored, 'big')).toEqual(s.digest);
  });
});
