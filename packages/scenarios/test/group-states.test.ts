import { describe, expect, it } from 'vitest'
import { createCommit, encodeMlsMessage } from '@mls/core/mls'
import { toHex, type Group, type GroupEvents, type GroupStatus } from '@mls/core'
import { converged, createTestNetwork, groupWith, providerCases, waitFor } from '../src/index.js'

const [defaultCase] = providerCases()
const { crypto, ciphersuite } = defaultCase!

function transitions(group: Group): string[] {
  const out: string[] = []
  group.on('status:changed', (e: { from: GroupStatus; to: GroupStatus }) => out.push(`${e.from}->${e.to}`))
  return out
}

describe('group state machine transitions', () => {
  it('active -> committing -> active on a confirmed commit; creating a commit changes nothing until then', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const bob = await net.client('bob')
    await bob.publishKeyPackages({ count: 1 })
    let joinedStatus: GroupStatus | undefined
    bob.on('group:joined', ({ group }) => {
      joinedStatus = group.status
    })
    const a = await alice.createGroup()
    expect(a.status).toBe('active')
    const seen = transitions(a)
    const authBefore = a.epochAuthenticator()
    // While committing (the commit exists but is not confirmed), the group is unchanged.
    const whileCommitting: { epoch: bigint; auth: Uint8Array; members: number }[] = []
    a.on('status:changed', (e) => {
      if (e.to === 'committing') whileCommitting.push({ epoch: a.epoch, auth: a.epochAuthenticator(), members: a.members().length })
    })
    await alice.addUsers(a, ['bob'])
    expect(whileCommitting).toEqual([{ epoch: 0n, auth: authBefore, members: 1 }])
    expect(seen).toEqual(['active->committing', 'committing->active'])
    expect(a.epoch).toBe(1n)
    // The joiner starts in `joining`, catches up with the channel, then is `active`.
    const joinedEvent = await bob.once('group:joined')
    const b = joinedEvent.group
    const bobSeen = transitions(b)
    await waitFor(() => b.status === 'active', 'bob to finish joining')
    expect(['joining', 'active']).toContain(joinedStatus)
    expect(bobSeen.length === 0 || bobSeen[0] === 'joining->active').toBe(true)
  })

  it('committing -> active (discarded) when another commit wins, then the intent is retried', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const [alice, bob] = await Promise.all(['alice', 'bob'].map((u) => net.client(u)))
    await bob!.publishKeyPackages({ count: 1 })
    const [a, b] = await groupWith(alice!, [bob!])
    const seenA = transitions(a)
    const seenB = transitions(b)
    const [ra, rb] = await Promise.all([a.update(), b.update()])
    const loser = ra.attempts === 2 ? seenA : seenB
    expect(rb.attempts + ra.attempts).toBe(3)
    expect(loser).toEqual(['active->committing', 'committing->active', 'active->committing', 'committing->active'])
    await converged([a, b], 3n)
  })

  it('active -> removed when a commit removes the member', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const [alice, bob] = await Promise.all(['alice', 'bob'].map((u) => net.client(u)))
    await bob!.publishKeyPackages({ count: 1 })
    const [a, b] = await groupWith(alice!, [bob!])
    const seen = transitions(b)
    await a.removeMembers(['bob/phone'])
    await waitFor(() => b.status === 'removed', 'bob removed')
    expect(seen).toEqual(['active->removed'])
    await expect(b.send('anyone?')).rejects.toMatchObject({ code: 'INVALID_STATE' })
    await expect(b.update()).rejects.toMatchObject({ code: 'INVALID_STATE' })
  })

  it('a commit every member rejects alike (bad signature, random bytes), ordered by a hostile server, is skipped and reported: no failed state', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const [alice, bob] = await Promise.all(['alice', 'bob'].map((u) => net.client(u)))
    await bob!.publishKeyPackages({ count: 1 })
    const [a, b] = await groupWith(alice!, [bob!])
    const seen = transitions(a)
    const rejected = a.once('message:rejected')
    const authBefore = a.epochAuthenticator()
    // Bob, a member, forges a commit: valid framing, corrupted signature.
    const cs = await crypto.getCiphersuiteImpl((await import('@mls/core/mls')).getCiphersuiteFromName(ciphersuite))
    const forged = await createCommit({ state: b.mlsState!, cipherSuite: cs }, { wireAsPublicMessage: true })
    if (forged.commit.wireformat !== 'mls_public_message') throw new Error('expected a PublicMessage')
    forged.commit.publicMessage.auth.signature[0]! ^= 0xff
    const message = encodeMlsMessage(forged.commit)
    // The channel verifies commits and refuses it...
    await expect(net.services.channel.postCommit('bob/phone', a.groupId, { epoch: 1n, commit: message })).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      details: { reason: 'bad-signature' }
    })
    expect(a.status).toBe('active')
    // ...so only a hostile server delivers it: written straight into its store, then fetched by alice.
    const groupHex = toHex(a.groupId)
    const record = await net.serverStore.getGroup(groupHex)
    const appended = await net.serverStore.appendCommit(groupHex, {
      expectedEpoch: 1n,
      entry: { kind: 'commit', epoch: 1n, sender: 'bob/phone', message, digest: 'forged' },
      roster: record!.roster,
      access: record!.access,
      welcomes: []
    })
    expect(appended.kind).toBe('accepted')
    const garbage = await net.serverStore.appendCommit(groupHex, {
      expectedEpoch: 2n,
      entry: { kind: 'commit', epoch: 2n, sender: 'bob/phone', message: globalThis.crypto.getRandomValues(new Uint8Array(40)), digest: 'garbage' },
      roster: record!.roster,
      access: record!.access,
      welcomes: []
    })
    if (appended.kind !== 'accepted' || garbage.kind !== 'accepted') throw new Error('expected both entries appended')
    const rejectedAgain = new Promise<GroupEvents['message:rejected']>((resolve) => a.on('message:rejected', (e) => e.seq === garbage.seq && resolve(e)))
    void a.sync().catch(() => {})
    const event = await rejected
    expect(event).toMatchObject({ seq: appended.seq, error: { code: 'MESSAGE_REJECTED' } })
    expect((await rejectedAgain).error.code).toBe('INVALID_MESSAGE')
    // Skipped, not fatal: the cursor moved past both, nothing else changed.
    expect(a.cursor).toBe(garbage.seq)
    expect(a.status).toBe('active')
    expect(seen).toEqual([])
    expect(a.epochAuthenticator()).toEqual(authBefore)
    expect(a.epoch).toBe(1n)
  })
})
