/**
 * A process's resident memory by kind of mapping, from /proc/PID/smaps (Linux). Anonymous
 * memory carries no name, so the kinds are told apart by shape: glibc's non-main malloc arenas
 * are 64 MiB-aligned reservations of 64 MiB (a read-write part and a PROT_NONE rest); thread
 * stacks are read-write mappings right after a one-page guard; the rest of the anonymous memory
 * is V8's heap pages and large allocations mmapped by malloc (ArrayBuffers over its threshold).
 */
export interface Breakdown {
  rss: number;
  parts: Record<string, number>;
  threads: number;
}

interface Mapping {
  start: bigint;
  end: bigint;
  perms: string;
  path: string;
  rss: number;
}

const ARENA = 64n * 1024n * 1024n;

function parse(text: string): Mapping[] {
  const maps: Mapping[] = [];
  for (const line of text.split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      maps.push({ start: BigInt('0x' + head[1]), end: BigInt('0x' + head[2]), perms: head[3], path: head[4], rss: 0 });
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && maps.length) maps[maps.length - 1].rss = Number(rss[1]) * 1024;
  }
  return maps;
}

export function smapsBreakdown(text: string, threads: number): Breakdown {
  const maps = parse(text);
  const parts: Record<string, number> = { 'malloc main heap': 0, 'malloc arenas': 0, stacks: 0, 'other anonymous (V8 heaps, mmapped buffers)': 0, files: 0 };
  let rss = 0;
  for (let i = 0; i < maps.length; i++) {
    const m = maps[i];
    rss += m.rss;
    if (m.path === '[heap]') parts['malloc main heap'] += m.rss;
    else if (m.path === '[stack]') parts.stacks += m.rss;
    else if (m.path.startsWith('/') || m.path.startsWith('[')) parts.files += m.rss;
    else if (m.perms.startsWith('rw') && m.start % ARENA === 0n && (m.end - m.start === ARENA
      || (maps[i + 1]?.start === m.end && maps[i + 1].perms.startsWith('---') && maps[i + 1].end - m.start === ARENA))) parts['malloc arenas'] += m.rss;
    else if (m.perms.startsWith('rw') && i > 0 && maps[i - 1].end === m.start && maps[i - 1].perms.startsWith('---') && maps[i - 1].end - maps[i - 1].start === 4096n) parts.stacks += m.rss;
    else parts['other anonymous (V8 heaps, mmapped buffers)'] += m.rss;
  }
  return { rss, parts, threads };
}
