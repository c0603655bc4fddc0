/**
 * RFC 9420 section 12.1.8.1: the `external_senders` extension is a list,
 *
 *     struct { SignaturePublicKey signature_key; Credential credential; } ExternalSender;
 *     ExternalSender external_senders<V>;
 *
 * and an external sender is named by its index in that list (section 6:
 * "`sender_index`: the index of the external sender in the
 * `external_senders` extension"). ts-mls 1.6.4 decodes the extension as one
 * ExternalSender and uses the index to pick among `external_senders`
 * extensions; core carries the fix (docs/ts-mls-fixes.md).
 */
import { describe, expect, it } from 'vitest'
import {
  createCommit as upstreamCreateCommit,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  processPublicMessage as upstreamProcessPublicMessage,
  type CiphersuiteImpl,
  type ClientState,
  type Credential,
  type Extension,
  type Proposal,
  type PublicMessage
} from 'ts-mls'
import { encode } from 'ts-mls/codec/tlsEncoder.js'
import { varLenTypeEncoder } from 'ts-mls/codec/variableLength.js'
import { externalSenderEncoder, type ExternalSender } from 'ts-mls/externalSender.js'
import { protectExternalProposalPublic } from 'ts-mls/messageProtectionPublic.js'
import * as upstreamCreateCommitModule from 'ts-mls/createCommit.js'
import * as upstreamExternalProposal from 'ts-mls/externalProposal.js'
import * as upstreamMessageProtectionPublic from 'ts-mls/messageProtectionPublic.js'
import * as upstreamProcessMessages from 'ts-mls/processMessages.js'
import * as upstreamPublicMessage from 'ts-mls/publicMessage.js'
import { createCommit, createGroup, joinGroup, processPublicMessage, proposeExternal } from '../src/ts-mls-fixes.js'
import * as patchedCreateCommit from '../src/vendor/ts-mls/createCommit.js'
import * as patchedExternalProposal from '../src/vendor/ts-mls/externalProposal.js'
import * as patchedMessageProtectionPublic from '../src/vendor/ts-mls/messageProtectionPublic.js'
import * as patchedProcessMessages from '../src/vendor/ts-mls/processMessages.js'
import * as patchedPublicMessage from '../src/vendor/ts-mls/publicMessage.js'

const basic = (name: string): Credential => ({ credentialType: 'basic', identity: new TextEncoder().encode(name) })

/** The extension exactly as RFC 9420 section 12.1.8.1 defines it: a variable-length vector of ExternalSender. */
function externalSendersExtension(senders: ExternalSender[]): Extension {
  return { extensionType: 'external_senders', extensionData: encode(varLenTypeEncoder(externalSenderEncoder))(senders) }
}

function publicOf(message: { wireformat: string }): PublicMessage {
  if (message.wireformat !== 'mls_public_message') throw new Error('not a PublicMessage')
  return (message as unknown as { publicMessage: PublicMessage }).publicMessage
}

/** Alice and Bob in a group whose `external_senders` lists an auditor (index 0) and the server (index 1). */
async function groupWithExternalSenders(cs: CiphersuiteImpl) {
  const auditor = await cs.signature.keygen()
  const server = await cs.signature.keygen()
  const extension = externalSendersExtension([
    { signaturePublicKey: auditor.publicKey, credential: basic('auditor') },
    { signaturePublicKey: server.publicKey, credential: basic('server') }
  ])
  const alicePackage = await generateKeyPackage(basic('alice'), defaultCapabilities(), defaultLifetime, [], cs)
  const bobPackage = await generateKeyPackage(basic('bob'), defaultCapabilities(), defaultLifetime, [], cs)
  let alice: ClientState = await createGroup(new TextEncoder().encode('external-senders'), alicePackage.publicPackage, alicePackage.privatePackage, [extension], cs)
  const added = await createCommit({ state: alice, cipherSuite: cs }, { extraProposals: [{ proposalType: 'add', add: { keyPackage: bobPackage.publicPackage } }], ratchetTreeExtension: true })
  alice = added.newState
  const bob = await joinGroup(added.welcome!, bobPackage.publicPackage, bobPackage.privatePackage, emptyPskIndex, cs)
  return { alice, bob, auditor, server, extension }
}

const removeBob: Proposal = { proposalType: 'remove', remove: { removed: 1 } }

