import { describe, expect, it } from 'vitest'
import { credentialFor, tsMlsDefaultCrypto } from '../src/index.js'
import {
  createCommit,
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  createProposal,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  generateKeyPackage,
  getCiphersuiteFromName,
  joinGroup,
  processMessage,
  type CiphersuiteImpl,
  type ClientState,
  type KeyPackage,
  type MLSMessage,
  type PrivateKeyPackage,
  type Proposal,
  type PublicMessage
} from '../src/mls.js'
import { encodeGroupContext, framedContentTbs, signFramedContentTBS, treeHashRoot } from '../src/mls-internals.js'
import { signGroupInfo } from 'ts-mls/groupInfo.js'
import { nodeEncoder, removeLeafNode } from 'ts-mls/ratchetTree.js'
import { optionalEncoder } from 'ts-mls/codec/optional.js'
import { encode } from 'ts-mls/codec/tlsEncoder.js'
import { encodeRatchetTree, varLenTypeEncoder } from '../src/ts-mls-fixes.js'
import {
  checkGroupInfo,
  decodePublicGroupState,
  encodePublicGroupState,
  publicGroupFromGroupInfo,
  verifyCommit,
  verifyMemberProposal,
  withPendingProposal,
  type PendingProposal,
  type PublicGroupState
} from '../src/public-group/index.js'

const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' as const

async function suite(): Promise<CiphersuiteImpl> {
  return tsMlsDefaultCrypto().getCiphersuiteImpl(getCiphersuiteFromName(SUITE))
}

async function keyPackage(name: string, cs: CiphersuiteImpl): Promise<{ publicPackage: KeyPackage; privatePackage: PrivateKeyPackage }> {
  return generateKeyPackage(credentialFor(`${name}/phone`), defaultCapabilities(), defaultLifetime, [], cs)
}

type Handshake = Parameters<typeof processMessage>[0]

function publicMessage(message: MLSMessage): PublicMessage {
  if (message.wireformat !== 'mls_public_message') throw new Error('not a public message')
  return message.publicMessage
}

/** Re-sign a member's commit after changing it: validly signed, but otherwise whatever `change` made it. */
async function forge(sender: ClientState, changed: PublicMessage, cs: CiphersuiteImpl): Promise<PublicMessage> {
  const signature = await signFramedContentTBS(sender.signaturePrivateKey, framedContentTbs(changed.content, 'mls_public_message', sender.groupContext), cs.signature)
  return { ...changed, auth: { ...changed.auth, signature } } as PublicMessage
}

function withCommit(message: PublicMessage, change: (c: Extract<PublicMessage['content'], { contentType: 'commit' }>['commit']) => unknown): PublicMessage {
  if (message.content.contentType !== 'commit') throw new Error('not a commit')
  return { ...message, content: { ...message.content, commit: change(message.content.commit) } } as PublicMessage
}

async function expectReason(promise: Promise<unknown>, code: string, reason: string): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code, details: { reason } })
}

/** A three-member group (alice, bob, carol) built with ts-mls, and the channel's view of it. */
async function threeMembers(cs: CiphersuiteImpl) {
  const alicePackage = await keyPackage('alice', cs)
  let alice = await createGroup(new TextEncoder().encode('public-group'), alicePackage.publicPackage, alicePackage.privatePackage, [], cs)
  const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(alice, [], cs)
  let view = await publicGroupFromGroupInfo(groupInfo, cs)
  const bobPackage = await keyPackage('bob', cs)
  const carolPackage = await keyPackage('carol', cs)
  const added = await createCommit(
    { state: alice, cipherSuite: cs },
    {
      wireAsPublicMessage: true,
      ratchetTreeExtension: true,
      extraProposals: [bobPackage, carolPackage].map((p): Proposal => ({ proposalType: 'add', add: { keyPackage: p.publicPackage } }))
    }
  )
  const verified = await verifyCommit(view, publicMessage(added.commit), cs)
  expect(verified.added.map((a) => a.leafIndex)).toEqual([1, 2])
  view = verified.next
  alice = added.newState
  if (added.welcome === undefined) throw new Error('no welcome')
  const bob = await joinGroup(added.welcome, bobPackage.publicPackage, bobPackage.privatePackage, emptyPskIndex, cs)
  const carol = await joinGroup(added.welcome, carolPackage.publicPackage, carolPackage.privatePackage, emptyPskIndex, cs)
  return { alice, bob, carol, view }
}

