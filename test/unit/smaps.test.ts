import { describe, expect, it } from 'vitest';
import { smapsBreakdown } from '../../bench/smaps';

/** One smaps entry: its header line and its Rss. */
const entry = (range: string, perms: string, rssKb: number, path = '') =>
  `${range} ${perms} 00000000 00:00 0 ${path}\nSize: 4 kB\nRss: ${rssKb} kB\nPss: ${rssKb} kB\n`;

describe('smapsBreakdown', () => {
  it('tells malloc arenas, thread stacks, the brk heap, files and other anonymous memory apart by their shape', () => {
    const text = [
      entry('00400000-00600000', 'r-xp', 2048, '/usr/bin/node'),
      entry('01000000-02000000', 'rw-p', 1000, '[heap]'),
      // a non-main arena: 64 MiB-aligned, a read-write start and a PROT_NONE rest, 64 MiB in all
      entry('7f0000000000-7f0001000000', 'rw-p', 3000),
      entry('7f0001000000-7f0004000000', '---p', 0),
      // a thread stack: a one-page guard, then its read-write part
      entry('7f1000000000-7f1000001000', '---p', 0),
      entry('7f1000001000-7f1000801000', 'rw-p', 40),
      // a V8 page
      entry('7f2000040000-7f2000080000', 'rw-p', 256),
      entry('7ffd00000000-7ffd00021000', 'rw-p', 12, '[stack]'),
    ].join('');
    const b = smapsBreakdown(text, 3);
    expect(b.parts).toEqual({
      'malloc main heap': 1000 * 1024,
      'malloc arenas': 3000 * 1024,
      stacks: 52 * 1024,
      'other anonymous (V8 heaps, mmapped buffers)': 256 * 1024,
      files: 2048 * 1024,
    });
    expect(b.rss).toBe((2048 + 1000 + 3000 + 40 + 256 + 12) * 1024);
    expect(b.threads).toBe(3);
  });
});
