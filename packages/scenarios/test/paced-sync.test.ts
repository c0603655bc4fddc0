import { describe, expect, it } from 'vitest'
import { nodeCrypto } from '@mls/crypto-node'
import { toHex, type Group } from '@mls/core'
import type { Connection, GroupChannelClient, Transport } from '@mls/core/interfaces'
import { memoryClientStore } from '@mls/storage-memory'
import { createTestNetwork, groupWith, keepOpen, waitFor } from '../src/index.js'

// Issue 12, "paced sync across many groups": the client catches its groups up a few at a time, the most
// recently active first, with a bounded number of requests in flight. (The flood of 260 groups against the
// real WebSocket server's default rate limits is packages/transport-ws/test/invitation-flood.test.ts.)

/** Records the order of the groups' first fetches and the most fetches in flight at once. */
function recordingTransport(inner: Transport) {
  const record = { order: [] as string[], inFlight: 0, maxInFlight: 0 }
  const wrap = (channel: GroupChannelClient): GroupChannelClient =>
    new Proxy(channel, {
      get(target, property) {
        if (property === 'fetchEntries') {
          return async (groupId: Uint8Array, afterSeq: number, options?: { limit?: number }) => {
            const gid = toHex(groupId)
            if (!record.order.includes(gid)) record.order.push(gid)
            record.inFlight++
            record.maxInFlight = Math.max(record.maxInFlight, record.inFlight)
            try {
              // Let other requests start meanwhile, as a network would.
              await new Promise((resolve) => setTimeout(resolve, 2))
              return await target.fetchEntries(groupId, afterSeq, options)
            } finally {
              record.inFlight--
            }
          }
        }
        const value = Reflect.get(target, property) as unknown
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      }
    })
  const transport: Transport = {
    specificationVersion: inner.specificationVersion,
    [Symbol.toStringTag]: 'RecordingTransport',
    connect: async (credentials, options) => {
      const connection = await inner.connect(credentials, options)
      const recorded: Connection = { clientId: connection.clientId, directory: connection.directory, channel: wrap(connection.channel), close: () => connection.close() }
      return recorded
    }
  }
  return { transport, record }
}

async function sixGroups() {
  const net = await createTestNetwork({ crypto: nodeCrypto() })
  const store = keepOpen(memoryClientStore({ name: 'bob' }))
  const alice = await net.client('alice')
  // A strictly increasing clock, so two messages never share a millisecond of activity.
  let last = 0
  const now = () => (last = Math.max(last + 1, Date.now()))
  const bob = await net.client('bob', { store, now })
  await bob.publishKeyPackages({ count: 8 })
  const groups: [Group, Group][] = []
  for (let i = 0; i < 6; i++) groups.push((await groupWith(alice, [bob])) as [Group, Group])
  return { net, store, alice, bob, groups }
}

describe('paced sync', () => {
  it('a restarted client catches its groups up most recently active first', async () => {
    const { net, store, alice, bob, groups } = await sixGroups()
    // Traffic in every group in turn, then once more in group 2: 2 is the most recent, then 5, 4, 3, 1, 0.
    for (const [i, [a, b]] of [...groups.entries(), [2, groups[2]!] as const]) {
      const seen = b.cursor
      await a.send(`to ${i}`)
      await waitFor(() => b.cursor > seen, `bob to read group ${i}`)
    }
    await bob.close()
    const recording = recordingTransport(net.transport)
    const restarted = await net.client('bob', { store, transport: recording.transport, pacing: { maxGroupsInFlight: 1 } })
    const expected = [2, 5, 4, 3, 1, 0].map((i) => groups[i]![0].groupIdHex)
    expect(recording.record.order).toEqual(expected)
    expect(recording.record.maxInFlight).toBe(1)
    await Promise.all([restarted.close(), alice.close()])
  })

  it('at most maxRequestsInFlight requests are outstanding while many groups sync at once', async () => {
    const { net, store, alice, bob } = await sixGroups()
    await bob.close()
    const recording = recordingTransport(net.transport)
    const restarted = await net.client('bob', { store, transport: recording.transport, pacing: { maxGroupsInFlight: 6, maxRequestsInFlight: 2 } })
    expect(recording.record.order).toHaveLength(6)
    expect(recording.record.maxInFlight).toBe(2)
    expect(restarted.listGroups().every((g) => g.status === 'active')).toBe(true)
    await Promise.all([restarted.close(), alice.close()])
  })

  it('refuses pacing settings out of range with INVALID_ARGUMENT', async () => {
    const net = await createTestNetwork({ crypto: nodeCrypto() })
    await expect(net.client('carol', { pacing: { maxGroupsInFlight: 0 } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(net.client('dave', { pacing: { maxRequestsInFlight: 1.5 } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })
})
