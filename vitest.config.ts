import { defineConfig } from 'vitest/config'

// Workspace packages export a `source` condition pointing at their TypeScript
// sources, so tests run against src/ without a build step.
const conditions = ['source', 'module', 'node', 'import', 'default']

export default defineConfig({
  resolve: { conditions },
  // vitest also passes ssr.resolve.conditions to its workers as Node's --conditions, which apply to require()
  // too: without 'import' there, or a CommonJS package requiring a dual package (pg requires pg-pool) would get
  // its ES module. Node adds 'import' to ESM imports itself.
  ssr: { resolve: { conditions: conditions.filter((c) => c !== 'import'), externalConditions: ['node', 'import', 'default'] } },
  test: {
    include: ['packages/*/src/**/*.test.ts', 'packages/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'apps/*/src/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default']
  }
})
