import { describe, expect, it } from 'vitest'
import type { memoryServerStore } from '@mls/storage-memory'
import { startLogRetention } from '../src/index.js'
import { TestClient, groupOf, harness } from './helpers.js'

type StoreWithWelcomes = ReturnType<typeof memoryServerStore>

describe('channel: one stored copy of a commit’s Welcome', () => {
  it('stores the Welcome of a commit adding four members once, delivers it to each, and retention deletes it with the last mailbox row', async () => {
    const h = await harness()
    const store = h.store as StoreWithWelcomes
    const names = ['alice', 'bob', 'carol', 'dave', 'erin']
    const clients: TestClient[] = []
    for (const name of names) {
      const client = await TestClient.register(h, `${name}/phone`)
      await client.upload(2)
      clients.push(client)
    }
    const [alice, ...added] = clients as [TestClient, ...TestClient[]]
    // groupOf joins every added member from the Welcome pushed to it: each received the commit's one Welcome.
    const { members } = await groupOf(alice, added)
    expect(members).toHaveLength(5)
    const pushed = added.map((c) => c.welcomes().at(-1))
    for (const welcome of pushed) expect(welcome).toEqual(pushed[0])
    expect(store.rawWelcomes()).toHaveLength(1)
    expect(store.rawWelcomes()[0]).toEqual(pushed[0])
    // Fetching the mailbox gives each the same bytes, as before.
    for (const client of added) {
      const fetched = await h.services.channel.fetchWelcomes(client.clientId, 0)
      expect(fetched.map((w) => w.welcome)).toEqual([pushed[0]])
    }

    // Keep one Welcome per mailbox: a later Welcome for bob alone pushes his row out, the others still hold the copy.
    const loop = startLogRetention(h.store, { maxAgeSeconds: 0, maxMessages: 0, intervalSeconds: 3600, welcomeMaxPerMailbox: 1 })
    try {
      expect(await loop.runOnce()).toEqual({ deleted: 0, welcomesDeleted: 0 })
      const bob = added[0] as TestClient
      await groupOf(alice, [bob])
      expect(store.rawWelcomes()).toHaveLength(2)
      expect(await loop.runOnce()).toEqual({ deleted: 0, welcomesDeleted: 1 })
      expect(store.rawWelcomes()).toHaveLength(2)
      expect((await h.services.channel.fetchWelcomes(bob.clientId, 0)).map((w) => w.seq)).toEqual([2])
      expect((await h.services.channel.fetchWelcomes((added[3] as TestClient).clientId, 0)).map((w) => w.welcome)).toEqual([pushed[0]])
    } finally {
      await loop.stop()
    }

    // By age: everything older than a second from now goes, and with it the last copies.
    const byAge = startLogRetention(h.store, { maxAgeSeconds: 0, maxMessages: 0, intervalSeconds: 3600, welcomeMaxAgeSeconds: 1 }, { now: () => Date.now() + 60_000 })
    try {
      expect(await byAge.runOnce()).toEqual({ deleted: 0, welcomesDeleted: 4 })
      expect(store.rawWelcomes()).toEqual([])
      for (const client of added) expect(await h.services.channel.fetchWelcomes(client.clientId, 0)).toEqual([])
    } finally {
      await byAge.stop()
    }
  })
})
