import { describe, expect, it } from 'vitest'
import { credentialFor, utf8 } from '@mls/core'
import { createProposal, decodeMlsMessage, emptyPskIndex, encodeExternalSender, encodeMlsMessage, processPublicMessage, type ExternalSender, type Extension, type Proposal } from '@mls/core/mls'
import type { ServerStore } from '@mls/core/interfaces'
import { decodePublicGroupState } from '@mls/core/public-group'
import { SERVER_SENDER, createServices } from '../src/index.js'
import type { Member} from './helpers.js';
import { Member as GroupMember, TestClient, add, expectCode, groupOf, harness, remove } from './helpers.js'

async function clients(h: Awaited<ReturnType<typeof harness>>, ...names: string[]): Promise<TestClient[]> {
  const out = []
  for (const name of names) {
    const client = await TestClient.register(h, `${name}/phone`)
    await client.upload(2)
    out.push(client)
  }
  return out
}

/** RFC 9420 section 12.1.8.1: `ExternalSender external_senders<V>`, a vector (QUIC varint length, then the entries). */
function encodeExternalSenders(senders: ExternalSender[]): Uint8Array {
  const body = senders.map((s) => encodeExternalSender(s))
  const length = body.reduce((n, b) => n + b.length, 0)
  if (length >= 1 << 14) throw new Error('too long for this test')
  const prefix = length < 64 ? [length] : [0x40 | (length >> 8), length & 0xff]
  const out = new Uint8Array(prefix.length + length)
  out.set(prefix, 0)
  let offset = prefix.length
  for (const b of body) {
    out.set(b, offset)
    offset += b.length
  }
  return out
}

async function propose(member: Member, proposal: Proposal): Promise<Uint8Array> {
  const result = await createProposal(member.state, true, proposal, member.client.h.cs)
  return encodeMlsMessage(result.message)
}

async function receive(member: Member, bytes: Uint8Array): Promise<void> {
  const decoded = decodeMlsMessage(bytes, 0)?.[0]
  if (decoded?.wireformat !== 'mls_public_message') throw new Error('not a PublicMessage')
  member.state = (await processPublicMessage(member.state, decoded.publicMessage, emptyPskIndex, member.client.h.cs)).newState
}