function expectSameState(view: PublicGroupState, member: ClientState): void {
  expect(encodeGroupContext(view.groupContext)).toEqual(encodeGroupContext(member.groupContext))
  expect(view.confirmationTag).toEqual(member.confirmationTag)
}

describe('public group: the channel view of a group', () => {
  it('follows adds, updates, removes and proposals by reference with the same GroupContext and tree hash as the members', async () => {
    const cs = await suite()
    let { alice, bob, carol, view } = await threeMembers(cs)
    expectSameState(view, alice)
    expectSameState(view, bob)
    expect(await treeHashRoot(view.ratchetTree, cs.hash)).toEqual(alice.groupContext.treeHash)

    // bob commits an update (empty commit with a path)
    const update = await createCommit({ state: bob, cipherSuite: cs }, { wireAsPublicMessage: true })
    const afterUpdate = await verifyCommit(view, publicMessage(update.commit), cs)
    expect(afterUpdate.kind).toBe('member')
    expect(afterUpdate.committerLeafIndex).toBe(1)
    view = afterUpdate.next
    bob = update.newState
    alice = (await processMessage(update.commit as Handshake, alice, emptyPskIndex, () => 'accept', cs)).newState as ClientState
    carol = (await processMessage(update.commit as Handshake, carol, emptyPskIndex, () => 'accept', cs)).newState as ClientState
    for (const member of [alice, bob, carol]) expectSameState(view, member)

    // carol proposes her own removal; alice commits it by reference
    const leave = await createProposal(carol, true, { proposalType: 'remove', remove: { removed: 2 } }, cs)
    const proposal = await verifyMemberProposal(view, publicMessage(leave.message), cs)
    const byRef = new Map<string, PendingProposal>([[proposal.ref, proposal.pending]])
    alice = (await processMessage(leave.message as Handshake, alice, emptyPskIndex, () => 'accept', cs)).newState as ClientState
    bob = (await processMessage(leave.message as Handshake, bob, emptyPskIndex, () => 'accept', cs)).newState as ClientState
    const commitLeave = await createCommit({ state: alice, cipherSuite: cs }, { wireAsPublicMessage: true })
    await expectReason(verifyCommit(view, publicMessage(commitLeave.commit), cs), 'INVALID_MESSAGE', 'unknown-proposal-reference')
    expect((await verifyCommit(view, publicMessage(commitLeave.commit), cs, { proposalsByRef: byRef })).removed.map((r) => r.leafIndex)).toEqual([2])
    // The pending proposal is part of the stored state, and commits resolve references against it.
    const withLeave = withPendingProposal(view, proposal.ref, proposal.pending)
    const reloaded = decodePublicGroupState(encodePublicGroupState(withLeave))!
    expect([...reloaded.proposals!.keys()]).toEqual([proposal.ref])
    expect(reloaded.proposals!.get(proposal.ref)).toEqual(proposal.pending)
    const afterLeave = await verifyCommit(reloaded, publicMessage(commitLeave.commit), cs)
    expect(afterLeave.next.proposals ?? new Map()).toEqual(new Map())
    expect(afterLeave.removed.map((r) => r.leafIndex)).toEqual([2])
    view = afterLeave.next
    alice = commitLeave.newState
    bob = (await processMessage(commitLeave.commit as Handshake, bob, emptyPskIndex, () => 'accept', cs)).newState as ClientState
    expectSameState(view, alice)
    expectSameState(view, bob)

    // the state survives storage
    const stored = decodePublicGroupState(encodePublicGroupState(view))
    expect(stored).toBeDefined()
    expect(encodePublicGroupState(stored as PublicGroupState)).toEqual(encodePublicGroupState(view))
    expect(decodePublicGroupState(new Uint8Array(40).fill(7))).toBeUndefined()

    // a GroupInfo of the current epoch matches; one of an older epoch does not
    await checkGroupInfo(view, await createGroupInfoWithExternalPubAndRatchetTree(alice, [], cs), cs)
    await expectReason(checkGroupInfo(view, await createGroupInfoWithExternalPubAndRatchetTree(carol, [], cs), cs), 'INVALID_MESSAGE', 'group-info-mismatch')
  })

  it("checks a GroupInfo's ratchet tree by its bytes, and refuses any other tree with a verdict", async () => {
    const cs = await suite()
    const { alice, view } = await threeMembers(cs)
    const good = await createGroupInfoWithExternalPubAndRatchetTree(alice, [], cs)
    // The same GroupInfo, re-signed by alice with another ratchet_tree extension.
    const withTree = (extensionData: Uint8Array) => {
      const { signature: _signature, ...tbs } = good
      const extensions = good.extensions.map((e) => (e.extensionType === 'ratchet_tree' ? { ...e, extensionData } : e))
      return signGroupInfo({ ...tbs, extensions }, alice.signaturePrivateKey, cs.signature)
    }
    const canonical = good.extensions.find((e) => e.extensionType === 'ratchet_tree')!.extensionData
    expect(canonical).toEqual(encodeRatchetTree(view.ratchetTree))
    await checkGroupInfo(view, good, cs)
    // The group's tree with a trailing blank node, which the canonical encoding strips (RFC 9420 section 12.4.3.3):
    // other bytes, refused with a verdict (ts-mls's decoder throws an internal error for it).
    const padded = encode(varLenTypeEncoder(optionalEncoder(nodeEncoder)))([...view.ratchetTree, undefined])
    expect(padded).not.toEqual(canonical)
    await expectReason(checkGroupInfo(view, await withTree(padded), cs), 'INVALID_MESSAGE', 'group-info-mismatch')
    // Another tree (a member's leaf blanked) with the group's context and confirmation tag: refused.
    const other = encodeRatchetTree(removeLeafNode(view.ratchetTree, 1 as never))
    await expectReason(checkGroupInfo(view, await withTree(other), cs), 'INVALID_MESSAGE', 'group-info-mismatch')
    // Bytes that are no tree at all: refused with a verdict too.
    await expectReason(checkGroupInfo(view, await withTree(new Uint8Array([0xff, 1, 2])), cs), 'INVALID_MESSAGE', 'group-info-mismatch')
    // The same bytes in a GroupInfo that creates a group's public state: refused as an invalid GroupInfo.
    await expectReason(publicGroupFromGroupInfo(await withTree(padded), cs), 'INVALID_MESSAGE', 'invalid-group-info')
  })

  it('refuses forged and invalid commits, each with its reason', async () => {
    const cs = await suite()
    const { alice, bob, view } = await threeMembers(cs)
    const update = await createCommit({ state: bob, cipherSuite: cs }, { wireAsPublicMessage: true })
    const good = publicMessage(update.commit)

    // an invalid signature
    const badSignature = { ...good, auth: { ...good.auth, signature: good.auth.signature.map((b, i) => (i === 0 ? b ^ 1 : b)) } } as PublicMessage
    await expectReason(verifyCommit(view, badSignature, cs), 'INVALID_MESSAGE', 'bad-signature')
    // signed by bob, claiming to be alice's leaf
    const asAlice = { ...good, content: { ...good.content, sender: { senderType: 'member', leafIndex: 0 } } } as PublicMessage
    await expectReason(verifyCommit(view, await forge(bob, asAlice, cs), cs), 'INVALID_MESSAGE', 'bad-signature')
    // a blank leaf as sender
    const fromBlank = { ...good, content: { ...good.content, sender: { senderType: 'member', leafIndex: 3 } } } as PublicMessage
    await expectReason(verifyCommit(view, fromBlank, cs), 'NOT_A_MEMBER', 'unknown-sender')
    // the wrong epoch
    await expectReason(verifyCommit({ ...view, groupContext: { ...view.groupContext, epoch: 5n } }, good, cs), 'WRONG_EPOCH', 'wrong-epoch')

    // proposals: Remove of a blank leaf, ReInit, PSK, an Add whose KeyPackage does not verify
    const removeBlank = await forge(bob, withCommit(good, (c) => ({ ...c, proposals: [{ proposalOrRefType: 'proposal', proposal: { proposalType: 'remove', remove: { removed: 3 } } }] })), cs)
    await expectReason(verifyCommit(view, removeBlank, cs), 'INVALID_MESSAGE', 'invalid-proposals')
    const reinit: Proposal = { proposalType: 'reinit', reinit: { groupId: new Uint8Array([1]), version: 'mls10', cipherSuite: SUITE, extensions: [] } }
    const withReinit = await forge(bob, withCommit(good, (c) => ({ ...c, path: undefined, proposals: [{ proposalOrRefType: 'proposal', proposal: reinit }] })), cs)
    await expectReason(verifyCommit(view, withReinit, cs), 'INVALID_MESSAGE', 'unsupported-proposal')
    const dave = await keyPackage('dave', cs)
    const badKeyPackage = { ...dave.publicPackage, signature: dave.publicPackage.signature.map((b, i) => (i === 0 ? b ^ 1 : b)) }
    const addBad = await forge(bob, withCommit(good, (c) => ({ ...c, proposals: [{ proposalOrRefType: 'proposal', proposal: { proposalType: 'add', add: { keyPackage: badKeyPackage } } }] })), cs)
    await expectReason(verifyCommit(view, addBad, cs), 'INVALID_MESSAGE', 'invalid-proposals')
    const removeSelf = await forge(bob, withCommit(good, (c) => ({ ...c, proposals: [{ proposalOrRefType: 'proposal', proposal: { proposalType: 'remove', remove: { removed: 1 } } }] })), cs)
    await expectReason(verifyCommit(view, removeSelf, cs), 'INVALID_MESSAGE', 'invalid-proposals')

    // update path: a leaf node whose signature does not verify; a path node that breaks the parent hash; no path where one is needed
    const badLeafSignature = await forge(
      bob,
      withCommit(good, (c) => (c.path === undefined ? c : { ...c, path: { ...c.path, leafNode: { ...c.path.leafNode, signature: c.path.leafNode.signature.map((b, i) => (i === 0 ? b ^ 1 : b)) } } })),
      cs
    )
    await expectReason(verifyCommit(view, badLeafSignature, cs), 'INVALID_MESSAGE', 'invalid-update-path')
    const otherKey = (await keyPackage('eve', cs)).publicPackage.initKey
    const badParentHash = await forge(
      bob,
      withCommit(good, (c) => (c.path === undefined ? c : { ...c, path: { ...c.path, nodes: c.path.nodes.map((n, i) => (i === 0 ? { ...n, hpkePublicKey: otherKey } : n)) } })),
      cs
    )
    await expectReason(verifyCommit(view, badParentHash, cs), 'INVALID_MESSAGE', 'invalid-update-path')
    const noPath = await forge(bob, withCommit(good, (c) => ({ ...c, path: undefined })), cs)
    await expectReason(verifyCommit(view, noPath, cs), 'INVALID_MESSAGE', 'missing-update-path')

    // the genuine commit still verifies after all that
    expect((await verifyCommit(view, good, cs)).next.groupContext.epoch).toBe(alice.groupContext.epoch + 1n)
  })
})
