import { defineConfig } from 'vitest/config';

// The benchmark is not part of `npm test`: it runs only through `npm run bench:backup`.
export default defineConfig({
  test: {
    include: ['bench/**/*.bench.ts'],
    pool: 'forks',
    maxWorkers: 1,
    testTimeout: 4 * 3_600_000,
    hookTimeout: 600_000,
  },
});
