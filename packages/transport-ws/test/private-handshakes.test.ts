import { afterEach, describe, expect, it } from 'vitest'
import { DEFAULT_CIPHERSUITE } from '@mls/core'
import type { Connection } from '@mls/core/interfaces'
import { createApplicationMessage, createCommit, decodeMlsMessage, emptyPskIndex, encodeMlsMessage, getCiphersuiteFromName, processMessage, type ClientState } from '@mls/core/mls'
import { converged, createWsNetwork, crypto, joined, type WsNetwork } from './helpers.js'

// Issue 15: a group whose policy is PrivateMessage handshakes. The channel orders commits and proposals it
// cannot read (one commit per epoch, from the header), and members enforce what it no longer can.

let net: WsNetwork | undefined
afterEach(async () => {
  await net?.close()
  net = undefined
})

function wireFormatOf(bytes: Uint8Array): string | undefined {
  return decodeMlsMessage(bytes, 0)?.[0].wireformat
}

/** A copy of a state's epoch secrets that outlives the group's own (which are zeroed when it is removed). */
function snapshot(state: ClientState): ClientState {
  const keySchedule = Object.fromEntries(Object.entries(state.keySchedule).map(([k, v]) => [k, (v as Uint8Array).slice()])) as unknown as ClientState['keySchedule']
  return { ...state, keySchedule, signaturePrivateKey: state.signaturePrivateKey.slice() }
}

