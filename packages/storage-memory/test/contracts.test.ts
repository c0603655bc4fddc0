// The adapter depends on @mls/contracts, not on @mls/core; core re-exports the
// contracts. An error the adapter throws must still be the class core exports.
import * as core from '@mls/core'
import * as contracts from '@mls/contracts'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { memoryClientStore } from '../src/index.js'

describe('storage-memory on @mls/contracts', () => {
  it('throws errors that are instanceof the classes @mls/core exports', async () => {
    const store = memoryClientStore()
    await store.close()
    const error = await store.get('identity').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(core.StorageError)
    expect(error).toBeInstanceOf(core.MlsToolkitError)
    expect(core.MlsToolkitError.isInstance(error)).toBe(true)
    expect((error as core.StorageError).code).toBe('STORAGE_CLOSED')
  })

  it('core re-exports every value of @mls/contracts as the same object', () => {
    const values = Object.entries(contracts)
    expect(values.length).toBeGreaterThan(10)
    for (const [name, value] of values) expect((core as Record<string, unknown>)[name], name).toBe(value)
  })

  it('does not declare @mls/core (or ts-mls) as a dependency or peer', () => {
    const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as Record<string, Record<string, string> | undefined>
    const runtime = { ...manifest.dependencies, ...manifest.peerDependencies }
    expect(Object.keys(runtime)).toEqual(['@mls/contracts'])
  })
})
