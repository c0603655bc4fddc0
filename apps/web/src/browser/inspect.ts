import type { Group } from '@mls/core'
import { toHex } from '@mls/core'

/** One node of the ratchet tree as the inspector draws it (array representation, RFC 9420 appendix C). */
export interface TreeNodeView {
  /** Index in the array representation: leaves are even, parents odd. */
  readonly nodeIndex: number
  readonly kind: 'leaf' | 'parent' | 'blank'
  /** For leaves: the leaf index (nodeIndex / 2). */
  readonly leafIndex: number | undefined
  /** For occupied leaves: who sits there. */
  readonly clientId: string | undefined
  /** The node's HPKE public key, hex (empty for blank nodes). */
  readonly publicKey: string
}

/** What the inspector shows of a group's current state; everything read from the group itself. */
export interface GroupView {
  readonly groupIdHex: string
  readonly epoch: string
  readonly ownLeafIndex: number
  readonly epochAuthenticator: string
  readonly cursor: number
  readonly tree: readonly TreeNodeView[]
}

interface RawNode {
  readonly nodeType: 'leaf' | 'parent'
  readonly leaf?: { readonly hpkePublicKey: Uint8Array }
  readonly parent?: { readonly hpkePublicKey: Uint8Array }
}

/** Read the group's ratchet tree, epoch and authenticator. */
export function inspectGroup(group: Group): GroupView {
  const members = new Map(group.members().map((m) => [m.leafIndex, m.clientId]))
  const nodes = (group.mlsState?.ratchetTree ?? []) as readonly (RawNode | undefined)[]
  const tree = nodes.map((node, nodeIndex): TreeNodeView => {
    const isLeaf = nodeIndex % 2 === 0
    const leafIndex = isLeaf ? nodeIndex / 2 : undefined
    if (node === undefined) return { nodeIndex, kind: 'blank', leafIndex, clientId: undefined, publicKey: '' }
    const key = node.nodeType === 'leaf' ? node.leaf!.hpkePublicKey : node.parent!.hpkePublicKey
    return { nodeIndex, kind: node.nodeType, leafIndex, clientId: leafIndex === undefined ? undefined : members.get(leafIndex), publicKey: toHex(key) }
  })
  return {
    groupIdHex: group.groupIdHex,
    epoch: group.epoch.toString(),
    ownLeafIndex: group.ownLeafIndex,
    epochAuthenticator: toHex(group.epochAuthenticator()),
    cursor: group.cursor,
    tree
  }
}

/**
 * The nodes a commit refreshed: those whose public key differs between the
 * tree before and after it (the committer's leaf and filtered direct path
 * for a commit with a path; a newly added leaf counts too).
 */
export function refreshedNodes(before: readonly TreeNodeView[], after: readonly TreeNodeView[]): number[] {
  return after.filter((node) => node.kind !== 'blank' && before[node.nodeIndex]?.publicKey !== node.publicKey).map((node) => node.nodeIndex)
}

/** Level of a node in the array representation: leaves 0, their parents 1, ... */
export function nodeLevel(nodeIndex: number): number {
  let level = 0
  while (((nodeIndex >> level) & 1) === 1) level++
  return level
}
