/**
 * The commit's proposal rules (RFC 9420 section 12.2) checked with sets instead of pairwise scans (issue 11, patch
 * validation-key-sets): the same rules and errors as ts-mls 1.6.4, hostile commits first, and the Adds of one
 * commit checked and placed without a pass over the tree per Add (counted in tree reads, not timed).
 */
import { describe, expect, it } from 'vitest'
import type { CiphersuiteImpl, ClientState, KeyPackage, RatchetTree } from 'ts-mls'
import { defaultCapabilities, defaultLifetime, generateKeyPackage, getCiphersuiteFromName, getCiphersuiteImpl } from 'ts-mls'
import { applyProposals as upstreamApplyProposals, makePskIndex } from 'ts-mls/clientState.js'
import type { ProposalOrRef } from 'ts-mls/proposalOrRefType.js'
import { toLeafIndex } from 'ts-mls/treemath.js'
import { applyProposals, createGroup } from '../src/ts-mls-fixes.js'

async function suite(): Promise<CiphersuiteImpl> {
  return getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
}

async function keyPackage(name: string, cs: CiphersuiteImpl): Promise<{ publicPackage: KeyPackage; privatePackage: Awaited<ReturnType<typeof generateKeyPackage>>['privatePackage'] }> {
  const credential = { credentialType: 'basic' as const, identity: new TextEncoder().encode(name) }
  return generateKeyPackage(credential, defaultCapabilities(), defaultLifetime, [], cs)
}

async function creatorState(cs: CiphersuiteImpl): Promise<ClientState> {
  const alice = await keyPackage('alice', cs)
  return createGroup(new TextEncoder().encode('proposals'), alice.publicPackage, alice.privatePackage, [], cs)
}

const add = (keyPackage: KeyPackage): ProposalOrRef => ({ proposalOrRefType: 'proposal', proposal: { proposalType: 'add', add: { keyPackage } } })
const remove = (leaf: number): ProposalOrRef => ({ proposalOrRefType: 'proposal', proposal: { proposalType: 'remove', remove: { removed: toLeafIndex(leaf) } } })

/** Applies the proposals as committer leaf 0 with the patched and with ts-mls's function: both must agree. */
async function apply(state: ClientState, proposals: ProposalOrRef[], cs: CiphersuiteImpl): Promise<string | undefined> {
  const outcome = (promise: Promise<unknown>) =>
    promise.then(
      () => undefined,
      (error: unknown) => (error instanceof Error ? error.message : String(error))
    )
  const patched = await outcome(applyProposals(state, proposals, toLeafIndex(0), makePskIndex(state, {}), true, cs))
  const upstream = await outcome(upstreamApplyProposals(state, proposals, toLeafIndex(0), makePskIndex(state, {}), true, cs))
  expect(patched).toBe(upstream)
  return patched
}

/** The creator's state after adding bob (leaf 1) and carol (leaf 2), and bob's KeyPackage. */
async function groupOfThree(cs: CiphersuiteImpl): Promise<{ state: ClientState; bob: Awaited<ReturnType<typeof keyPackage>> }> {
  const creator = await creatorState(cs)
  const bob = await keyPackage('bob', cs)
  const carol = await keyPackage('carol', cs)
  const tree = (await applyProposals(creator, [add(bob.publicPackage), add(carol.publicPackage)], toLeafIndex(0), makePskIndex(creator, {}), true, cs)).tree
  return { state: { ...creator, ratchetTree: tree }, bob }
}

