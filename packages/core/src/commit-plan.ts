import type { Proposal } from 'ts-mls'
import type { ClientId } from './interfaces/common.js'
import type { CommitIntent, Member } from './group-types.js'

/** What a commit for an intent proposes, or why none is needed. */
export type CommitPlan =
  | { readonly kind: 'not-needed'; readonly reason: string }
  | {
      readonly kind: 'planned'
      /** The proposals the commit carries by value (pending proposals are added by reference). */
      readonly proposals: Proposal[]
      /** Clients it adds. */
      readonly added: ClientId[]
      /** Clients it removes. */
      readonly removed: ClientId[]
    }

/**
 * Plan the commit for `intent` against the current members (a pure function:
 * re-planned on every attempt, so a retry after a lost race sees the winner's
 * roster). An add skips clients already in the group (and repeats); a remove
 * names client ids or user ids (every device of the user), never `self`, and a
 * target whose own Remove proposal is pending (it is leaving) is removed by
 * that proposal, included by reference, not by a second one.
 */
export function planCommit(intent: CommitIntent, members: readonly Member[], pendingRemovedLeaves: ReadonlySet<number>, self: ClientId): CommitPlan {
  const memberIds = new Set(members.map((m) => m.clientId))
  const proposals: Proposal[] = []
  const added: ClientId[] = []
  const removed: ClientId[] = []
  if (intent.kind === 'add') {
    for (const kp of intent.keyPackages) {
      if (memberIds.has(kp.clientId) || added.includes(kp.clientId)) continue
      proposals.push({ proposalType: 'add', add: { keyPackage: kp.keyPackage } })
      added.push(kp.clientId)
    }
    if (proposals.length === 0) return { kind: 'not-needed', reason: 'Every client is already a member' }
  } else if (intent.kind === 'remove') {
    for (const m of members) {
      if (m.clientId === self) continue
      if (intent.targets.includes(m.clientId) || intent.targets.includes(m.userId)) {
        if (!pendingRemovedLeaves.has(m.leafIndex)) proposals.push({ proposalType: 'remove', remove: { removed: m.leafIndex } })
        removed.push(m.clientId)
      }
    }
    if (removed.length === 0) return { kind: 'not-needed', reason: 'No target is a member any more' }
  }
  return { kind: 'planned', proposals, added, removed }
}
