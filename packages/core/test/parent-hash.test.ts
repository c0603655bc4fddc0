/**
 * Parent-hash verification on join (RFC 9420 section 7.9.2) in every tree shape (issue 11, patch
 * parent-hash-linear). Hostile trees first: a tampered parent hash, a parent node no chain covers and wrong
 * unmerged_leaves are rejected, with the same verdict as ts-mls 1.6.4's own check, on synthetic trees and on
 * every tree of the RFC 9420 tree-validation vectors with each of its parent hashes and unmerged lists tampered.
 * The sparse shape that made a 10,000-member join take minutes (one filled path, every other leaf below it) is
 * checked by counting node reads, not by timing.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import type { CiphersuiteImpl, RatchetTree } from 'ts-mls'
import { defaultCapabilities, defaultLifetime, generateKeyPackage, getCiphersuiteFromName, getCiphersuiteImpl } from 'ts-mls'
import type { LeafNode } from 'ts-mls/leafNode.js'
import { calculateParentHash, verifyParentHashes as upstreamVerifyParentHashes } from 'ts-mls/parentHash.js'
import { addLeafNode, decodeRatchetTree } from 'ts-mls/ratchetTree.js'
import { directPath, toLeafIndex, toNodeIndex, leafToNodeIndex } from 'ts-mls/treemath.js'
import { verifyParentHashes } from '../src/ts-mls-fixes.js'

type Node = NonNullable<RatchetTree[number]>

async function suiteAndLeaf(): Promise<{ cs: CiphersuiteImpl; leaf: LeafNode }> {
  const cs = await getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
  const credential = { credentialType: 'basic' as const, identity: new TextEncoder().encode('alice') }
  const keys = await generateKeyPackage(credential, defaultCapabilities(), defaultLifetime, [], cs)
  return { cs, leaf: keys.publicPackage.leafNode }
}

/** A distinct 32-byte public key per node (parent-hash checks do not use the key as a key). */
function keyFor(nodeIndex: number): Uint8Array {
  const key = new Uint8Array(32)
  new DataView(key.buffer).setUint32(0, nodeIndex + 1)
  key[31] = 0x5a
  return key
}

/**
 * `leaves` members in a tree of `width` leaves; leaf `committer`'s direct path is filled by a commit (its leaf
 * and every node on the path carry valid parent hashes), every other member joined by KeyPackage and no other
 * parent is filled: the shape right after a big Add, or after the creator's first commit.
 */
async function filledPathTree(cs: CiphersuiteImpl, leaf: LeafNode, leaves: number, width: number, committer = 0): Promise<RatchetTree> {
  const tree: RatchetTree = new Array<RatchetTree[number]>(2 * width - 1).fill(undefined)
  for (let i = 0; i < leaves; i++) tree[2 * i] = { nodeType: 'leaf', leaf }
  const committerNode = leafToNodeIndex(toLeafIndex(committer))
  const path = directPath(committerNode, width)
  for (const nodeIndex of path) {
    tree[nodeIndex] = { nodeType: 'parent', parent: { hpkePublicKey: keyFor(nodeIndex), parentHash: new Uint8Array(), unmergedLeaves: [] } }
  }
  // Top down: a node's parent hash covers its (final) parent and its sibling's subtree, which holds no path node.
  for (const nodeIndex of path.slice(0, -1).reverse()) {
    const [parentHash] = await calculateParentHash(tree, nodeIndex, cs.hash)
    const node = tree[nodeIndex] as Extract<Node, { nodeType: 'parent' }>
    tree[nodeIndex] = { nodeType: 'parent', parent: { ...node.parent, parentHash } }
  }
  const [leafParentHash] = await calculateParentHash(tree, committerNode, cs.hash)
  tree[committerNode] = { nodeType: 'leaf', leaf: { ...leaf, leafNodeSource: 'commit', parentHash: leafParentHash } as LeafNode }
  return tree
}

function withParent(tree: RatchetTree, nodeIndex: number, change: (parent: Extract<Node, { nodeType: 'parent' }>['parent']) => Extract<Node, { nodeType: 'parent' }>['parent']): RatchetTree {
  const node = tree[nodeIndex]
  if (node?.nodeType !== 'parent') throw new Error(`no parent node at ${nodeIndex}`)
  const copy = tree.slice()
  copy[nodeIndex] = { nodeType: 'parent', parent: change(node.parent) }
  return copy
}

