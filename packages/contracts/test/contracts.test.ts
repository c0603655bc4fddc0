// @mls/contracts is what an adapter installs instead of the engine: it must
// import nothing and declare no dependency, so installing it installs nothing else.
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { MlsToolkitError, StorageError, UsageError, errorCode, fromHex, throwIfAborted, toHex } from '../src/index.js'

const PACKAGE = fileURLToPath(new URL('..', import.meta.url))

function sources(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sources(join(folder, entry.name)) : entry.name.endsWith('.ts') ? [join(folder, entry.name)] : []
  )
}

describe('@mls/contracts', () => {
  it('declares no dependency, peer or optional dependency', () => {
    const manifest = JSON.parse(readFileSync(join(PACKAGE, 'package.json'), 'utf8')) as Record<string, unknown>
    for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies']) expect(manifest[field], field).toBeUndefined()
  })

  it('imports only its own modules', () => {
    const files = sources(join(PACKAGE, 'src'))
    expect(files.length).toBeGreaterThan(5)
    for (const file of files) {
      const specifiers = [...readFileSync(file, 'utf8').matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+'([^']+)'/g)].map((m) => m[1]!)
      for (const specifier of specifiers) expect(specifier, file).toMatch(/^\.\.?\//)
    }
  })

  it('errors keep code, cause and details, and are recognised across copies by their marker', () => {
    const cause = new Error('disk full')
    const error = new StorageError('STORAGE_IO', 'write failed', { cause, details: { key: 'identity' } })
    expect(error).toBeInstanceOf(MlsToolkitError)
    expect({ name: error.name, code: error.code, cause: error.cause, details: error.details }).toEqual({
      name: 'StorageError',
      code: 'STORAGE_IO',
      cause,
      details: { key: 'identity' }
    })
    // An error from another installed copy: a plain object carrying the shared marker.
    const foreign = Object.assign(new Error('other copy'), { [Symbol.for('@mls/core.error')]: true, code: 'STORAGE_IO' })
    expect(foreign).not.toBeInstanceOf(MlsToolkitError)
    expect(MlsToolkitError.isInstance(foreign)).toBe(true)
    expect(MlsToolkitError.isInstance(new Error('plain'))).toBe(false)
    expect(errorCode(foreign)).toBe('STORAGE_IO')
    expect(errorCode({ code: 7 })).toBeUndefined()
  })

  it('throwIfAborted rejects an aborted signal with ABORTED and keeps the reason', () => {
    const controller = new AbortController()
    expect(() => throwIfAborted(controller.signal)).not.toThrow()
    controller.abort('stop')
    const error = (() => {
      try {
        throwIfAborted(controller.signal)
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(UsageError)
    expect(error).toMatchObject({ code: 'ABORTED', cause: 'stop' })
  })

  it('hex round-trips and refuses malformed input', () => {
    expect(toHex(fromHex('00ff10AB'))).toBe('00ff10ab')
    expect(() => fromHex('abc')).toThrow(TypeError)
    expect(() => fromHex('zz')).toThrow(TypeError)
  })
})
