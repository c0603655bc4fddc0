import { describe, expect, it } from 'vitest'
import { StorageError } from '@mls/core'
import { TestClient, add, expectCode, groupOf, harness } from './helpers.js'

describe('channel: a store failure while checking a commit is not a verdict on it', () => {
  // Found by the simulator (seed 36383, with the old server process fenced off its store on restart): a failed
  // credential lookup (the AuthenticationService reads the Directory) while the commit's Adds were checked came
  // back as INVALID_MESSAGE (invalid-proposals), so the committer took a transient fault for a refusal.
  it('answers the store error (own trouble: the committer retries), stores nothing, and accepts the same commit on retry', async () => {
    const h = await harness()
    const [alice, bob, carol] = await Promise.all(['alice/phone', 'bob/phone', 'carol/phone'].map((id) => TestClient.register(h, id)))
    for (const client of [bob!, carol!]) await client.upload(2)
    const { members } = await groupOf(alice!, [bob!])
    const creator = members[0]!
    const [fetched] = await creator.fetch('carol')
    const prepared = await creator.prepareCommit([add(fetched!.decoded)])
    // The added member's registered identity, read by the AuthenticationService inside the commit's verification.
    const lookup = h.store.getIdentity.bind(h.store)
    let failing = true
    let failed = 0
    h.store.getIdentity = (...args) => {
      if (!failing || args[0] !== carol!.clientId) return lookup(...args)
      failed++
      return Promise.reject(new StorageError('STORAGE_IO', 'injected read failure'))
    }
    await expectCode(creator.post(prepared), 'STORAGE_IO')
    expect(failed).toBeGreaterThan(0)
    failing = false
    const group = await h.store.getGroup(Buffer.from(creator.groupId).toString('hex'))
    expect(group?.epoch).toBe(1n)
    const result = await creator.post(prepared)
    expect(result.kind).toBe('accepted')
  })
})