describe('channel: standalone proposals', () => {
  it('a member leaves: it proposes its own removal, the channel orders it, the next committer includes it by reference', async () => {
    const h = await harness()
    const [alice, bob, carol] = await clients(h, 'alice', 'bob', 'carol')
    const { groupId, members } = await groupOf(alice!, [bob!, carol!])
    const [a, b, c] = members as [Member, Member, Member]
    const leave = await propose(c, remove(c.leafIndex))
    expect(await h.services.channel.postProposal(carol!.clientId, groupId, leave)).toEqual({ seq: 2 })
    // Every member is pushed the proposal, in order.
    for (const client of [alice!, bob!, carol!]) expect(client.entrySeqs()).toEqual(client === alice ? [1, 2] : [2])
    const [entry] = await h.services.channel.fetchEntries(bob!.clientId, groupId, 1)
    expect(entry).toMatchObject({ seq: 2, kind: 'proposal', epoch: 1n, sender: 'carol/phone' })
    await receive(a, leave)
    await receive(b, leave)
    // Alice's next commit carries it by reference; the channel resolves the reference and applies the removal.
    const prepared = await a.prepareCommit()
    const commit = decodeMlsMessage(prepared.commit, 0)?.[0]
    expect(commit?.wireformat === 'mls_public_message' && commit.publicMessage.content.contentType === 'commit' && commit.publicMessage.content.commit.proposals[0]?.proposalOrRefType).toBe('reference')
    expect(await a.post(prepared)).toEqual({ kind: 'accepted', seq: 3, epoch: 2n })
    expect((await h.store.getGroup(Buffer.from(groupId).toString('hex')))!.roster.map((e) => e.clientId)).toEqual(['alice/phone', 'bob/phone'])
    // Carol reads the commit that removed her, and nothing after.
    expect((await h.services.channel.fetchEntries(carol!.clientId, groupId, 0)).map((e) => e.seq)).toEqual([2, 3])
    await expectCode(h.services.channel.postMessage(carol!.clientId, groupId, await c.message('still here?')), 'NOT_A_MEMBER')
    await receive(b, prepared.commit)
    expect(b.state.keySchedule.epochAuthenticator).toEqual(a.state.keySchedule.epochAuthenticator)
  })

  it('refuses proposals it cannot validate or that are not the caller\'s, and commits that reference proposals it has not seen', async () => {
    const h = await harness()
    const [alice, bob, carol] = await clients(h, 'alice', 'bob', 'carol')
    const { groupId, members } = await groupOf(alice!, [bob!, carol!])
    const [a, b, c] = members as [Member, Member, Member]
    const post = (client: TestClient, bytes: Uint8Array) => h.services.channel.postProposal(client.clientId, groupId, bytes)
    const leave = await propose(c, remove(c.leafIndex))
    await expect(post(bob!, leave)).rejects.toMatchObject({ code: 'INVALID_MESSAGE', details: { reason: 'unknown-sender' } })
    const [daveKp] = await a.fetch('carol')
    // An Add of a client who is already a member (carol) can never be committed: refused when ordered.
    await expect(post(alice!, await propose(a, { proposalType: 'add', add: { keyPackage: daveKp!.decoded } }))).rejects.toMatchObject({ code: 'INVALID_MESSAGE' })
    await expect(post(alice!, await propose(a, { proposalType: 'psk', psk: { preSharedKeyId: { psktype: 'external', pskId: new Uint8Array(4), pskNonce: new Uint8Array(32) } } } as Proposal))).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      details: { reason: 'unsupported-proposal' }
    })
    await expect(post(alice!, await propose(a, remove(7)))).rejects.toMatchObject({ code: 'INVALID_MESSAGE', details: { reason: 'invalid-proposals' } })
    await expect(post(alice!, new Uint8Array(40).fill(9))).rejects.toMatchObject({ code: 'INVALID_MESSAGE', details: { reason: 'undecodable' } })
    const genuine = decodeMlsMessage(await propose(b, remove(c.leafIndex)), 0)![0]
    if (genuine.wireformat !== 'mls_public_message') throw new Error('not a PublicMessage')
    const badSignature = { ...genuine.publicMessage, auth: { ...genuine.publicMessage.auth, signature: genuine.publicMessage.auth.signature.map((x, i) => (i === 0 ? x ^ 1 : x)) } }
    await expect(post(bob!, encodeMlsMessage({ ...genuine, publicMessage: badSignature }))).rejects.toMatchObject({ code: 'INVALID_MESSAGE', details: { reason: 'bad-signature' } })
    expect(await post(carol!, leave)).toEqual({ seq: 2 })
    // The same proposal again is a second removal of the same leaf: refused with its own reason, so a member that
    // asks to leave while its removal is pending learns that it is (Group.leave resolves with alreadyProposed).
    await expect(post(carol!, leave)).rejects.toMatchObject({ code: 'INVALID_MESSAGE', details: { reason: 'removal-pending' } })
    await expect(post(bob!, await propose(b, remove(c.leafIndex)))).rejects.toMatchObject({ code: 'INVALID_MESSAGE', details: { reason: 'removal-pending' } })
    // A commit that references a proposal the channel never ordered is refused.
    await receive(a, await propose(b, remove(c.leafIndex)))
    const unknownRef = await a.prepareCommit()
    await expect(a.post(unknownRef)).rejects.toMatchObject({ code: 'INVALID_MESSAGE', details: { reason: 'unknown-proposal-reference' } })
    // Once a commit is accepted the pending proposals are gone: a late one for the old epoch is refused.
    const update = await b.prepareCommit()
    expect(await b.post(update)).toMatchObject({ kind: 'accepted', epoch: 2n })
    const late = await propose(a, remove(c.leafIndex))
    await expectCode(post(alice!, late), 'WRONG_EPOCH')
  })
})

