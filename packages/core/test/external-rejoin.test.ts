import { describe, expect, it } from 'vitest'
import { StorageError, createExternalRejoin, credentialFor, tsMlsDefaultCrypto } from '../src/index.js'
import {
  createGroupInfoWithExternalPubAndRatchetTree,
  defaultCapabilities,
  defaultClientConfig,
  defaultLifetime,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  type ClientState,
  type Proposal,
  type PublicMessage
} from '../src/mls.js'
import { createCommit, createGroup, joinGroup, processPublicMessage } from '../src/ts-mls-fixes.js'
import { publicGroupOf, verifyCommit } from '../src/public-group/index.js'
import { decodeMlsMessage } from '../src/mls.js'

const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' as const

function publicMessage(bytes: Uint8Array): PublicMessage {
  const decoded = decodeMlsMessage(bytes, 0)?.[0]
  if (decoded?.wireformat !== 'mls_public_message') throw new Error('not a PublicMessage')
  return decoded.publicMessage
}

describe('external rejoin (RFC 9420 section 12.4.3.2)', () => {
  it('a member that lost its state replaces its leaf by an external commit; the others and the channel view follow; everyone agrees', async () => {
    const cs = await tsMlsDefaultCrypto().getCiphersuiteImpl(getCiphersuiteFromName(SUITE))
    const keys = { alice: await cs.signature.keygen(), bob: await cs.signature.keygen(), carol: await cs.signature.keygen() }
    const kp = async (name: 'alice' | 'bob' | 'carol') => generateKeyPackageWithKey(credentialFor(`${name}/phone`), defaultCapabilities(), defaultLifetime, [], keys[name], cs)
    const [alicePackage, bobPackage, carolPackage] = [await kp('alice'), await kp('bob'), await kp('carol')]
    let alice: ClientState = await createGroup(new TextEncoder().encode('rejoin'), alicePackage.publicPackage, alicePackage.privatePackage, [], cs)
    const add = (p: typeof bobPackage): Proposal => ({ proposalType: 'add', add: { keyPackage: p.publicPackage } })
    const added = await createCommit({ state: alice, cipherSuite: cs }, { extraProposals: [add(bobPackage), add(carolPackage)], ratchetTreeExtension: true })
    alice = added.newState
    let carol = await joinGroup(added.welcome!, carolPackage.publicPackage, carolPackage.privatePackage, emptyPskIndex, cs)
    // Bob joined too (leaf 1), then lost everything but his identity.
    await joinGroup(added.welcome!, bobPackage.publicPackage, bobPackage.privatePackage, emptyPskIndex, cs)
    const view = publicGroupOf(alice)
    const groupInfo = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo: await createGroupInfoWithExternalPubAndRatchetTree(alice, [], cs) })

    const rejoin = await createExternalRejoin(groupInfo, { credential: credentialFor('bob/phone'), signatureKeys: keys.bob, cs, clientConfig: defaultClientConfig, resync: true })
    expect(rejoin.epoch).toBe(1n)
    expect(rejoin.replacedLeaf).toBe(1)
    // The channel's view accepts it as an external commit that removes leaf 1 and puts bob back.
    const verified = await verifyCommit(view, publicMessage(rejoin.commit), cs)
    expect(verified.kind).toBe('external')
    expect(verified.removed.map((r) => r.leafIndex)).toEqual([1])
    expect(verified.committerLeafIndex).toBe(1)
    // Alice and carol process it and agree with bob's new state.
    alice = (await processPublicMessage(alice, publicMessage(rejoin.commit), emptyPskIndex, cs)).newState
    carol = (await processPublicMessage(carol, publicMessage(rejoin.commit), emptyPskIndex, cs)).newState
    for (const state of [alice, carol]) {
      expect(state.groupContext.epoch).toBe(2n)
      expect(state.keySchedule.epochAuthenticator).toEqual(rejoin.state.keySchedule.epochAuthenticator)
    }
    expect(verified.next.groupContext.treeHash).toEqual(alice.groupContext.treeHash)
    // The GroupInfo it brings describes the new epoch.
    const next = decodeMlsMessage(rejoin.groupInfo, 0)?.[0]
    expect(next?.wireformat === 'mls_group_info' && next.groupInfo.groupContext.epoch).toBe(2n)
  })

  it('refuses what is not a GroupInfo, and a GroupInfo whose signature does not verify', async () => {
    const cs = await tsMlsDefaultCrypto().getCiphersuiteImpl(getCiphersuiteFromName(SUITE))
    const keys = await cs.signature.keygen()
    const init = { credential: credentialFor('bob/phone'), signatureKeys: keys, cs, clientConfig: defaultClientConfig, resync: false }
    await expect(createExternalRejoin(new Uint8Array(40).fill(3), init)).rejects.toMatchObject({ code: 'INVALID_MESSAGE' })
    const own = await generateKeyPackageWithKey(credentialFor('alice/phone'), defaultCapabilities(), defaultLifetime, [], keys, cs)
    const state = await createGroup(new TextEncoder().encode('g'), own.publicPackage, own.privatePackage, [], cs)
    const info = await createGroupInfoWithExternalPubAndRatchetTree(state, [], cs)
    const forged = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo: { ...info, signature: info.signature.map((b, i) => (i === 0 ? b ^ 1 : b)) } })
    await expect(createExternalRejoin(forged, init)).rejects.toMatchObject({ code: 'INVALID_MESSAGE' })
  })

  it("an AuthenticationService that cannot reach its store: the store's error comes back (retry later), not INVALID_MESSAGE", async () => {
    const cs = await tsMlsDefaultCrypto().getCiphersuiteImpl(getCiphersuiteFromName(SUITE))
    const keys = await cs.signature.keygen()
    const own = await generateKeyPackageWithKey(credentialFor('alice/phone'), defaultCapabilities(), defaultLifetime, [], keys, cs)
    const state = await createGroup(new TextEncoder().encode('g'), own.publicPackage, own.privatePackage, [], cs)
    const groupInfo = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo: await createGroupInfoWithExternalPubAndRatchetTree(state, [], cs) })
    let calls = 0
    const unreachable = {
      ...defaultClientConfig,
      authService: {
        async validateCredential(): Promise<boolean> {
          calls++
          throw new StorageError('STORAGE_IO', 'the credential store is unreachable')
        }
      }
    }
    const init = { credential: credentialFor('bob/phone'), signatureKeys: await cs.signature.keygen(), cs, clientConfig: unreachable, resync: false }
    await expect(createExternalRejoin(groupInfo, init)).rejects.toMatchObject({ code: 'STORAGE_IO' })
    expect(calls).toBeGreaterThan(0)
    // The same GroupInfo with a reachable service builds the commit.
    expect((await createExternalRejoin(groupInfo, { ...init, clientConfig: defaultClientConfig })).epoch).toBe(0n)
  })
})
