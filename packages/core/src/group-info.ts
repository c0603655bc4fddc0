import type { CiphersuiteImpl, ClientState, PublicMessage } from 'ts-mls'
import { signedGroupInfoMessage } from './mls-adapter.js'
import type { ClientId } from './interfaces/common.js'
import { basicCredentials, type CredentialValidator } from './identity.js'

/**
 * The signed GroupInfo of `state`'s epoch as an `mls_group_info` MLSMessage,
 * with the `ratchet_tree` and `external_pub` extensions: what the Group
 * Channel keeps as the group's public state and hands to external joiners.
 */
export function groupInfoMessage(state: ClientState, cs: CiphersuiteImpl): Promise<Uint8Array> {
  return signedGroupInfoMessage(state, cs)
}

/**
 * The `postCommit` request for a pending commit: the commit, its Welcome, and
 * the committer's signed GroupInfo of the epoch the commit leads to (the
 * channel checks it against its public state and keeps it for external joins).
 */
export async function commitRequest(
  pending: { epoch: bigint; commit: Uint8Array; welcome: Uint8Array | undefined; newState: ClientState },
  cs: CiphersuiteImpl
): Promise<{ epoch: bigint; commit: Uint8Array; welcome?: Uint8Array; groupInfo: Uint8Array }> {
  return {
    epoch: pending.epoch,
    commit: pending.commit,
    ...(pending.welcome === undefined ? {} : { welcome: pending.welcome }),
    groupInfo: await groupInfoMessage(pending.newState, cs)
  }
}

/** The device an external commit (a `new_member_commit` sender) brings in: the one its UpdatePath's leaf names (read by `validator`). */
export function externalCommitter(message: PublicMessage, validator: CredentialValidator = basicCredentials): ClientId | undefined {
  const content = message.content
  if (content.sender.senderType !== 'new_member_commit' || content.contentType !== 'commit') return undefined
  const leaf = content.commit.path?.leafNode
  return leaf === undefined ? undefined : validator.clientIdFromCredential(leaf.credential)
}