function flipLastByte(bytes: Uint8Array): Uint8Array {
  const copy = bytes.slice()
  copy[copy.length - 1] = (copy[copy.length - 1] ?? 0) ^ 0x01
  return copy
}

/** Both verdicts, which must agree: the patched check decides exactly as ts-mls's does. */
async function verdicts(tree: RatchetTree, cs: CiphersuiteImpl): Promise<boolean> {
  const patched = await verifyParentHashes(tree, cs.hash)
  const upstream = await upstreamVerifyParentHashes(tree, cs.hash)
  expect(patched).toBe(upstream)
  return patched
}

describe('parent-hash verification on join (RFC 9420 section 7.9.2)', () => {
  it('rejects a tree with one tampered parent hash, on the path or on the committer leaf', async () => {
    const { cs, leaf } = await suiteAndLeaf()
    const tree = await filledPathTree(cs, leaf, 13, 16, 5)
    expect(await verdicts(tree, cs)).toBe(true)
    for (const nodeIndex of directPath(toNodeIndex(10), 16).slice(0, -1)) {
      expect(await verdicts(withParent(tree, nodeIndex, (p) => ({ ...p, parentHash: flipLastByte(p.parentHash) })), cs), `node ${nodeIndex}`).toBe(false)
    }
    const committer = tree[10]
    if (committer?.nodeType !== 'leaf' || committer.leaf.leafNodeSource !== 'commit') throw new Error('expected the committer leaf')
    const tamperedLeaf = tree.slice()
    tamperedLeaf[10] = { nodeType: 'leaf', leaf: { ...committer.leaf, parentHash: flipLastByte(committer.leaf.parentHash) } }
    expect(await verdicts(tamperedLeaf, cs)).toBe(false)
  })

  it('rejects a tree with a parent node that no chain covers, and one covered twice', async () => {
    const { cs, leaf } = await suiteAndLeaf()
    const tree = await filledPathTree(cs, leaf, 16, 16, 0)
    // node 5 (above leaves 2 and 3) is off leaf 0's path: nothing links to it
    const uncovered = tree.slice()
    uncovered[5] = { nodeType: 'parent', parent: { hpkePublicKey: keyFor(5), parentHash: new Uint8Array(), unmergedLeaves: [] } }
    expect(await verdicts(uncovered, cs)).toBe(false)
    // leaves 2 and 3 (node 5 above them is blank) both carry a valid parent hash for node 3: covered twice
    const [secondHash] = await calculateParentHash(tree, toNodeIndex(4), cs.hash)
    const twice = tree.slice()
    twice[4] = { nodeType: 'leaf', leaf: { ...leaf, leafNodeSource: 'commit', parentHash: secondHash } as LeafNode }
    expect(await verdicts(twice, cs)).toBe(true)
    twice[6] = twice[4]
    expect(await verdicts(twice, cs)).toBe(false)
  })

  it('accepts leaves added after the commit as unmerged leaves, and rejects wrong unmerged_leaves', async () => {
    const { cs, leaf } = await suiteAndLeaf()
    let tree = await filledPathTree(cs, leaf, 11, 16, 0)
    // two members join by Add without a path: every non-blank node above them lists them
    for (let i = 0; i < 2; i++) tree = addLeafNode(tree, { ...leaf, hpkePublicKey: keyFor(1000 + i) })[0]
    const root = 15
    const listing = tree[root]
    expect(listing?.nodeType === 'parent' && listing.parent.unmergedLeaves).toEqual([11, 12])
    expect(await verdicts(tree, cs)).toBe(true)
    // an unmerged leaf left out, one too many (an original member), one duplicated, one swapped for another
    expect(await verdicts(withParent(tree, root, (p) => ({ ...p, unmergedLeaves: [11] })), cs)).toBe(false)
    expect(await verdicts(withParent(tree, root, (p) => ({ ...p, unmergedLeaves: [10, 11, 12] })), cs)).toBe(false)
    expect(await verdicts(withParent(tree, root, (p) => ({ ...p, unmergedLeaves: [11, 13] })), cs)).toBe(false)
    expect(await verdicts(withParent(tree, root, (p) => ({ ...p, unmergedLeaves: [11, 12, 12] })), cs)).toBe(true)
  })

  it('checks the sparse shapes of a big Add in O(n log n) node reads (ts-mls read O(n^2))', async () => {
    const { cs, leaf } = await suiteAndLeaf()
    const width = 1024
    const countReads = async (tree: RatchetTree): Promise<number> => {
      let reads = 0
      const counted = new Proxy(tree, {
        get(target, property, receiver) {
          if (typeof property === 'string' && /^\d+$/.test(property)) reads++
          return Reflect.get(target, property, receiver) as unknown
        }
      })
      expect(await verifyParentHashes(counted, cs.hash)).toBe(true)
      return reads
    }
    // every member below the creator's filled path (the creator added everyone in one commit, with its path)
    const afterBigAdd = await filledPathTree(cs, leaf, width, width, 0)
    // log2(2047) is 11: a bound of 24 reads per node leaves room for constant factors, not for n reads per leaf
    expect(await countReads(afterBigAdd)).toBeLessThan(24 * afterBigAdd.length)
    // half the members added later without a path: the root lists 512 unmerged leaves
    let withUnmerged = await filledPathTree(cs, leaf, width / 2, width, 0)
    for (let i = 0; i < width / 2; i++) withUnmerged = addLeafNode(withUnmerged, { ...leaf, hpkePublicKey: keyFor(10_000 + i) })[0]
    expect(await countReads(withUnmerged)).toBeLessThan(24 * withUnmerged.length)
  })
})