describe('private handshakes (handshakeWireFormat: private)', () => {
  it('commits and proposals travel as PrivateMessages; two commits for one epoch: exactly one wins and everyone converges; a removed member cannot read later handshakes', async () => {
    net = await createWsNetwork()
    const connections = new Map<string, Connection>()
    const [alice, bob, carol, dave] = await Promise.all(
      ['alice', 'bob', 'carol', 'dave'].map((u) => net!.client(u, { onConnection: (connection) => connections.set(u, connection) }))
    )
    await Promise.all([bob, carol, dave].map((c) => c!.publishKeyPackages({ count: 3 })))
    const a = await alice!.createGroup(undefined, { handshakeWireFormat: 'private' })
    expect(a.handshakeWireFormat).toBe('private')
    await alice!.addUsers(a, ['bob', 'carol'])
    const [b, c] = await Promise.all([joined(bob!, a.groupId), joined(carol!, a.groupId)])
    await converged([a, b, c], 1n)
    expect(b.handshakeWireFormat).toBe('private')
    const log = await connections.get('alice')!.channel.fetchEntries(a.groupId, 0)
    expect(log.filter((e) => e.kind === 'commit').map((e) => wireFormatOf(e.message))).toEqual(['mls_private_message'])
    // Nor does the channel offer a GroupInfo it cannot check.
    expect(await connections.get('bob')!.channel.fetchGroupInfo(a.groupId)).toBeUndefined()

    // Two members commit for epoch 1 at once: the channel takes exactly one (it reads only the epoch in the
    // header); the other's client applies the winner and retries on epoch 2.
    const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(DEFAULT_CIPHERSUITE))
    const stale = await createCommit({ state: b.mlsState!, cipherSuite: cs }, { wireAsPublicMessage: false })
    const outcomes = await Promise.all([b.update(), c.update()])
    expect(outcomes.map((o) => o.kind)).toEqual(['committed', 'committed'])
    expect(outcomes.map((o) => (o.kind === 'committed' ? o.epoch : 0n)).sort()).toEqual([2n, 3n])
    expect(Math.max(...outcomes.map((o) => o.attempts))).toBe(2)
    await converged([a, b, c], 3n)
    const commits = (await connections.get('alice')!.channel.fetchEntries(a.groupId, 0)).filter((e) => e.kind === 'commit')
    expect(commits.map((e) => e.epoch)).toEqual([0n, 1n, 2n])
    // A commit for an epoch already taken is refused unread.
    expect(await connections.get('bob')!.channel.postCommit(a.groupId, { epoch: 1n, commit: encodeMlsMessage(stale.commit) })).toEqual({ kind: 'conflict', epoch: 3n })

    // Private proposals: bob proposes adding dave; alice's next commit includes it by reference.
    const seen = a.once('proposal:received')
    const proposed = await b.propose.add(await bob!.fetchKeyPackages(['dave']))
    expect(wireFormatOf((await connections.get('alice')!.channel.fetchEntries(a.groupId, proposed.seqs[0]! - 1))[0]!.message)).toBe('mls_private_message')
    expect(await seen).toMatchObject({ kind: 'add', adds: ['dave/phone'], sender: 'bob/phone' })
    await a.update()
    const d = await joined(dave!, a.groupId)
    await converged([a, b, c, d], 4n)

    // Carol is removed by a private commit; afterwards the channel still serves her the ciphertext (it cannot see
    // removals), but she cannot decrypt it.
    const carolBefore = snapshot(c.mlsState!)
    const removed = c.once('group:removed')
    await a.removeMembers(['carol'])
    await removed
    // The channel cannot see the removal, so it still takes her messages; members refuse one ordered after the
    // commit that removed her (encrypted in the epoch before, which they still hold keys for).
    const refused = a.once('message:rejected')
    const late = await createApplicationMessage(carolBefore, new TextEncoder().encode('still here'), cs)
    await connections.get('carol')!.channel.postMessage(a.groupId, encodeMlsMessage({ version: 'mls10', wireformat: 'mls_private_message', privateMessage: late.privateMessage }))
    expect((await refused).error).toMatchObject({ code: 'INVALID_MESSAGE', details: { reason: 'sender-removed' } })
    await a.update()
    await converged([a, b, d], 6n)
    const later = (await connections.get('carol')!.channel.fetchEntries(a.groupId, 0)).filter((e) => e.kind === 'commit' && e.epoch === 5n)
    expect(later).toHaveLength(1)
    const message = decodeMlsMessage(later[0]!.message, 0)![0]
    if (message.wireformat !== 'mls_private_message') throw new Error('expected a PrivateMessage')
    await expect(processMessage(message, carolBefore, emptyPskIndex, () => 'accept', cs)).rejects.toThrow()
  })

  it("a private proposal whose post failed stays out of its author's next commit (the others never saw it)", async () => {
    net = await createWsNetwork()
    const connections = new Map<string, Connection>()
    const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((u) => net!.client(u, { onConnection: (connection) => connections.set(u, connection) })))
    await Promise.all([bob, carol].map((c) => c!.publishKeyPackages({ count: 2 })))
    const a = await alice!.createGroup(undefined, { handshakeWireFormat: 'private' })
    await alice!.addUsers(a, ['bob', 'carol'])
    const [b, c] = await Promise.all([joined(bob!, a.groupId), joined(carol!, a.groupId)])
    await converged([a, b, c], 1n)
    // Bob's connection drops under him: his Remove of carol is kept in his state, but never ordered.
    await connections.get('bob')!.close()
    await expect(b.propose.remove(['carol'])).rejects.toBeDefined()
    expect(Object.keys(b.mlsState!.unappliedProposals)).toHaveLength(1)
    await bob!.connect()
    // His next commit leaves it out, so alice and carol can process it.
    await b.update()
    await converged([a, b, c], 2n)
    expect(a.members().map((m) => m.clientId)).toEqual(['alice/phone', 'bob/phone', 'carol/phone'])
  })

  it('refuses the other wire format in each kind of group, and a member refuses a commit that would change the policy', async () => {
    net = await createWsNetwork()
    const connections = new Map<string, Connection>()
    const [alice, bob] = await Promise.all(['alice', 'bob'].map((u) => net!.client(u, { onConnection: (connection) => connections.set(u, connection) })))
    await bob!.publishKeyPackages({ count: 3 })
    const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(DEFAULT_CIPHERSUITE))
    const priv = await alice!.createGroup(undefined, { handshakeWireFormat: 'private' })
    await alice!.addUsers(priv, ['bob'])
    const privB = await joined(bob!, priv.groupId)
    const pub = await alice!.createGroup()
    await alice!.addUsers(pub, ['bob'])
    const pubB = await joined(bob!, pub.groupId)
    await converged([priv, privB], 1n)
    await converged([pub, pubB], 1n)
    const channel = connections.get('bob')!.channel
    const publicCommit = await createCommit({ state: privB.mlsState!, cipherSuite: cs }, { wireAsPublicMessage: true })
    await expect(channel.postCommit(priv.groupId, { epoch: 1n, commit: encodeMlsMessage(publicCommit.commit) })).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      details: { reason: 'handshake-wire-format' }
    })
    const privateCommit = await createCommit({ state: pubB.mlsState!, cipherSuite: cs }, { wireAsPublicMessage: false })
    await expect(channel.postCommit(pub.groupId, { epoch: 1n, commit: encodeMlsMessage(privateCommit.commit) })).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      details: { reason: 'handshake-wire-format' }
    })
    // Handed to the member directly, each is refused alike and changes nothing.
    await expect(priv.receive(encodeMlsMessage(publicCommit.commit))).rejects.toMatchObject({ details: { reason: 'handshake-wire-format' } })
    await expect(pub.receive(encodeMlsMessage(privateCommit.commit))).rejects.toMatchObject({ details: { reason: 'handshake-wire-format' } })
    // A commit that drops the policy (a GroupContextExtensions proposal by value) is refused by members.
    const downgrade = await createCommit(
      { state: privB.mlsState!, cipherSuite: cs },
      { wireAsPublicMessage: false, extraProposals: [{ proposalType: 'group_context_extensions', groupContextExtensions: { extensions: [] } }] }
    )
    await expect(priv.receive(encodeMlsMessage(downgrade.commit))).rejects.toMatchObject({ details: { reason: 'handshake-wire-format' } })
    expect([priv.epoch, priv.status, pub.epoch, pub.status]).toEqual([1n, 'active', 1n, 'active'])
  })
})
