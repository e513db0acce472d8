import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { syncFile, syncFileSystems } from '../../shared/fs-sync';

describe('syncFileSystems', () => {
  it('flushes the file systems of existing directories (once per device)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fs-sync-'));
    try {
      expect(await syncFileSystems([dir, dir, os.tmpdir()])).toBe(true);
      fs.writeFileSync(path.join(dir, 'f'), 'x');
      await syncFile(path.join(dir, 'f'));
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  });

  it('says false when it cannot, so the caller fsyncs each file instead', async () => {
    expect(await syncFileSystems(['/nonexistent/pgrepo-fs-sync'])).toBe(false);
  });
});
