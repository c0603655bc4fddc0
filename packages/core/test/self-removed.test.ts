/**
 * RFC 9420 section 12.1.3: "A Remove proposal requests that the member with
 * the leaf index removed be removed from the group." A member learns it was
 * removed from the Remove that names its leaf. ts-mls 1.6.4 instead asks
 * whether its leaf is blank after the commit's tree mutations, but an Add in
 * the same commit fills the leftmost blank leaf, so a member whose leaf was
 * refilled thinks it is still in the group and fails on the UpdatePath ("No
 * overlap between provided private keys and update path"). Core's patch
 * self-removed-by-proposal (docs/ts-mls-fixes.md) reads the Remove proposals.
 */
import { describe, expect, it } from 'vitest'
import {
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  processPublicMessage as upstreamProcessPublicMessage,
  type CiphersuiteImpl,
  type Credential,
  type PublicMessage
} from 'ts-mls'
import { createCommit, createGroup, joinGroup, processPublicMessage } from '../src/ts-mls-fixes.js'

const basic = (name: string): Credential => ({ credentialType: 'basic', identity: new TextEncoder().encode(name) })

async function member(name: string, cs: CiphersuiteImpl) {
  return generateKeyPackage(basic(name), defaultCapabilities(), defaultLifetime, [], cs)
}

/** Alice (leaf 0), Bob (leaf 1), Carol (leaf 2); Alice commits "remove Bob, add Dave" and Dave takes leaf 1. */
async function removeAndRefill(cs: CiphersuiteImpl) {
  const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((n) => member(n, cs)))
  const group = await createGroup(new TextEncoder().encode('refill'), alice!.publicPackage, alice!.privatePackage, [], cs)
  const added = await createCommit(
    { state: group, cipherSuite: cs },
    { extraProposals: [bob!, carol!].map((m) => ({ proposalType: 'add' as const, add: { keyPackage: m.publicPackage } })), ratchetTreeExtension: true }
  )
  const bobState = await joinGroup(added.welcome!, bob!.publicPackage, bob!.privatePackage, emptyPskIndex, cs)
  expect(bobState.privatePath.leafIndex).toBe(1)
  const refill = await createCommit(
    { state: added.newState, cipherSuite: cs },
    { extraProposals: [{ proposalType: 'remove', remove: { removed: 1 } }, { proposalType: 'add', add: { keyPackage: dave!.publicPackage } }], wireAsPublicMessage: true }
  )
  if (refill.commit.wireformat !== 'mls_public_message') throw new Error('expected a PublicMessage')
  return { bobState, commit: refill.commit.publicMessage as PublicMessage }
}

describe('a member removed in a commit that refills its leaf (RFC 9420 section 12.1.3)', () => {
  it('learns it was removed (ts-mls 1.6.4 fails on the UpdatePath instead)', async () => {
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
    const { bobState, commit } = await removeAndRefill(cs)
    await expect(upstreamProcessPublicMessage(bobState, commit, emptyPskIndex, cs)).rejects.toThrow(/overlap/)
    const result = await processPublicMessage(bobState, commit, emptyPskIndex, cs)
    expect(result.newState.groupActiveState.kind).toBe('removedFromGroup')
  })
})