describe('vendored modules of the external-senders-list patch', () => {
  it('export exactly what the ts-mls modules they replace export', () => {
    const pairs: [string, object, object][] = [
      ['publicMessage', patchedPublicMessage, upstreamPublicMessage],
      ['externalProposal', patchedExternalProposal, upstreamExternalProposal],
      ['messageProtectionPublic', patchedMessageProtectionPublic, upstreamMessageProtectionPublic],
      ['createCommit', patchedCreateCommit, upstreamCreateCommitModule],
      ['processMessages', patchedProcessMessages, upstreamProcessMessages]
    ]
    for (const [name, patched, upstream] of pairs) expect(Object.keys(patched).sort(), name).toEqual(Object.keys(upstream).sort())
  })
})

describe('external_senders is a list (RFC 9420 section 12.1.8.1)', () => {
  it('a proposal from the second external sender (sender_index 1) verifies, and committing it removes the member', async () => {
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
    const { alice, bob, server } = await groupWithExternalSenders(cs)
    const proposal = publicOf(
      await proposeExternal({ groupContext: alice.groupContext } as Parameters<typeof proposeExternal>[0], removeBob, server.publicKey, server.signKey, cs)
    )
    expect(proposal.content.sender).toEqual({ senderType: 'external', senderIndex: 1 })
    // ts-mls 1.6.4 cannot verify it: it decodes the list as one sender.
    await expect(upstreamProcessPublicMessage(alice, proposal, emptyPskIndex, cs)).rejects.toThrow()

    const received = await processPublicMessage(alice, proposal, emptyPskIndex, cs)
    const bobReceived = await processPublicMessage(bob, proposal, emptyPskIndex, cs)
    const commit = await createCommit({ state: received.newState, cipherSuite: cs }, { wireAsPublicMessage: true })
    const committed = publicOf(commit.commit)
    if (committed.content.contentType !== 'commit') throw new Error('expected a commit')
    expect(committed.content.commit.proposals.map((p) => p.proposalOrRefType)).toEqual(['reference'])
    const bobAfter = await processPublicMessage(bobReceived.newState, committed, emptyPskIndex, cs)
    expect(bobAfter.newState.groupActiveState.kind).toBe('removedFromGroup')
    expect(commit.newState.ratchetTree.filter((n) => n?.nodeType === 'leaf')).toHaveLength(1)
  })

  it('a proposal signed by one external sender but naming another index is refused', async () => {
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
    const { alice, server } = await groupWithExternalSenders(cs)
    const forged = await protectExternalProposalPublic(server.signKey, alice.groupContext, new Uint8Array(), removeBob, { senderType: 'external', senderIndex: 0 }, cs)
    await expect(processPublicMessage(alice, forged.publicMessage, emptyPskIndex, cs)).rejects.toThrow()
    const unknown = await protectExternalProposalPublic(server.signKey, alice.groupContext, new Uint8Array(), removeBob, { senderType: 'external', senderIndex: 2 }, cs)
    await expect(processPublicMessage(alice, unknown.publicMessage, emptyPskIndex, cs)).rejects.toThrow()
  })

  it('a GroupContextExtensions proposal that sets a two-sender list is valid, and its senders are checked by the AuthenticationService', async () => {
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
    const { alice, bob } = await groupWithExternalSenders(cs)
    const other = await cs.signature.keygen()
    const third = await cs.signature.keygen()
    const extension = externalSendersExtension([
      { signaturePublicKey: other.publicKey, credential: basic('other') },
      { signaturePublicKey: third.publicKey, credential: basic('third') }
    ])
    const gce: Proposal = { proposalType: 'group_context_extensions', groupContextExtensions: { extensions: [extension] } }
    // ts-mls 1.6.4 refuses a valid list of two senders.
    await expect(upstreamCreateCommit({ state: alice, cipherSuite: cs }, { extraProposals: [gce], wireAsPublicMessage: true })).rejects.toThrow()
    const commit = await createCommit({ state: alice, cipherSuite: cs }, { extraProposals: [gce], wireAsPublicMessage: true })
    const bobAfter = await processPublicMessage(bob, publicOf(commit.commit), emptyPskIndex, cs)
    expect(bobAfter.newState.groupContext.extensions).toEqual([extension])
    // Each listed sender's credential goes through the AuthenticationService.
    const seen: string[] = []
    const refuseThird = {
      validateCredential: (credential: Credential) => {
        const name = credential.credentialType === 'basic' ? new TextDecoder().decode(credential.identity) : ''
        seen.push(name)
        return Promise.resolve(name !== 'third')
      }
    }
    await expect(
      createCommit({ state: { ...alice, clientConfig: { ...alice.clientConfig, authService: refuseThird } }, cipherSuite: cs }, { extraProposals: [gce], wireAsPublicMessage: true })
    ).rejects.toThrow(/external credential/)
    expect(seen).toEqual(['other', 'third'])
  })
})
