import { describe, expect, it } from 'vitest'
import { concatBytes } from '@mls/core'
import { serverStoreConformanceSuite } from '@mls/conformance/storage'
import { memoryServerStore } from '../src/index.js'

serverStoreConformanceSuite({
  name: 'memoryServerStore',
  setup: async () => memoryServerStore(),
  rawBytes: async (store) => concatBytes(...store.rawKeyPackages(), ...store.rawLogMessages()),
  storedWelcomes: async (store) => store.rawWelcomes().length
})

describe('memoryServerStore secure deletion', () => {
  const record = (ref: string, fill: number, lastResort = false) => ({
    ref,
    clientId: 'alice/phone',
    keyPackage: new Uint8Array(32).fill(fill),
    lastResort,
    notAfter: Number.MAX_SAFE_INTEGER
  })

  it('zeroes the stored bytes of consumed, expired and replaced KeyPackages', async () => {
    const store = memoryServerStore()
    await store.addKeyPackages('alice/phone', [{ ...record('expired', 1), notAfter: 10 }, record('served', 2)], record('lr', 3, true))
    const [expired, served, lastResort] = store.rawKeyPackages()
    const consumed = await store.consumeKeyPackage('alice/phone', 100)
    expect(consumed?.keyPackage).toEqual(new Uint8Array(32).fill(2))
    expect(expired).toEqual(new Uint8Array(32))
    expect(served).toEqual(new Uint8Array(32))
    await store.addKeyPackages('alice/phone', [], record('lr2', 4, true))
    expect(lastResort).toEqual(new Uint8Array(32))
    expect(store.rawKeyPackages()).toEqual([new Uint8Array(32).fill(4)])
  })

  it('zeroes every KeyPackage on close', async () => {
    const store = memoryServerStore()
    await store.addKeyPackages('alice/phone', [record('a', 5)], record('lr', 6, true))
    const held = store.rawKeyPackages()
    await store.close()
    expect(held.every((b) => b.every((x) => x === 0))).toBe(true)
  })
})