describe('proposal rules of a commit (RFC 9420 section 12.2)', () => {
  it('rejects two Adds whose KeyPackages carry the same signature key, as ts-mls does', async () => {
    const cs = await suite()
    const state = await creatorState(cs)
    const bob = await keyPackage('bob', cs)
    const carol = await keyPackage('carol', cs)
    expect(await apply(state, [add(bob.publicPackage), add(carol.publicPackage), add(bob.publicPackage)], cs)).toBe(
      'Commit cannot contain multiple Add proposals that contain KeyPackages that represent the same client'
    )
    expect(await apply(state, [add(bob.publicPackage), add(carol.publicPackage)], cs)).toBeUndefined()
  })

  it('rejects an Add of a member already in the group unless the same commit removes it', async () => {
    const cs = await suite()
    const { state, bob } = await groupOfThree(cs)
    const bobAgain = { ...bob.publicPackage }
    expect(await apply(state, [add(bobAgain)], cs)).toBe('Commit cannot contain an Add proposal for someone already in the group')
    // removing carol does not make room for bob's key; removing bob (leaf 1) does
    expect(await apply(state, [remove(2), add(bobAgain)], cs)).toBe('Commit cannot contain an Add proposal for someone already in the group')
    expect(await apply(state, [remove(1), add(bobAgain)], cs)).toBeUndefined()
  })

  it('rejects two Removes of the same leaf', async () => {
    const cs = await suite()
    const { state } = await groupOfThree(cs)
    expect(await apply(state, [remove(1), remove(2), remove(1)], cs)).toBe(
      'Commit cannot contain multiple update and/or remove proposals that apply to the same leaf'
    )
    expect(await apply(state, [remove(1), remove(2)], cs)).toBeUndefined()
  })

  it('keeps a configured KeyPackage equality (pairwise, as ts-mls)', async () => {
    const cs = await suite()
    const creator = await creatorState(cs)
    const sameIdentity = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b))
    const identityOf = (credential: KeyPackage['leafNode']['credential']) => (credential.credentialType === 'basic' ? credential.identity : new Uint8Array())
    const state: ClientState = {
      ...creator,
      clientConfig: {
        ...creator.clientConfig,
        keyPackageEqualityConfig: {
          compareKeyPackages: (a, b) => sameIdentity(identityOf(a.leafNode.credential), identityOf(b.leafNode.credential)),
          compareKeyPackageToLeafNode: (a, b) => sameIdentity(identityOf(a.leafNode.credential), identityOf(b.credential))
        }
      }
    }
    // two devices of bob (different keys, one identity) are the same client under this equality
    const bobPhone = await keyPackage('bob', cs)
    const bobLaptop = await keyPackage('bob', cs)
    expect(await apply(state, [add(bobPhone.publicPackage), add(bobLaptop.publicPackage)], cs)).toBe(
      'Commit cannot contain multiple Add proposals that contain KeyPackages that represent the same client'
    )
    const alice = await keyPackage('alice', cs)
    expect(await apply(state, [add(alice.publicPackage)], cs)).toBe('Commit cannot contain an Add proposal for someone already in the group')
  })

  it('places k Adds in one pass: each new leaf in the leftmost blank leaf, listed as unmerged above it', async () => {
    const cs = await suite()
    const creator = await creatorState(cs)
    const members = await Promise.all(['b', 'c', 'd', 'e', 'f'].map((name) => keyPackage(name, cs)))
    const first = await applyProposals(creator, members.slice(0, 4).map((m) => add(m.publicPackage)), toLeafIndex(0), makePskIndex(creator, {}), true, cs)
    // a filled root above the first leaves, a blank leaf 2 (removed member): the next Adds fill 2, 5, 6 and 7, then extend the tree
    const rootIndex = 7
    const withRoot: RatchetTree = first.tree.slice()
    withRoot[rootIndex] = { nodeType: 'parent', parent: { hpkePublicKey: new Uint8Array(32).fill(7), parentHash: new Uint8Array(), unmergedLeaves: [] } }
    withRoot[4] = undefined
    const state: ClientState = { ...creator, ratchetTree: withRoot }
    const next = [members[4]!, ...(await Promise.all(['g', 'h', 'i', 'j'].map((name) => keyPackage(name, cs))))].map((m) => add(m.publicPackage))
    const patched = await applyProposals(state, next, toLeafIndex(0), makePskIndex(state, {}), true, cs)
    const upstream = await upstreamApplyProposals(state, next, toLeafIndex(0), makePskIndex(state, {}), true, cs)
    expect(patched.tree).toEqual(upstream.tree)
    expect(patched.additionalResult).toEqual(upstream.additionalResult)
    expect(patched.tree[rootIndex]?.nodeType === 'parent' && patched.tree[rootIndex].parent.unmergedLeaves).toEqual([2, 5, 6, 7])
    expect(patched.tree.length).toBe(31)
    // the state's tree is not changed in place
    expect(withRoot[rootIndex]?.nodeType === 'parent' && withRoot[rootIndex].parent.unmergedLeaves).toEqual([])
  })

  it('checks 64 Adds against a 512-leaf tree without a pass over the tree per Add (ts-mls made three)', async () => {
    const cs = await suite()
    const creator = await creatorState(cs)
    const creatorLeaf = creator.ratchetTree[0]
    if (creatorLeaf?.nodeType !== 'leaf') throw new Error('expected the creator leaf')
    const width = 512
    const tree: RatchetTree = new Array<RatchetTree[number]>(2 * width - 1).fill(undefined)
    for (let i = 0; i < width - 64; i++) {
      // distinct keys per member; the uniqueness checks compare bytes only
      const hpkePublicKey = new Uint8Array(32).fill(1)
      const signaturePublicKey = new Uint8Array(32).fill(2)
      new DataView(hpkePublicKey.buffer).setUint32(0, i)
      new DataView(signaturePublicKey.buffer).setUint32(0, i)
      tree[2 * i] = i === 0 ? creatorLeaf : { nodeType: 'leaf', leaf: { ...creatorLeaf.leaf, hpkePublicKey, signaturePublicKey } }
    }
    const adds = await Promise.all(Array.from({ length: 64 }, (_, i) => keyPackage(`member-${i}`, cs).then((m) => add(m.publicPackage))))
    let reads = 0
    const counted = new Proxy(tree, {
      get(target, property, receiver) {
        if (typeof property === 'string' && /^\d+$/.test(property)) reads++
        return Reflect.get(target, property, receiver) as unknown
      }
    })
    const state: ClientState = { ...creator, ratchetTree: counted }
    const result = await applyProposals(state, adds, toLeafIndex(0), makePskIndex(state, {}), true, cs)
    expect(result.tree.filter((node) => node?.nodeType === 'leaf').length).toBe(width)
    // a few passes over the 1,023 nodes, not 64 x 3 of them
    expect(reads).toBeLessThan(8 * tree.length)
  })
})

