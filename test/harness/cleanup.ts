/**
 * Per-test-file cleanup registry. Vitest runs every test file in its own worker process, so
 * module state here is exactly "this test file". Everything the harness creates (temp dirs,
 * processes, clusters) registers here; `runCleanups()` (called from afterAll) undoes it in
 * reverse order, and a synchronous exit hook kills whatever is still alive if the worker
 * dies without reaching afterAll.
 */

type CleanupFn = () => void | Promise<void>;

interface Entry {
  name: string;
  fn: CleanupFn;
}

const entries: Entry[] = [];
const exitHooks = new Set<() => void>();
let exitHookInstalled = false;

/** PGREPO_TEST_KEEP=1 keeps temp dirs (repository, clusters, logs) for a post-mortem. */
export const keepTemp = process.env.PGREPO_TEST_KEEP === '1';

/** Registers an async cleanup; returns a function that unregisters it (for things undone early). */
export function onCleanup(name: string, fn: CleanupFn): () => void {
  const entry: Entry = { name, fn };
  entries.push(entry);
  return () => {
    const i = entries.indexOf(entry);
    if (i >= 0) entries.splice(i, 1);
  };
}

/** Registers a synchronous last-resort hook run on process exit (kill -9 of children etc.). */
export function onExitSync(fn: () => void): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', runExitHooks);
    // a worker killed by a signal emits no 'exit': kill what we started, then die as asked
    for (const [sig, num] of [['SIGTERM', 15], ['SIGINT', 2], ['SIGHUP', 1]] as const) {
      process.on(sig, () => {
        runExitHooks();
        process.exit(128 + num);
      });
    }
  }
  exitHooks.add(fn);
  return () => exitHooks.delete(fn);
}

function runExitHooks(): void {
  for (const hook of exitHooks) {
    try {
      hook();
    } catch {
      // best effort
    }
  }
  exitHooks.clear();
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`cleanup '${what}' took more than ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** Runs every registered cleanup, newest first. Never throws: failures are reported on stderr. */
export async function runCleanups(perStepTimeoutMs = 30_000): Promise<void> {
  while (entries.length > 0) {
    const entry = entries.pop()!;
    try {
      await withTimeout(Promise.resolve().then(entry.fn), perStepTimeoutMs, entry.name);
    } catch (err) {
      console.error(`[harness] cleanup ${entry.name} failed: ${(err as Error).message}`);
    }
  }
}
