import { expect } from 'vitest'
import { fromHex, toHex } from '@mls/core'
import { toLeafIndex, type CiphersuiteImpl, type RatchetTree } from '@mls/core/mls'
import {
  decodeRatchetTree,
  resolution,
  treeHash,
  verifyLeafNodeSignature,
  verifyLeafNodeSignatureKeyPackage,
  verifyParentHashes,
  type NodeIndex
} from '@mls/core/mls-internals'

interface TreeValidationVector {
  tree: string
  group_id: string
  tree_hashes: string[]
  resolutions: number[][]
}

/**
 * RFC 9420 tree-validation vectors: each node's resolution and tree hash, the tree's parent hashes (the check a
 * joiner runs on its Welcome's tree, section 7.9.2) and every leaf's signature.
 */
export async function checkTreeValidation(v: TreeValidationVector, cs: CiphersuiteImpl): Promise<void> {
  const tree: RatchetTree | undefined = decodeRatchetTree(fromHex(v.tree), 0)?.[0]
  if (tree === undefined) throw new Error('Could not decode tree')
  expect(tree.length, 'nodes').toBe(v.tree_hashes.length)
  for (let i = 0; i < tree.length; i++) {
    const nodeIndex = i as NodeIndex
    expect(resolution(tree, nodeIndex), `resolution of node ${i}`).toEqual(v.resolutions[i])
    expect(toHex(await treeHash(tree, nodeIndex, cs.hash)), `tree hash of node ${i}`).toBe(v.tree_hashes[i])
  }
  expect(await verifyParentHashes(tree, cs.hash), 'parent hashes').toBe(true)
  const groupId = fromHex(v.group_id)
  for (let i = 0; i < tree.length; i += 2) {
    const node = tree[i]
    if (node?.nodeType !== 'leaf') continue
    const valid =
      node.leaf.leafNodeSource === 'key_package'
        ? await verifyLeafNodeSignatureKeyPackage(node.leaf, cs.signature)
        : await verifyLeafNodeSignature(node.leaf, groupId, toLeafIndex(i / 2), cs.signature)
    expect(valid, `signature of leaf ${i / 2}`).toBe(true)
  }
}
