import fs from 'node:fs';
import path from 'node:path';

/**
 * The built JavaScript of a worker thread's script `name` (e.g. 'codec-worker.js') that sits beside
 * the module at `dirname` (its __dirname, two levels below the package root): beside it when running
 * from dist/, else dist/'s copy (tests run the TypeScript sources, and a worker needs JavaScript).
 */
export function workerScript(dirname: string, name: string): string {
  const beside = path.join(dirname, name);
  if (fs.existsSync(beside)) return beside;
  const root = path.resolve(dirname, '..', '..');
  const built = path.join(root, 'dist', path.relative(root, dirname), name);
  if (fs.existsSync(built)) return built;
  throw new Error(`the worker script is not built (${beside}): run npm run build`);
}
