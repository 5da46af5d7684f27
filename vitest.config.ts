import { defineConfig } from 'vitest/config';

// Tests run against the TypeScript sources (the `source` export condition), not dist.
const conditions = ['source', 'node', 'import', 'default'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions: ['source', 'node', 'default'], externalConditions: ['source'] } },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // In CI, also write a JSON report (.ci/run prints its counts as a plain closing line).
    ...(process.env.CI ? { reporters: ['default', 'json'], outputFile: { json: '.ci/out/vitest.json' } } : {}),
  },
});
