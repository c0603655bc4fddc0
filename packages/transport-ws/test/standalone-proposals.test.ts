import { afterEach, describe, expect, it } from 'vitest'
import { DEFAULT_CIPHERSUITE, equalBytes, type Group } from '@mls/core'
import type { Connection } from '@mls/core/interfaces'
import { createCommit, createProposal, encodeMlsMessage, getCiphersuiteFromName } from '@mls/core/mls'
import { converged, createWsNetwork, crypto, groupWith, joined, waitFor, type WsNetwork } from './helpers.js'

// Issue 15, "the MLS forms other implementations use": standalone Add, Update and Remove proposals by
// members, ordered by the channel, kept by every member, and committed by reference by whoever commits
// next; over a real WebSocket server on loopback.

let net: WsNetwork | undefined
afterEach(async () => {
  await net?.close()
  net = undefined
})

function leafKey(group: Group, leafIndex: number): Uint8Array {
  const node = group.mlsState!.ratchetTree[leafIndex * 2]
  if (node?.nodeType !== 'leaf') throw new Error(`leaf ${leafIndex} is blank`)
  return node.leaf.hpkePublicKey
}

describe('standalone proposals and commits by reference', () => {
  it('bob proposes an Add, carol an Update of her leaf; alice commits both by reference; alice then proposes a Remove that bob commits', async () => {
    net = await createWsNetwork()
    const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((u) => net!.client(u)))
    await Promise.all([bob, carol, dave].map((c) => c!.publishKeyPackages({ count: 2 })))
    const [a, b, c] = await groupWith(alice!, [bob!, carol!])

    const addSeen = [a, c].map((g) => g.once('proposal:received'))
    const proposedAdd = await b.propose.add(await bob!.fetchKeyPackages(['dave']))
    expect(proposedAdd.seqs).toHaveLength(1)
    for (const event of await Promise.all(addSeen)) expect(event).toMatchObject({ kind: 'add', adds: ['dave/phone'], sender: 'bob/phone', epoch: 1n })

    const carolLeaf = c.ownLeafIndex
    const oldKey = leafKey(a, carolLeaf)
    const updateSeen = [a, b].map((g) => g.once('proposal:received'))
    await c.propose.update()
    for (const event of await Promise.all(updateSeen)) expect(event).toMatchObject({ kind: 'update', sender: 'carol/phone', adds: [], removes: [] })

    // Alice's commit includes both by reference (the channel resolves them, adds dave and sends him the Welcome).
    const outcome = await a.update()
    expect(outcome).toMatchObject({ kind: 'committed', epoch: 2n })
    const d = await joined(dave!, a.groupId)
    await converged([a, b, c, d], 2n)
    expect(a.members().map((m) => m.clientId)).toEqual(['alice/phone', 'bob/phone', 'carol/phone', 'dave/phone'])
    // Carol's leaf carries the key of her Update, and she holds its private key: her own commit (an update
    // path whose secrets she derives from that leaf onward) and everyone's next messages work.
    expect(equalBytes(leafKey(b, carolLeaf), oldKey)).toBe(false)
    expect(equalBytes(leafKey(b, carolLeaf), leafKey(c, carolLeaf))).toBe(true)
    await b.update()
    await converged([a, b, c, d], 3n)
    await c.update()
    await converged([a, b, c, d], 4n)

    // A Remove proposed by alice, committed by bob: dave is out and reads nothing after.
    const removed = d.once('group:removed')
    const removeSeen = b.once('proposal:received')
    await a.propose.remove(['dave'])
    expect(await removeSeen).toMatchObject({ kind: 'remove', removes: ['dave/phone'], sender: 'alice/phone' })
    await b.update()
    await converged([a, b, c], 5n)
    expect(await removed).toMatchObject({ epoch: 5n, by: 'bob/phone' })
    expect(a.members().map((m) => m.clientId)).toEqual(['alice/phone', 'bob/phone', 'carol/phone'])
  })

  it('refuses a proposal from a non-member, and a commit that references a proposal nobody ordered (channel and members, typed errors, nothing changes)', async () => {
    net = await createWsNetwork()
    let eveConnection: Connection | undefined
    let bobConnection: Connection | undefined
    const alice = await net.client('alice')
    const bob = await net.client('bob', { onConnection: (connection) => (bobConnection = connection) })
    const carol = await net.client('carol')
    const eve = await net.client('eve', { onConnection: (connection) => (eveConnection = connection) })
    await Promise.all([bob, carol, eve].map((c) => c.publishKeyPackages({ count: 2 })))
    const [a, b, c] = await groupWith(alice, [bob, carol])
    const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(DEFAULT_CIPHERSUITE))

    // A stranger posts a genuine proposal of a member (a replay) and her own claim to be a member: both NOT_A_MEMBER.
    const genuine = encodeMlsMessage((await createProposal(b.mlsState!, true, { proposalType: 'remove', remove: { removed: c.ownLeafIndex } }, cs)).message)
    await expect(eveConnection!.channel.postProposal(a.groupId, genuine)).rejects.toMatchObject({ code: 'NOT_A_MEMBER' })
    // A member may not propose for another member's leaf either: the sender must be the caller's own leaf.
    await expect(bobConnection!.channel.postProposal(a.groupId, encodeMlsMessage((await createProposal(a.mlsState!, true, { proposalType: 'remove', remove: { removed: c.ownLeafIndex } }, cs)).message))).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      details: { reason: 'unknown-sender' }
    })
    // A proposal for a client who is already a member is refused before any commit depends on it.
    const [carolAgain] = await bob.fetchKeyPackages(['carol'])
    await expect(b.propose.add([carolAgain!])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    const addCarol = encodeMlsMessage((await createProposal(b.mlsState!, true, { proposalType: 'add', add: { keyPackage: carolAgain!.keyPackage } }, cs)).message)
    await expect(bobConnection!.channel.postProposal(a.groupId, addCarol)).rejects.toMatchObject({ code: 'INVALID_MESSAGE' })

    // Bob keeps a proposal to himself and commits it by reference: the channel has not seen it.
    const secret = await createProposal(b.mlsState!, true, { proposalType: 'remove', remove: { removed: c.ownLeafIndex } }, cs)
    const forged = await createCommit({ state: secret.newState, cipherSuite: cs }, { wireAsPublicMessage: true })
    const commit = encodeMlsMessage(forged.commit)
    await expect(bobConnection!.channel.postCommit(a.groupId, { epoch: 1n, commit })).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      details: { reason: 'unknown-proposal-reference' }
    })
    // Handed to a member directly, the same commit is refused alike, and the member stays where it was.
    const before = c.epochAuthenticator()
    await expect(c.receive(commit)).rejects.toMatchObject({ code: 'INVALID_MESSAGE', details: { reason: 'unknown-proposal-reference' } })
    expect(c.status).toBe('active')
    expect(c.epoch).toBe(1n)
    expect(equalBytes(c.epochAuthenticator(), before)).toBe(true)

    // The group goes on: a later proposal of the old epoch lapses (WRONG_EPOCH) once a commit moved it on.
    const stale = encodeMlsMessage((await createProposal(b.mlsState!, true, { proposalType: 'remove', remove: { removed: c.ownLeafIndex } }, cs)).message)
    await a.update()
    await converged([a, b, c], 2n)
    await expect(bobConnection!.channel.postProposal(a.groupId, stale)).rejects.toMatchObject({ code: 'WRONG_EPOCH' })
    await waitFor(() => [a, b, c].every((g) => g.status === 'active'), 'every member to stay active')
  })
})
