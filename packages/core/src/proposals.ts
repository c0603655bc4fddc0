/**
 * Standalone proposals (RFC 9420 section 12.1): a member leaves by posting a
 * Remove proposal for its own leaf; the channel orders it, every member
 * keeps it with its state (ts-mls's `unappliedProposals`), and the next
 * commit, whoever makes it, includes every pending proposal by reference.
 */
import type { CiphersuiteImpl, ClientState, MLSMessage } from 'ts-mls'
import { createProposal, encodeMlsMessage } from 'ts-mls'

/** The leaves that pending Remove proposals will remove in the next commit. */
export function pendingRemovals(state: ClientState): Set<number> {
  const leaves = new Set<number>()
  for (const pending of Object.values(state.unappliedProposals)) {
    if (pending.proposal.proposalType === 'remove') leaves.add(pending.proposal.remove.removed)
  }
  return leaves
}

/** True while proposals wait for a commit (ts-mls then refuses to send application messages). */
export function hasPendingProposals(state: ClientState): boolean {
  return Object.keys(state.unappliedProposals).length > 0
}

/** A self-Remove proposal from `state`'s own leaf, as an `mls_public_message` MLSMessage. */
export async function selfRemoveProposal(state: ClientState, cs: CiphersuiteImpl): Promise<Uint8Array> {
  const created = await createProposal(state, true, { proposalType: 'remove', remove: { removed: state.privatePath.leafIndex } }, cs)
  const message: MLSMessage = created.message
  return encodeMlsMessage(message)
}
