/*
 * The parts of a file restored in parts (split.ts) are written by several workers into one file,
 * and a file takes one buffered write(2) at a time (the kernel's inode lock). A writer that finds
 * it taken spins on it while its holder copies (the kernel's optimistic spinning): 0.7 CPU-s of a
 * 1.7 GB restore went into that spinning, on a machine where every CPU-second is wall time. The
 * workers take this lock around those writes instead: one that must wait sleeps (futex) and its
 * core serves the others. Writes of whole files, one writer each, do not take it.
 */

/** Memory for the lock, shared by every worker (workerData). */
export function writeLockMemory(): SharedArrayBuffer {
  return new SharedArrayBuffer(4);
}

const FREE = 0;
const HELD = 1;

export class WriteLock {
  private readonly cell: Int32Array;

  constructor(memory: SharedArrayBuffer) {
    this.cell = new Int32Array(memory);
  }

  /** Runs `write` (synchronous) holding the lock, waiting asleep for it when another worker holds it. */
  hold<T>(write: () => T): T {
    while (Atomics.compareExchange(this.cell, 0, FREE, HELD) !== FREE) Atomics.wait(this.cell, 0, HELD);
    try {
      return write();
    } finally {
      Atomics.store(this.cell, 0, FREE);
      Atomics.notify(this.cell, 0, 1);
    }
  }
}
