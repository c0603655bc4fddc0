import { describe, expect, it } from 'vitest'
import { StorageError, createExternalRejoin, credentialFor, utf8 } from '@mls/core'
import { defaultClientConfig } from '@mls/core/mls'
import { Member, TestClient, add, expectCode, groupOf, harness } from './helpers.js'

type Harness = Awaited<ReturnType<typeof harness>>

/**
 * Make the store's identity lookups of `clientId` (the AuthenticationService's reads, among others) fail after
 * the first `passFirst` of them, until `heal` is called.
 */
function failIdentityLookups(h: Harness, clientId: string, passFirst = 0): { failed: () => number; heal: () => void } {
  const lookup = h.store.getIdentity.bind(h.store)
  let failing = true
  let passed = 0
  let failed = 0
  h.store.getIdentity = (...args) => {
    if (!failing || args[0] !== clientId || passed++ < passFirst) return lookup(...args)
    failed++
    return Promise.reject(new StorageError('STORAGE_IO', 'injected read failure'))
  }
  return {
    failed: () => failed,
    heal: () => {
      failing = false
      h.store.getIdentity = lookup
    }
  }
}

/**
 * Post `attempt` with the n-th identity lookup of `clientId` failing, for n = 0, 1, 2, ... until it is accepted:
 * each failure is answered with the store's error (never a refusal) and leaves the group at `epochBefore`.
 * Returns the result of the first accepted attempt and how many lookups could fail.
 */
async function throughEveryLookupFailure<T>(h: Harness, clientId: string, groupHex: string, epochBefore: bigint | undefined, attempt: () => Promise<T>) {
  for (let passFirst = 0; passFirst < 20; passFirst++) {
    const faults = failIdentityLookups(h, clientId, passFirst)
    let result: T | undefined
    let error: unknown
    try {
      result = await attempt()
    } catch (cause) {
      error = cause
    }
    faults.heal()
    if (faults.failed() === 0) return { result: result as T, failurePoints: passFirst }
    expect(error, `lookup ${passFirst} failing`).toMatchObject({ code: 'STORAGE_IO' })
    expect((await h.store.getGroup(groupHex))?.epoch).toBe(epochBefore)
  }
  throw new Error('more than 20 identity lookups')
}

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

  // Found by the simulator (seed 50071): the same at the GroupInfo check of a new group. The creator's leaf is
  // checked against the Directory; a failed read came back as INVALID_MESSAGE (invalid-group-info), which the
  // client reports as a refusal of its group, for good.
  it('a new group: every identity lookup can fail; each is answered with the store error, and nothing is created', async () => {
    const h = await harness()
    const alice = await TestClient.register(h, 'alice/phone')
    const groupId = utf8.encode('own-trouble-create')
    const groupHex = Buffer.from(groupId).toString('hex')
    const { result: member, failurePoints } = await throughEveryLookupFailure(h, alice.clientId, groupHex, undefined, () => Member.create(alice, groupId))
    // The AuthenticationService's check of the creator's leaf, at least.
    expect(failurePoints).toBeGreaterThanOrEqual(1)
    expect((await h.store.getGroup(groupHex))?.epoch).toBe(0n)
    expect(await member.commit()).toMatchObject({ kind: 'accepted', epoch: 1n })
  })

  it("a member's update path and an external commit: every identity lookup can fail, and none is a refusal", async () => {
    const h = await harness()
    const [alice, bob] = await Promise.all(['alice/phone', 'bob/phone'].map((id) => TestClient.register(h, id)))
    await bob!.upload(2)
    const { groupId, members } = await groupOf(alice!, [bob!])
    const groupHex = Buffer.from(groupId).toString('hex')
    // Alice's empty commit carries an update path: her new leaf is checked against the Directory.
    const prepared = await members[0]!.prepareCommit([])
    const update = await throughEveryLookupFailure(h, alice!.clientId, groupHex, 1n, () => members[0]!.post(prepared))
    expect(update.result).toMatchObject({ kind: 'accepted', epoch: 2n })
    expect(update.failurePoints).toBeGreaterThanOrEqual(2)
    // Bob resyncs by external commit: his new leaf is checked against the Directory.
    const fetched = await h.services.channel.fetchGroupInfo(bob!.clientId, groupId)
    const init = { credential: credentialFor(bob!.clientId), signatureKeys: bob!.keys, cs: h.cs, clientConfig: defaultClientConfig, resync: true }
    const rejoin = await createExternalRejoin(fetched!.groupInfo, init)
    const request = { epoch: rejoin.epoch, commit: rejoin.commit, groupInfo: rejoin.groupInfo }
    const external = await throughEveryLookupFailure(h, bob!.clientId, groupHex, 2n, () => h.services.channel.postCommit(bob!.clientId, groupId, request))
    expect(external.result).toMatchObject({ kind: 'accepted', epoch: 3n })
    expect(external.failurePoints).toBeGreaterThanOrEqual(1)
  })
})