describe('channel: standalone Add proposals by members', () => {
  it('orders an Add only with a KeyPackage the Directory served for its client or under its registered key; a commit by reference adds it and the Welcome reaches it', async () => {
    const h = await harness()
    const [alice, bob, dave] = await clients(h, 'alice', 'bob', 'dave')
    const { groupId, members } = await groupOf(alice!, [bob!])
    const [a, b] = members as [Member, Member]
    const post = (client: TestClient, bytes: Uint8Array) => h.services.channel.postProposal(client.clientId, groupId, bytes)
    // A KeyPackage naming dave that the Directory never handed out, under a key dave never registered: refused
    // before any commit could depend on it (an unserved KeyPackage under dave's registered key would be taken, as in a commit).
    const impostor = await dave!.keyPackage({ keys: await h.cs.signature.keygen() })
    await expect(post(alice!, await propose(a, add(impostor.publicPackage)))).rejects.toMatchObject({ code: 'INVALID_MESSAGE' })
    const [served] = await a.fetch('dave')
    const proposal = await propose(a, add(served!.decoded))
    expect(await post(alice!, proposal)).toEqual({ seq: 2 })
    // The same client twice in one epoch cannot be committed together either.
    const [again] = await b.fetch('dave')
    await expect(post(bob!, await propose(b, add(again!.decoded)))).rejects.toMatchObject({ code: 'INVALID_MESSAGE' })
    // Bob commits alice's proposal by reference, with the Welcome for dave.
    await receive(a, proposal)
    await receive(b, proposal)
    const prepared = await b.prepareCommit()
    expect(prepared.welcome).toBeDefined()
    expect(await b.post(prepared)).toMatchObject({ kind: 'accepted', epoch: 2n })
    expect((await h.store.getGroup(Buffer.from(groupId).toString('hex')))!.roster.map((e) => e.clientId)).toEqual(['alice/phone', 'bob/phone', 'dave/phone'])
    const welcomes = await h.services.channel.fetchWelcomes(dave!.clientId, 0)
    expect(welcomes).toHaveLength(1)
    const d = await GroupMember.join(dave!, welcomes[0]!.welcome, served!.keyPackage)
    await receive(a, prepared.commit)
    expect(d.state.keySchedule.epochAuthenticator).toEqual(a.state.keySchedule.epochAuthenticator)
  })
})

describe('channel: server-initiated removal (the server as an external sender)', () => {
  it('proposes the removal of a device as an external sender; the next commit includes it and the device is out', async () => {
    const probe = await harness()
    const serverKeys = await probe.cs.signature.keygen()
    const h = await harness({ externalSender: { signaturePublicKey: serverKeys.publicKey, signaturePrivateKey: serverKeys.signKey } })
    const [alice, bob, carol] = await clients(h, 'alice', 'bob', 'carol')
    // The group lists an auditor and then the server as external senders (RFC 9420 section 12.1.8.1: a list).
    const auditor = await h.cs.signature.keygen()
    const externalSenders: Extension = {
      extensionType: 'external_senders',
      extensionData: encodeExternalSenders([
        { signaturePublicKey: auditor.publicKey, credential: credentialFor('auditor/x') },
        { signaturePublicKey: serverKeys.publicKey, credential: credentialFor('server/x') }
      ])
    }
    const { groupId, members } = await groupOf(alice!, [bob!, carol!], utf8.encode('with-server'), [externalSenders])
    const [a, b, c] = members as [Member, Member, Member]
    const proposed = await h.services.channel.proposeRemoval(groupId, bob!.clientId)
    expect(proposed).toEqual({ seq: 2 })
    const [entry] = await h.services.channel.fetchEntries(carol!.clientId, groupId, 1)
    expect(entry).toMatchObject({ seq: 2, kind: 'proposal', sender: SERVER_SENDER })
    // Asked again, or for a device not in the group, the server does nothing.
    expect(await h.services.channel.proposeRemoval(groupId, bob!.clientId)).toBeUndefined()
    expect(await h.services.channel.proposeRemoval(groupId, 'dave/phone')).toBeUndefined()
    // Every member verifies it against the server's key at index 1 of the list.
    for (const member of [a, b, c]) await receive(member, entry!.message)
    const prepared = await c.prepareCommit()
    expect(await c.post(prepared)).toMatchObject({ kind: 'accepted', epoch: 2n })
    expect((await h.store.getGroup(Buffer.from(groupId).toString('hex')))!.roster.map((e) => e.clientId)).toEqual(['alice/phone', 'carol/phone'])
    await receive(a, prepared.commit)
    await receive(b, prepared.commit)
    expect(b.state.groupActiveState.kind).toBe('removedFromGroup')
    expect(a.state.keySchedule.epochAuthenticator).toEqual(c.state.keySchedule.epochAuthenticator)
  })

  it('refuses when the server has no key or the group does not list it', async () => {
    const plain = await harness()
    const [alice, bob] = await clients(plain, 'alice', 'bob')
    const { groupId } = await groupOf(alice!, [bob!])
    await expectCode(plain.services.channel.proposeRemoval(groupId, bob!.clientId), 'INVALID_STATE')
    const serverKeys = await plain.cs.signature.keygen()
    const keyed = createServices({ store: plain.store, crypto: plain.crypto, externalSender: { signaturePublicKey: serverKeys.publicKey, signaturePrivateKey: serverKeys.signKey } })
    await expectCode(keyed.channel.proposeRemoval(groupId, bob!.clientId), 'INVALID_STATE')
    await expectCode(keyed.channel.proposeRemoval(utf8.encode('nope'), bob!.clientId), 'UNKNOWN_GROUP')
  })
})

