/**
 * A large file's path through a backup (issue 6): a table file of several MiB is read chunk by
 * chunk by the codec workers themselves (shared/stream/parallel.ts readAndEncode), its pages are
 * checked there at their own block numbers, and its SHA-1 is taken in file order on the agent's
 * hash thread (compressed) or by the server (stored as it is). The
 * manifest's checksum must be the SHA-1 of the file as it is on disk, the stored frames one per
 * MiB with nothing past the end, a damaged page in a later chunk named by its own block, and the
 * restore byte for byte the original.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect } from 'vitest';
import { expectSuccess } from '../harness/expect';
import { useFixture } from '../harness/fixture';
import { query, startCluster, stopCluster } from '../harness/pg';
import { restoreWith } from '../harness/restore';
import { scenario } from '../harness/scenario';
import { parseInfo } from '../../shared/info/ini';
import { parseManifest, type ManifestFile } from '../../shared/info/manifest';
import { FRAME_SIZE, frameLength } from '../../shared/stream/frame-codec';

const PAGE = 8192;
/** a block in the file's seventh MiB: read, checked and compressed by whichever worker takes that chunk */
const BAD_BLOCK = 6 * (FRAME_SIZE / PAGE) + 5;

const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

describe('a large file: read by the codec workers, hashed in order on the hash thread', () => {
  const fixture = useFixture();
  const step = scenario();
  const s: { file?: string; sha1?: string; size?: number; labels: Record<string, string> } = { labels: {} };

  const onDisk = () => fs.readFileSync(path.join(fixture().cluster1.dir, s.file!));
  const entry = (label: string): ManifestFile => {
    const file = path.join(fixture().repoDir, 'backup', 'main', label, 'backup.manifest');
    return parseManifest(parseInfo(fs.readFileSync(file, 'utf8'), file)).files.find((f) => f.name === `pg_data/${s.file}`)!;
  };

  step('a table file of ~11 MiB with a damaged page in its seventh MiB', async () => {
    const fx = fixture();
    const c = fx.cluster1;
    await query(c, 'create table wide (id int, v text)');
    await query(c, "insert into wide select g, md5(g::text) || repeat('y', 40) from generate_series(1, 110000) g");
    await query(c, 'vacuum freeze wide');
    s.file = (await query<{ p: string }>(c, "select pg_relation_filepath('wide') as p"))[0].p;
    expectSuccess(await fx.repoctl(['stanza-create', '--stanza', 'main']), 'stanza-create');
    await stopCluster(c); // a clean shutdown writes every page first
    const data = onDisk();
    expect(data.length).toBeGreaterThan((BAD_BLOCK + 64) * PAGE);
    for (let i = 0; i < 16; i++) data[BAD_BLOCK * PAGE + 4000 + i] ^= 0x5a;
    fs.writeFileSync(path.join(c.dir, s.file), data);
    await startCluster(c);
    s.sha1 = sha1(data);
    s.size = data.length;
  });

  for (const type of ['lz4', 'none'] as const) {
    step(`backup --compress-type ${type} --process-max 2: the manifest has the file's own SHA-1 and its damaged block`, async () => {
      const fx = fixture();
      const res = await fx.repoctl(['backup', '--stanza', 'main', '--type', 'full', '--start-fast', '--compress-type', type, '--process-max', '2', '--output', 'json'], { timeoutMs: 120_000 });
      expectSuccess(res, `backup --compress-type ${type}`);
      const label = (JSON.parse(res.stdout) as { label: string }).label;
      s.labels[type] = label;
      expect(sha1(onDisk()), 'the file did not change meanwhile').toBe(s.sha1);
      const file = entry(label);
      expect(file).toMatchObject({ size: s.size, checksum: s.sha1, checksumPage: false, checksumPageError: [BAD_BLOCK] });
      const stored = fs.readFileSync(path.join(fx.repoDir, 'backup', 'main', label, 'pg_data', `${s.file}${type === 'none' ? '' : `.${type}`}`));
      expect(file.repoChecksum, 'the server hashed what it stored').toBe(sha1(stored));
      if (type === 'none') {
        expect(sha1(stored)).toBe(s.sha1);
        return;
      }
      // one frame per MiB read, nothing for the reads started past the end
      let frames = 0;
      for (let at = 0; at < stored.length; frames++) at += frameLength(type, stored.subarray(at), stored.length - at) as number;
      expect(frames).toBe(Math.ceil(s.size! / FRAME_SIZE));
    });
  }

  step('the lz4 backup restores the file byte for byte', async () => {
    const fx = fixture();
    const target = path.join(await fx.newDir('restored'), 'data');
    await restoreWith(fx, 'db2', ['--pg-path', target, '--set', s.labels.lz4, '--process-max', '2']);
    expect(sha1(fs.readFileSync(path.join(target, s.file!)))).toBe(s.sha1);
  });
});
