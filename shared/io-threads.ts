/**
 * libuv's thread pool (4 threads by default) runs every file read, write and fsync: with many
 * files in flight, each waiting on an fsync, 4 threads leave the disk idle between them. Takes
 * effect only before the process's first asynchronous file operation: call it first thing.
 */
export function raiseIoThreads(threads = 16): void {
  process.env.UV_THREADPOOL_SIZE ??= String(threads);
}
