import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { ClientStore } from '@mls/core/interfaces'
import { contains, rejectsWithCode, sameBytes } from './assertions.js'

/** What `clientStoreConformanceSuite()` checks: how to open (and reopen) the store under test. */
export interface ClientStoreSuiteInit<S extends ClientStore = ClientStore> {
  /** Shown in the describe block. */
  name: string
  /** A fresh, empty store for each test. */
  setup(): Promise<S>
  /** Dispose of a store after its test (it may already be closed). */
  teardown?(store: S): Promise<void>
  /**
   * Reopen the durable state of `store` as a new store instance (after closing
   * it), to prove writes survive a restart. Omit for non-durable adapters.
   */
  reopen?(store: S): Promise<S>
  /**
   * Read every byte the backend holds for this store, bypassing the adapter's
   * read path (e.g. the SQLite file), to prove deleted secrets are gone.
   */
  rawBytes?(store: S): Promise<Uint8Array>
}

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values)

/** The ClientStore contract (packages/core/src/interfaces/client-store.ts), run against one adapter. */
export function clientStoreConformanceSuite<S extends ClientStore>(init: ClientStoreSuiteInit<S>): void {
  describe(`ClientStore conformance: ${init.name}`, () => {
    let store: S

    beforeEach(async () => {
      store = await init.setup()
    })
    afterEach(async () => {
      await init.teardown?.(store)
    })

    it('declares the contract version and a tag', () => {
      expect(store.specificationVersion).toBe('v1')
      expect(typeof store[Symbol.toStringTag]).toBe('string')
    })

    it('returns undefined for a missing key and [] for an empty listing', async () => {
      expect(await store.get('missing')).toBeUndefined()
      expect(await store.list('nothing/')).toEqual([])
    })

    it('puts, gets and deletes', async () => {
      await store.write([{ type: 'put', key: 'a', value: bytes(1, 2, 3) }])
      expect(await store.get('a')).toEqual(bytes(1, 2, 3))
      await store.write([{ type: 'delete', key: 'a' }])
      expect(await store.get('a')).toBeUndefined()
    })

    it('deleting a missing key is not an error', async () => {
      await store.write([{ type: 'delete', key: 'never' }])
      expect(await store.get('never')).toBeUndefined()
    })

    it('stores empty values as empty, not missing', async () => {
      await store.write([{ type: 'put', key: 'empty', value: new Uint8Array(0) }])
      expect(await store.get('empty')).toEqual(new Uint8Array(0))
    })

    it('applies a batch in order: a later put of the same key wins, a later delete removes', async () => {
      await store.write([
        { type: 'put', key: 'k', value: bytes(1) },
        { type: 'put', key: 'k', value: bytes(2) },
        { type: 'put', key: 'gone', value: bytes(3) },
        { type: 'delete', key: 'gone' }
      ])
      expect(await store.get('k')).toEqual(bytes(2))
      expect(await store.get('gone')).toBeUndefined()
    })

    it('lists by prefix, sorted by key, and nothing outside the prefix', async () => {
      await store.write([
        { type: 'put', key: 'group/b/state', value: bytes(2) },
        { type: 'put', key: 'group/a/state', value: bytes(1) },
        { type: 'put', key: 'group/a/cursor', value: bytes(0) },
        { type: 'put', key: 'groupx', value: bytes(9) },
        { type: 'put', key: 'identity', value: bytes(7) }
      ])
      const listed = await store.list('group/')
      expect(listed.map((e) => e.key)).toEqual(['group/a/cursor', 'group/a/state', 'group/b/state'])
      expect(listed[1]?.value).toEqual(bytes(1))
      expect((await store.list('')).length).toBe(5)
    })

    it('keys with unusual characters round-trip', async () => {
      const key = 'group/%00\u00e9\u{1F512}/"quoted"/state'
      await store.write([{ type: 'put', key, value: bytes(4) }])
      expect(await store.get(key)).toEqual(bytes(4))
      expect((await store.list('group/%00')).map((e) => e.key)).toEqual([key])
    })

    it('returns copies: mutating a returned or written value does not change the store', async () => {
      const value = bytes(1, 2, 3)
      await store.write([{ type: 'put', key: 'c', value }])
      value[0] = 99
      const read = await store.get('c')
      expect(read).toEqual(bytes(1, 2, 3))
      read![1] = 99
      expect(await store.get('c')).toEqual(bytes(1, 2, 3))
      const listed = await store.list('c')
      listed[0]!.value[2] = 99
      expect(await store.get('c')).toEqual(bytes(1, 2, 3))
    })

    it('is atomic: a batch with an invalid operation changes nothing', async () => {
      await store.write([{ type: 'put', key: 'keep', value: bytes(1) }])
      const invalid = [
        { type: 'put', key: 'keep', value: bytes(2) },
        { type: 'put', key: 'new', value: bytes(3) },
        { type: 'bogus', key: 'x' }
      ] as unknown as Parameters<ClientStore['write']>[0]
      await expect(store.write(invalid)).rejects.toBeDefined()
      expect(await store.get('keep')).toEqual(bytes(1))
      expect(await store.get('new')).toBeUndefined()
    })

    it('handles large values and many keys', async () => {
      const big = new Uint8Array(1 << 20).map((_, i) => i & 0xff)
      const ops = Array.from({ length: 500 }, (_, i) => ({ type: 'put' as const, key: `many/${String(i).padStart(4, '0')}`, value: bytes(i & 0xff) }))
      await store.write([{ type: 'put', key: 'big', value: big }, ...ops])
      const readBack = await store.get('big')
      expect(readBack?.length).toBe(big.length)
      expect(sameBytes(readBack!, big)).toBe(true)
      expect((await store.list('many/')).length).toBe(500)
    })

    it('serializes concurrent writes without losing any', async () => {
      await Promise.all(Array.from({ length: 50 }, (_, i) => store.write([{ type: 'put', key: `con/${i}`, value: bytes(i) }])))
      expect((await store.list('con/')).length).toBe(50)
    })

    it('rejects with ABORTED when the signal is already aborted, and changes nothing', async () => {
      const controller = new AbortController()
      controller.abort()
      await rejectsWithCode(store.write([{ type: 'put', key: 'x', value: bytes(1) }], { signal: controller.signal }), 'ABORTED')
      await rejectsWithCode(store.get('x', { signal: controller.signal }), 'ABORTED')
      await rejectsWithCode(store.list('', { signal: controller.signal }), 'ABORTED')
      expect(await store.get('x')).toBeUndefined()
    })

    it("a relaxed write is applied like a strict one: in order, atomically, read back at once", async () => {
      await store.write([{ type: 'put', key: 'r/keep', value: bytes(1) }], { durability: 'relaxed' })
      await store.write(
        [
          { type: 'put', key: 'r/a', value: bytes(2) },
          { type: 'put', key: 'r/a', value: bytes(3) },
          { type: 'delete', key: 'r/keep' }
        ],
        { durability: 'relaxed' }
      )
      expect(await store.get('r/a')).toEqual(bytes(3))
      expect(await store.get('r/keep')).toBeUndefined()
      const invalid = [
        { type: 'put', key: 'r/a', value: bytes(4) },
        { type: 'bogus', key: 'x' }
      ] as unknown as Parameters<ClientStore['write']>[0]
      await expect(store.write(invalid, { durability: 'relaxed' })).rejects.toBeDefined()
      expect(await store.get('r/a')).toEqual(bytes(3))
      await store.write([{ type: 'put', key: 'r/b', value: bytes(5) }], { durability: 'strict' })
      expect((await store.list('r/')).map((e) => e.key)).toEqual(['r/a', 'r/b'])
    })

    it('refuses an unknown durability with INVALID_ARGUMENT and changes nothing', async () => {
      const options = { durability: 'eventually' } as unknown as Parameters<ClientStore['write']>[1]
      await rejectsWithCode(store.write([{ type: 'put', key: 'x', value: bytes(1) }], options), 'INVALID_ARGUMENT')
      expect(await store.get('x')).toBeUndefined()
    })

    it('rejects with STORAGE_CLOSED after close, and close is idempotent', async () => {
      await store.close()
      await store.close()
      await rejectsWithCode(store.get('a'), 'STORAGE_CLOSED')
      await rejectsWithCode(store.write([{ type: 'put', key: 'a', value: bytes(1) }]), 'STORAGE_CLOSED')
      await rejectsWithCode(store.list(''), 'STORAGE_CLOSED')
    })

    if (init.reopen !== undefined) {
      const reopen = init.reopen
      it('keeps every resolved write across a restart', async () => {
        await store.write([
          { type: 'put', key: 'durable/a', value: bytes(1) },
          { type: 'put', key: 'durable/b', value: bytes(2) }
        ])
        await store.write([{ type: 'delete', key: 'durable/a' }])
        store = await reopen(store)
        expect(await store.get('durable/a')).toBeUndefined()
        expect(await store.get('durable/b')).toEqual(bytes(2))
      })
    }

    if (init.reopen !== undefined) {
      const reopen = init.reopen
      it('keeps relaxed writes across a restart, mixed with strict ones', async () => {
        await store.write([{ type: 'put', key: 'mixed/a', value: bytes(1) }], { durability: 'relaxed' })
        await store.write([{ type: 'put', key: 'mixed/b', value: bytes(2) }])
        await store.write(
          [
            { type: 'delete', key: 'mixed/a' },
            { type: 'put', key: 'mixed/c', value: bytes(3) }
          ],
          { durability: 'relaxed' }
        )
        store = await reopen(store)
        expect((await store.list('mixed/')).map((e) => [e.key, [...e.value]])).toEqual([
          ['mixed/b', [2]],
          ['mixed/c', [3]]
        ])
      })
    }

    if (init.rawBytes !== undefined) {
      const rawBytes = init.rawBytes
      for (const durability of ['strict', 'relaxed'] as const) {
        it(`securely deletes: a deleted or overwritten secret is gone from the backend (${durability} writes)`, async () => {
          const secret = Uint8Array.from({ length: 48 }, (_, i) => (i * 37 + 11) & 0xff)
          const other = Uint8Array.from({ length: 48 }, (_, i) => (i * 53 + 7) & 0xff)
          await store.write([
            { type: 'put', key: 'secret/1', value: secret },
            { type: 'put', key: 'secret/2', value: other }
          ])
          expect(contains(await rawBytes(store), secret)).toBe(true)
          await store.write([{ type: 'delete', key: 'secret/1' }], { durability })
          await store.write([{ type: 'put', key: 'secret/2', value: bytes(0) }], { durability })
          const raw = await rawBytes(store)
          expect(contains(raw, secret)).toBe(false)
          expect(contains(raw, other)).toBe(false)
        })
      }
    }
  })
}
