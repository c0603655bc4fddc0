import { describe, expect, it } from 'vitest'
import type { Group, MlsClient } from '@mls/core'
import type { ClientStore, StoreOperation, StoreWriteOptions } from '@mls/core/interfaces'
import { memoryClientStore } from '@mls/storage-memory'
import { createTestNetwork, joined, providerCases, waitFor } from '../src/index.js'

const [defaultCase] = providerCases()
const { crypto, ciphersuite } = defaultCase!

interface RecordedWrite {
  operations: StoreOperation[]
  durability: 'strict' | 'relaxed'
}

/**
 * A store that records every resolved write with the durability core asked for, so that what a power loss may
 * leave can be rebuilt: every write up to the last strict one, then any number of the relaxed writes after it
 * (the contract of `StoreDurability`: a loss undoes a suffix of relaxed writes, never a strict one).
 */
function recordingDurability(inner: ClientStore): { store: ClientStore; writes: RecordedWrite[] } {
  const writes: RecordedWrite[] = []
  const store = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'write') {
        return async (operations: readonly StoreOperation[], options?: StoreWriteOptions) => {
          const copy = operations.map((op) => (op.type === 'put' ? { ...op, value: op.value.slice() } : op))
          await target.write(operations, options)
          writes.push({ operations: copy, durability: options?.durability ?? 'strict' })
        }
      }
      const value = Reflect.get(target, prop) as unknown
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
    }
  })
  return { store, writes }
}

/** The store a power loss left after the first `kept` writes. */
async function storeAfterLoss(writes: readonly RecordedWrite[], kept: number): Promise<ClientStore> {
  const store = memoryClientStore({ name: `after-loss-${kept}` })
  for (const write of writes.slice(0, kept)) await store.write(write.operations)
  return store
}

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

describe('a power loss undoing relaxed writes', () => {
  it('loses no message and breaks no group, wherever it cuts the relaxed writes after the last strict one', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const recorded = recordingDurability(memoryClientStore({ name: 'bob' }))
    const bob = await net.client('bob', { store: recorded.store, durableInbox: true })
    await bob.publishKeyPackages({ count: 1 })
    const a = await alice.createGroup()
    await alice.addUsers(a, ['bob'])
    const b = await joined(bob, a.groupId)
    const sentByAlice: string[] = []
    const aliceSends = async (message: string) => {
      await a.send(message)
      sentByAlice.push(message)
    }
    const bobHas = (count: number) => waitFor(async () => (await b.unacknowledged()).filter((m) => !m.own).length === count, `bob to hold ${count} messages`)
    await aliceSends('m1')
    await aliceSends('m2')
    await bobHas(2)
    // Bob's own message: the write before it leaves is strict; processing its echo is relaxed.
    await b.send('from bob')
    await waitFor(async () => (await b.unacknowledged()).some((m) => m.own), 'bob to see his echo')
    await a.update()
    await aliceSends('m3')
    await aliceSends('m4')
    await bobHas(4)
    await waitFor(() => b.epoch === a.epoch, 'bob to reach the epoch')
    await bob.close()

    const lastStrict = recorded.writes.map((w) => w.durability).lastIndexOf('strict')
    const relaxedAfter = recorded.writes.length - 1 - lastStrict
    // Processing the update, m3 and m4 (and the activity record) are relaxed: the loss below has something to undo.
    expect(relaxedAfter).toBeGreaterThanOrEqual(3)
    // Largest cut first: each restart is a separate future of the same store, and only the last one (the one that
    // undid the most) sends as Bob, so no two futures send from the same ratchet.
    const cuts = Array.from({ length: relaxedAfter + 1 }, (_, i) => recorded.writes.length - i)
    const seenCursors = new Set<number>()
    for (const kept of cuts) {
      const restarted: MlsClient = await net.client('bob', { store: await storeAfterLoss(recorded.writes, kept), durableInbox: true, start: false, autoSync: false })
      const group: Group = restarted.group(a.groupId)!
      const kept1 = (await group.unacknowledged()).filter((m) => !m.own).map((m) => text(m.plaintext))
      seenCursors.add(kept1.length)
      const again: string[] = []
      group.on('message:received', (m) => {
        if (!m.own) again.push(text(m.plaintext))
      })
      await restarted.start()
      await restarted.sync()
      // Every message is held exactly once: what survived the loss, and what was fetched and processed again.
      expect([...kept1, ...again].sort()).toEqual([...sentByAlice].sort())
      expect(kept1.filter((m) => again.includes(m))).toEqual([])
      expect(group.epoch).toBe(a.epoch)
      expect(group.epochAuthenticator()).toEqual(a.epochAuthenticator())
      // And the group goes on: a new message each way.
      const next = `after loss ${kept}`
      await aliceSends(next)
      await restarted.sync()
      expect(again.at(-1)).toBe(next)
      if (kept === cuts.at(-1)) {
        const heard: string[] = []
        a.on('message:received', (m) => heard.push(text(m.plaintext)))
        await group.send('bob after the loss')
        await waitFor(() => heard.includes('bob after the loss'), 'alice to read bob after the loss')
      }
      await restarted.close()
    }
    // The cuts did undo processed messages (not only records that change nothing).
    expect(seenCursors.size).toBeGreaterThanOrEqual(2)
    await alice.close()
  }, 60_000)
})
