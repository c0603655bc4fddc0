import type { ClientState } from 'ts-mls'
import type { ClientId } from './interfaces/common.js'
import type { CredentialValidator } from './identity.js'
import type { Member } from './group-types.js'

/** Reading and adjusting ts-mls group states: members, leaves, retained epochs. */

/** The members of a state's ratchet tree, ordered by leaf index. */
export function membersOf(state: ClientState, validator: CredentialValidator): Member[] {
  const out: Member[] = []
  state.ratchetTree.forEach((node, nodeIndex) => {
    if (nodeIndex % 2 !== 0 || node?.nodeType !== 'leaf') return
    const clientId = validator.clientIdFromCredential(node.leaf.credential)
    if (clientId === undefined) return
    const { userId, deviceId } = validator.parseClientId(clientId)
    out.push({ leafIndex: nodeIndex / 2, clientId, userId, deviceId, signaturePublicKey: node.leaf.signaturePublicKey })
  })
  return out
}

/** The client at a leaf, if the leaf holds one. */
export function memberAtLeaf(tree: ClientState['ratchetTree'], leafIndex: number, validator: CredentialValidator): ClientId | undefined {
  const node = tree[leafIndex * 2]
  return node?.nodeType === 'leaf' ? validator.clientIdFromCredential(node.leaf.credential) : undefined
}

/**
 * The pending state's records of past epochs (the epoch it was created in and
 * the retained ones before it) are snapshots taken when the commit was
 * created. Messages processed since then advanced (and zeroed, as consumed)
 * the current state's secret trees, so the snapshots are stale and may share
 * zeroed buffers: take each epoch's receiver data from the current state.
 */
export function withCurrentHistory(pendingState: ClientState, current: ClientState | undefined, epoch: bigint): ClientState {
  if (current === undefined || current.groupContext.epoch !== epoch) return pendingState
  const historical = new Map(pendingState.historicalReceiverData)
  for (const [past, data] of pendingState.historicalReceiverData) {
    if (past === epoch) historical.set(past, { ...data, secretTree: current.secretTree })
    else {
      const fresher = current.historicalReceiverData.get(past)
      if (fresher !== undefined) historical.set(past, fresher)
    }
  }
  return { ...pendingState, historicalReceiverData: historical }
}

