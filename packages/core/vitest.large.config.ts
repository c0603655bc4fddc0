import { defineConfig } from 'vitest/config'

// `pnpm --filter @mls/core test:large`: the slow 10,000-member run (test-large/), outside `pnpm test`.
export default defineConfig({
  resolve: { conditions: ['source', 'module', 'node', 'import', 'default'] },
  test: { include: ['test-large/**/*.test.ts'], testTimeout: 3_600_000, pool: 'forks' }
})
