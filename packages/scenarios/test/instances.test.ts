import { describe, expect, it } from 'vitest'
import { createMlsClient, type MlsClient } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { createServices, type InstanceBus, type InstanceNotice } from '@mls/server'
import { memoryClientStore, memoryServerStore } from '@mls/storage-memory'
import { memoryTransport } from '@mls/transport-memory'
import { fourFlows } from '../src/index.js'

const crypto = nodeCrypto()

/** An in-process stand-in for LISTEN/NOTIFY: each instance's notices reach every other instance, asynchronously. */
function hub(): { bus(): InstanceBus; published: number } {
  const members: ((notice: InstanceNotice) => void)[][] = []
  const state = {
    published: 0,
    bus(): InstanceBus {
      const own: ((notice: InstanceNotice) => void)[] = []
      members.push(own)
      return {
        publish(notice) {
          state.published++
          for (const other of members) if (other !== own) for (const l of other) setTimeout(() => l(notice), 0)
        },
        subscribe(listener) {
          own.push(listener)
          return () => own.splice(own.indexOf(listener), 1)
        }
      }
    }
  }
  return state
}

describe('two channel instances over one shared store (the multi-instance logic, in process)', () => {
  it('run the four flows with members on different instances: no stale group record, every push relayed', async () => {
    const store = memoryServerStore()
    const h = hub()
    // A group cache that is not turned off by the bus would keep instance 1's view of a group that instance 2 changed.
    const one = createServices({ store, crypto, bus: h.bus(), limits: { groupCacheSize: 10_000 } })
    const two = createServices({ store, crypto, bus: h.bus(), limits: { groupCacheSize: 10_000 } })
    const client = (userId: string, services: typeof one): Promise<MlsClient> =>
      createMlsClient({ userId, deviceId: 'phone', crypto, store: memoryClientStore({ name: userId }), transport: memoryTransport({ services }) })
    const [alice, bob, carol] = [await client('alice', one), await client('bob', two), await client('carol', one)]
    try {
      const { plaintexts } = await fourFlows({ alice, bob, carol, bobCrypto: crypto })
      expect(plaintexts).toHaveLength(4)
      expect(h.published).toBeGreaterThanOrEqual(10)
    } finally {
      for (const c of [alice, bob, carol]) await c.close()
    }
  })
})