describe('channel: proposals through two instances at the same instant', () => {
  /** The store as two instances share it, holding every appendProposal until `count` of them arrived (they verified against the same state). */
  function gatedStore(store: ServerStore, count: number): ServerStore {
    let waiting: (() => void)[] = []
    let arrived = 0
    return new Proxy(store, {
      get(target, property, receiver) {
        if (property !== 'appendProposal') return Reflect.get(target, property, receiver) as unknown
        return async (...args: Parameters<ServerStore['appendProposal']>) => {
          arrived++
          if (arrived <= count) {
            await new Promise<void>((resolve) => {
              waiting.push(resolve)
              if (waiting.length === count) {
                for (const release of waiting) release()
                waiting = []
              }
            })
          }
          return target.appendProposal(...args)
        }
      }
    })
  }

  it('keeps both proposals: the store takes one, the other instance verifies again against the state that holds it', async () => {
    const h = await harness()
    const [alice, bob, carol, dave] = await clients(h, 'alice', 'bob', 'carol', 'dave')
    const { groupId, members } = await groupOf(alice!, [bob!, carol!, dave!])
    const [a, , c, d] = members as [Member, Member, Member, Member]
    const shared = gatedStore(h.store, 2)
    const first = createServices({ store: shared, crypto: h.crypto, now: () => h.clock.now })
    const second = createServices({ store: shared, crypto: h.crypto, now: () => h.clock.now })
    const carolLeaves = await propose(c, remove(c.leafIndex))
    const daveLeaves = await propose(d, remove(d.leafIndex))
    const posted = await Promise.all([
      first.channel.postProposal(carol!.clientId, groupId, carolLeaves),
      second.channel.postProposal(dave!.clientId, groupId, daveLeaves)
    ])
    expect(posted.map((p) => p.seq).sort()).toEqual([2, 3])
    // Both are in the stored public state: a commit that includes both by reference is accepted by a third instance.
    const stored = decodePublicGroupState((await h.store.getPublicState(Buffer.from(groupId).toString('hex')))!.state)
    expect(stored?.proposals?.size).toBe(2)
    await receive(a, carolLeaves)
    await receive(a, daveLeaves)
    const prepared = await a.prepareCommit()
    const third = createServices({ store: h.store, crypto: h.crypto, now: () => h.clock.now })
    const result = await third.channel.postCommit(alice!.clientId, groupId, { epoch: prepared.epoch, commit: prepared.commit })
    expect(result).toMatchObject({ kind: 'accepted', epoch: 2n })
    expect((await h.store.getGroup(Buffer.from(groupId).toString('hex')))!.roster.map((e) => e.clientId)).toEqual(['alice/phone', 'bob/phone'])
  })
})
