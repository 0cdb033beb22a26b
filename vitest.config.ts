import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    // Multi-node scenarios start embedded PostgreSQL (PGlite) per node: seconds, not milliseconds.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Two cores: scenario files each run several nodes, so files run one or two at a time.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
