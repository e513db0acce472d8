import { defineConfig } from 'vitest/config';

// The benchmarks are not part of `npm test`: they run only through the `npm run bench:*` scripts.
export default defineConfig({
  test: {
    include: ['bench/**/*.bench.ts'],
    pool: 'forks',
    maxWorkers: 1,
    testTimeout: 4 * 3_600_000,
    hookTimeout: 600_000,
  },
});