describe('a Welcome to new members spread over the tree (patch welcome-path-secrets-once)', () => {
  it('gives each new member the path secret of its own common ancestor with the committer', async () => {
    const cs = await suite()
    const { createCommit, joinGroup, processPublicMessage } = await import('../src/ts-mls-fixes.js')
    const { emptyPskIndex } = await import('ts-mls')
    const alice = await keyPackage('alice', cs)
    let creator = await createGroup(new TextEncoder().encode('spread'), alice.publicPackage, alice.privatePackage, [], cs)
    const first = await Promise.all(Array.from({ length: 7 }, (_, i) => keyPackage(`first-${i}`, cs)))
    const added = await createCommit({ state: creator, cipherSuite: cs }, { extraProposals: first.map((m) => ({ proposalType: 'add' as const, add: { keyPackage: m.publicPackage } })), ratchetTreeExtension: true })
    creator = added.newState
    // the member at leaf 5 joins and commits an update, filling its own path
    let committer = await joinGroup(added.welcome!, first[4]!.publicPackage, first[4]!.privatePackage, emptyPskIndex, cs)
    const update = await createCommit({ state: committer, cipherSuite: cs }, { wireAsPublicMessage: true })
    committer = update.newState
    if (update.commit.wireformat !== 'mls_public_message') throw new Error('expected a PublicMessage')
    creator = (await processPublicMessage(creator, update.commit.publicMessage, emptyPskIndex, cs)).newState
    // it removes leaves 1, 4 and 6 and adds four members: they land at leaves 1, 4, 6 and 8, below different
    // nodes of its filtered direct path
    const next = await Promise.all(Array.from({ length: 4 }, (_, i) => keyPackage(`next-${i}`, cs)))
    const result = await createCommit(
      { state: committer, cipherSuite: cs },
      {
        extraProposals: [
          ...[1, 4, 6].map((leaf) => ({ proposalType: 'remove' as const, remove: { removed: toLeafIndex(leaf) } })),
          ...next.map((m) => ({ proposalType: 'add' as const, add: { keyPackage: m.publicPackage } }))
        ],
        ratchetTreeExtension: true
      }
    )
    const leaves = result.newState.ratchetTree.flatMap((node, index) => (node?.nodeType === 'leaf' && next.some((m) => m.publicPackage.leafNode === node.leaf) ? [index / 2] : []))
    expect(leaves).toEqual([1, 4, 6, 8])
    for (const member of next) {
      // joinGroup checks the path secret against the public keys of the tree from the common ancestor up
      const joined = await joinGroup(result.welcome!, member.publicPackage, member.privatePackage, emptyPskIndex, cs)
      expect(joined.keySchedule.epochAuthenticator).toEqual(result.newState.keySchedule.epochAuthenticator)
      expect(joined.groupContext.epoch).toBe(result.newState.groupContext.epoch)
      // the keys derived from that path secret open what is sealed to the tree's nodes above the member
      const parents = Object.entries(joined.privatePath.privateKeys).filter(([nodeIndex]) => Number(nodeIndex) % 2 === 1)
      expect(parents.length).toBeGreaterThan(0)
      for (const [nodeIndex, privateKey] of parents) {
        const node = joined.ratchetTree[Number(nodeIndex)]
        if (node?.nodeType !== 'parent') throw new Error(`no parent node at ${nodeIndex}`)
        const sealed = await cs.hpke.seal(await cs.hpke.importPublicKey(node.parent.hpkePublicKey), new Uint8Array([1, 2, 3]), new Uint8Array())
        const opened = await cs.hpke.open(await cs.hpke.importPrivateKey(privateKey), sealed.enc, sealed.ct, new Uint8Array())
        expect([...opened], `node ${nodeIndex}`).toEqual([1, 2, 3])
      }
    }
  })
})