function vectorsDir(): string | undefined {
  const candidates = [process.env['MLS_TEST_VECTORS'], join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'shared', 'test-vectors')]
  return candidates.find((dir): dir is string => dir !== undefined && existsSync(join(dir, 'tree-validation.json')))
}

describe('the RFC 9420 tree-validation trees, tampered', () => {
  const dir = vectorsDir()
  it('every tree verifies, and each tampered parent hash or unmerged list gets ts-mls 1.6.4 verdict', async () => {
    expect(dir, 'RFC 9420 test vectors (../shared/test-vectors or $MLS_TEST_VECTORS)').toBeDefined()
    const { cs } = await suiteAndLeaf()
    const vectors = (JSON.parse(readFileSync(join(dir!, 'tree-validation.json'), 'utf8')) as { cipher_suite: number; tree: string }[]).filter(
      (v) => v.cipher_suite === 1
    )
    expect(vectors.length).toBeGreaterThan(0)
    let rejected = 0
    let withUnmerged = 0
    for (const vector of vectors) {
      const tree = decodeRatchetTree(Uint8Array.from(Buffer.from(vector.tree, 'hex')), 0)?.[0]
      if (tree === undefined) throw new Error('could not decode a vector tree')
      expect(await verdicts(tree, cs)).toBe(true)
      for (let nodeIndex = 0; nodeIndex < tree.length; nodeIndex++) {
        const node = tree[nodeIndex]
        if (node?.nodeType === 'parent') {
          if (!(await verdicts(withParent(tree, nodeIndex, (p) => ({ ...p, parentHash: flipLastByte(p.parentHash) })), cs))) rejected++
          const unmerged = node.parent.unmergedLeaves
          if (unmerged.length > 0) {
            withUnmerged++
            await verdicts(withParent(tree, nodeIndex, (p) => ({ ...p, unmergedLeaves: unmerged.slice(1) })), cs)
          }
          await verdicts(withParent(tree, nodeIndex, (p) => ({ ...p, unmergedLeaves: [...unmerged, 0] })), cs)
        } else if (node?.nodeType === 'leaf' && node.leaf.leafNodeSource === 'commit') {
          const copy = tree.slice()
          copy[nodeIndex] = { nodeType: 'leaf', leaf: { ...node.leaf, parentHash: flipLastByte(node.leaf.parentHash) } }
          if (!(await verdicts(copy, cs))) rejected++
        }
      }
    }
    expect(rejected).toBeGreaterThan(0)
    expect(withUnmerged).toBeGreaterThan(0)
  })
})
