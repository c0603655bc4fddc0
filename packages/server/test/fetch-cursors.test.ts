import { describe, expect, it } from 'vitest'
import { toHex, tsMlsDefaultCrypto } from '@mls/core'
import { memoryServerStore } from '@mls/storage-memory'
import { createServices, startLogRetention } from '../src/index.js'
import { TestClient, expectCode, groupOf, harness } from './helpers.js'

async function clients(h: Awaited<ReturnType<typeof harness>>, ...names: string[]): Promise<TestClient[]> {
  const out = []
  for (const name of names) {
    const client = await TestClient.register(h, `${name}/phone`)
    await client.upload(3)
    out.push(client)
  }
  return out
}

/** A retention loop that only runs when told (its interval is an hour). */
function retention(h: Awaited<ReturnType<typeof harness>>, policy: { maxMessages?: number; hardMaxAgeSeconds?: number }, now = Date.now) {
  const loop = startLogRetention(
    h.store,
    { maxAgeSeconds: 0, maxMessages: policy.maxMessages ?? 0, intervalSeconds: 3600, hardMaxAgeSeconds: policy.hardMaxAgeSeconds ?? 0 },
    { beforePass: () => h.services.channel.flushFetchCursors(), now }
  )
  return loop
}

describe('channel: fetch cursors', () => {
  it("moves a member's cursor on its own fetches and confirmed pushes, never another member's, and not for a stranger", async () => {
    const h = await harness()
    const [alice, bob, carol] = await clients(h, 'alice', 'bob', 'carol')
    const { groupId, members } = await groupOf(alice!, [bob!])
    const [a] = members
    const groupHex = toHex(groupId)
    const cursors = async () => {
      await h.services.channel.flushFetchCursors()
      return Object.fromEntries((await h.store.readFetchCursors(groupHex)).map((c) => [c.clientId, c.seq]))
    }
    bob!.unsubscribe() // bob is offline: nothing is pushed to him
    for (let i = 0; i < 5; i++) await a!.send(`m${i}`) // seqs 2..6
    // A push alone does not count (the socket may be dead): alice counts from creating the group, bob from his Add.
    expect(alice!.entrySeqs()).toEqual([1, 2, 3, 4, 5, 6])
    expect(await cursors()).toEqual({ 'alice/phone': 0, 'bob/phone': 1 })
    // The transport proves alice received the pushes up to 6 (transport-ws: the pong to a later ping).
    h.services.channel.confirmDelivered(alice!.clientId, groupId, 6)
    expect(await cursors()).toEqual({ 'alice/phone': 6, 'bob/phone': 1 })

    // A stranger is refused and moves nothing; alice reading or confirming cannot move bob.
    await expectCode(h.services.channel.fetchEntries(carol!.clientId, groupId, 6), 'NOT_A_MEMBER')
    h.services.channel.confirmDelivered(carol!.clientId, groupId, 6)
    await h.services.channel.fetchEntries(alice!.clientId, groupId, 6)
    expect(await cursors()).toEqual({ 'alice/phone': 6, 'bob/phone': 1 })

    // Entries returned do not count until bob reads past them (he may crash before he stores them).
    expect((await h.services.channel.fetchEntries(bob!.clientId, groupId, 1)).map((e) => e.seq)).toEqual([2, 3, 4, 5, 6])
    expect(await cursors()).toEqual({ 'alice/phone': 6, 'bob/phone': 1 })
    await h.services.channel.fetchEntries(bob!.clientId, groupId, 4)
    expect(await cursors()).toEqual({ 'alice/phone': 6, 'bob/phone': 4 })
    // A position beyond the head counts as the head; an older one does not move the cursor back.
    await h.services.channel.fetchEntries(bob!.clientId, groupId, 1_000)
    await h.services.channel.fetchEntries(bob!.clientId, groupId, 2)
    expect(await cursors()).toEqual({ 'alice/phone': 6, 'bob/phone': 6 })
  })

  it("keeps a slow member's unread messages through retention passes; past the hard limit it gets CURSOR_EXPIRED", async () => {
    const h = await harness()
    const [alice, bob] = await clients(h, 'alice', 'bob')
    const { groupId, members } = await groupOf(alice!, [bob!])
    const [a] = members
    bob!.unsubscribe()
    for (let i = 0; i < 6; i++) await a!.send(`m${i}`) // seqs 2..7
    await h.services.channel.fetchEntries(alice!.clientId, groupId, 7) // alice holds everything
    const keepOne = retention(h, { maxMessages: 1 })
    try {
      expect(await keepOne.runOnce()).toEqual({ deleted: 0, welcomesDeleted: 0 })
      // Bob comes back and reads everything sent while he was away.
      expect((await h.services.channel.fetchEntries(bob!.clientId, groupId, 1)).map((e) => e.seq)).toEqual([2, 3, 4, 5, 6, 7])
      await h.services.channel.fetchEntries(bob!.clientId, groupId, 5)
      // Now he holds up to 5: those go (the newest one is kept by count anyway).
      expect(await keepOne.runOnce()).toEqual({ deleted: 4, welcomesDeleted: 0 })
      expect((await h.services.channel.fetchEntries(bob!.clientId, groupId, 5)).map((e) => e.seq)).toEqual([6, 7])
    } finally {
      await keepOne.stop()
    }

    // The hard limit: an hour from now, everything is older than one second, fetched or not.
    const hard = retention(h, { maxMessages: 0, hardMaxAgeSeconds: 1 }, () => Date.now() + 3_600_000)
    try {
      expect(await hard.runOnce()).toEqual({ deleted: 2, welcomesDeleted: 0 })
    } finally {
      await hard.stop()
    }
    await expect(h.services.channel.fetchEntries(bob!.clientId, groupId, 5)).rejects.toMatchObject({
      code: 'CURSOR_EXPIRED',
      details: { afterSeq: 5, oldestRetainedSeq: 8 }
    })
  })

  it('refuses a store without fetch cursors (written before them, it would prune what members have not read)', () => {
    const store = memoryServerStore()
    const old = new Proxy(store, { get: (target, property, receiver) => (property === 'advanceFetchCursors' ? undefined : Reflect.get(target, property, receiver)) })
    expect(() => createServices({ store: old, crypto: tsMlsDefaultCrypto() })).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_SPECIFICATION' }))
  })
})
