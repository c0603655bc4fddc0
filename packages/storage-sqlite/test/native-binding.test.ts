import { describe, expect, it, vi } from 'vitest'

// better-sqlite3 loads its addon in the Database constructor; under pnpm 10
// without an allowed build the addon is missing and `bindings` throws this.
vi.mock('better-sqlite3', () => ({
  default: class {
    constructor() {
      throw new Error(
        'Could not locate the bindings file. Tried:\n → /app/node_modules/better-sqlite3/build/better_sqlite3.node\n → /app/node_modules/better-sqlite3/build/Release/better_sqlite3.node'
      )
    }
  }
}))

const { sqliteClientStore, sqliteServerStore } = await import('../src/index.js')

describe('a missing better-sqlite3 native binding', () => {
  for (const [name, open] of [
    ['client store', () => sqliteClientStore({ path: ':memory:' })],
    ['server store', () => sqliteServerStore({ path: ':memory:' })]
  ] as const) {
    it(`${name}: STORAGE_IO naming the fix for pnpm and npm, with the cause`, () => {
      let caught: unknown
      try {
        open()
      } catch (error) {
        caught = error
      }
      expect(caught).toMatchObject({ code: 'STORAGE_IO', details: { reason: 'native-binding-missing', package: 'better-sqlite3' } })
      const message = (caught as Error).message
      expect(message).toContain('onlyBuiltDependencies')
      expect(message).toContain('pnpm rebuild better-sqlite3')
      expect(message).toContain('npm rebuild better-sqlite3')
      expect(((caught as Error).cause as Error).message).toContain('Could not locate the bindings file')
    })
  }
})
