import { expect } from 'vitest'
import { fromHex, toHex } from '@mls/core'
import { toLeafIndex, type CiphersuiteImpl, type GroupContext, type PrivateKeyPath, type RatchetTree } from '@mls/core/mls'
import {
  applyUpdatePath,
  applyUpdatePathSecret,
  createUpdatePath,
  decodeRatchetTree,
  decodeUpdatePath,
  deriveSecret,
  getCommitSecret,
  getHpkePublicKey,
  leafToNodeIndex,
  toPrivateKeyPath,
  treeHashRoot,
  type PathSecrets
} from '@mls/core/mls-internals'
import { hpkeKeysMatch } from './keys.js'

interface TreeKemVector {
  group_id: string
  epoch: number
  confirmed_transcript_hash: string
  ratchet_tree: string
  leaves_private: {
    index: number
    encryption_priv: string
    signature_priv: string
    path_secrets: { node: number; path_secret: string }[]
  }[]
  update_paths: {
    sender: number
    update_path: string
    path_secrets: (string | null)[]
    commit_secret: string
    tree_hash_after: string
  }[]
}

export async function checkTreeKem(v: TreeKemVector, cs: CiphersuiteImpl): Promise<void> {
  const tree: RatchetTree | undefined = decodeRatchetTree(fromHex(v.ratchet_tree), 0)?.[0]
  if (tree === undefined) throw new Error('Could not decode ratchet_tree')
  const baseContext: GroupContext = {
    version: 'mls10',
    cipherSuite: cs.name,
    groupId: fromHex(v.group_id),
    epoch: BigInt(v.epoch),
    treeHash: await treeHashRoot(tree, cs.hash),
    confirmedTranscriptHash: fromHex(v.confirmed_transcript_hash),
    extensions: []
  }

  const privatePaths: PrivateKeyPath[] = []
  for (const leaf of v.leaves_private) {
    const leafNode = tree[leafToNodeIndex(toLeafIndex(leaf.index))]
    if (leafNode?.nodeType !== 'leaf') throw new Error(`No leaf at index ${leaf.index}`)
    const encryptionPriv = fromHex(leaf.encryption_priv)
    expect(await hpkeKeysMatch(leafNode.leaf.hpkePublicKey, encryptionPriv, cs.hpke), `encryption_priv of leaf ${leaf.index}`).toBe(true)
    const secrets: PathSecrets = {}
    for (const { node, path_secret } of leaf.path_secrets) {
      secrets[node] = fromHex(path_secret)
      const { publicKey } = await cs.hpke.deriveKeyPair(await deriveSecret(fromHex(path_secret), 'node', cs.kdf))
      const treeNode = tree[node]
      if (treeNode === undefined) throw new Error(`Node ${node} is blank`)
      expect(toHex(await cs.hpke.exportPublicKey(publicKey)), `public key of node ${node}`).toBe(toHex(getHpkePublicKey(treeNode)))
    }
    const path = await toPrivateKeyPath(secrets, leaf.index, cs)
    privatePaths.push({ ...path, privateKeys: { ...path.privateKeys, [leafToNodeIndex(toLeafIndex(leaf.index))]: encryptionPriv } })
  }

  for (const up of v.update_paths) {
    const sender = toLeafIndex(up.sender)
    const updatePath = decodeUpdatePath(fromHex(up.update_path), 0)?.[0]
    if (updatePath === undefined) throw new Error('Could not decode update_path')
    const treeAfter = await applyUpdatePath(tree, sender, updatePath, cs.hash)
    const treeHashAfter = await treeHashRoot(treeAfter, cs.hash)
    expect(toHex(treeHashAfter), `tree_hash_after for sender ${up.sender}`).toBe(up.tree_hash_after)
    const context = { ...baseContext, treeHash: treeHashAfter }

    const senderLeaf = v.leaves_private.find((l) => l.index === up.sender)
    if (senderLeaf === undefined) throw new Error(`No private state for sender ${up.sender}`)
    const [newTree, newPath, newSecrets] = await createUpdatePath(treeAfter, sender, context, fromHex(senderLeaf.signature_priv), cs)
    const rootSecret = newSecrets[newSecrets.length - 1]
    if (rootSecret === undefined) throw new Error('createUpdatePath returned no path secrets')
    const newCommitSecret = await deriveSecret(rootSecret.secret, 'path', cs.kdf)
    const newContext = { ...baseContext, treeHash: await treeHashRoot(newTree, cs.hash), epoch: baseContext.epoch + 1n }

    for (const pp of privatePaths) {
      if (pp.leafIndex === up.sender) continue
      const expected = up.path_secrets[pp.leafIndex]
      if (expected === null || expected === undefined) continue
      const received = await applyUpdatePathSecret(tree, pp, sender, context, updatePath, [], cs)
      expect(toHex(received.pathSecret), `path secret of leaf ${pp.leafIndex}`).toBe(expected)
      expect(toHex(await getCommitSecret(tree, received.nodeIndex, received.pathSecret, cs.kdf)), 'commit_secret').toBe(up.commit_secret)

      const own = await applyUpdatePathSecret(treeAfter, pp, sender, newContext, newPath, [], cs)
      expect(toHex(await getCommitSecret(treeAfter, own.nodeIndex, own.pathSecret, cs.kdf)), 'new commit secret').toBe(toHex(newCommitSecret))
    }
  }
}
