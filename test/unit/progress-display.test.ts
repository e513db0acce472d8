import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ProgressDisplay, progressFigures, progressLine, progressMode } from '../../repo-server/repoctl/progress-display';

const progress = (done: number, total: number) => ({ bytes_done: done, bytes_total: total, files_done: 3, files_total: 10 });

function capture(mode: 'bar' | 'lines' | 'json') {
  const out = new PassThrough();
  let text = '';
  out.on('data', (c: Buffer) => { text += c.toString(); });
  return { display: new ProgressDisplay('backup', mode, out), text: () => text };
}

describe('progress', () => {
  it('picks a bar on a terminal, lines otherwise, JSON for --output json', () => {
    expect(progressMode(false, true)).toBe('bar');
    expect(progressMode(false, false)).toBe('lines');
    expect(progressMode(true, true)).toBe('json');
  });

  it('works out rate and ETA from the bytes done so far', () => {
    const f = progressFigures(progress(50 * 1024 * 1024, 150 * 1024 * 1024), 0, 10_000);
    expect(f).toMatchObject({ percent: 33, rate: 5 * 1024 * 1024, etaSeconds: 20, filesDone: 3, filesTotal: 10 });
    expect(progressFigures(progress(10, 100), 0, 1000).etaSeconds).toBeNull();
    expect(progressLine('backup', f)).toBe('backup: 33% 50.0MiB/150.0MiB, 3/10 files, 5.0MiB/s, ETA 20s');
  });

  it('writes JSON lines for scripts, messages included', () => {
    const c = capture('json');
    c.display.message('backup started');
    c.display.update(progress(100, 100));
    const lines = c.text().trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toEqual({ event: 'message', operation: 'backup', message: 'backup started' });
    expect(lines[1]).toMatchObject({ event: 'progress', operation: 'backup', bytesDone: 100, bytesTotal: 100, percent: 100 });
  });

  it('writes plain lines when not on a terminal, and draws a bar on one', () => {
    const lines = capture('lines');
    lines.display.update(progress(100, 100));
    expect(lines.text()).toMatch(/^backup: 100% 100B\/100B, 3\/10 files, \S+\/s, ETA \S+\n$/);
    const bar = capture('bar');
    bar.display.update(progress(50, 100));
    bar.display.finish();
    expect(bar.text()).toMatch(/backup .*50% \| 50B\/100B \| 3\/10 files/);
  });
});
