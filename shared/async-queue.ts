/** A queue one side pushes into and the other awaits, ending with close() or fail(). */
export class AsyncQueue<T> {
  private items: T[] = [];
  private waiters: { resolve: (v: T | undefined) => void; reject: (e: unknown) => void }[] = [];
  private closed = false;
  private error: unknown;

  push(item: T): void {
    if (this.closed) return;
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(item);
    else this.items.push(item);
  }

  close(): void {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.resolve(undefined);
  }

  fail(err: unknown): void {
    if (this.closed) return;
    this.error = err;
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  /** The next item, or undefined once closed and drained; rejects after fail(). */
  next(): Promise<T | undefined> {
    if (this.items.length > 0) return Promise.resolve(this.items.shift());
    if (this.error !== undefined) return Promise.reject(this.error);
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}

/** Resolves with the promise's value or rejects with `message` after `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, message: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(message()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
