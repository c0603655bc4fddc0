/**
 * Recovery by external rejoin (RFC 9420 section 12.4.3.2): a device that can
 * no longer follow its group (it cannot decrypt a path secret, its state was
 * lost or is `failed`) builds an external commit from the group's GroupInfo
 * that replaces its old leaf with a fresh one, and with it a new group state.
 * The Group Channel accepts such a resync from a device in the group's roster
 * (docs/server.md). The group state machine uses it to leave `failed`
 * (recovery/resync.ts); it is exported for applications that rebuild a lost state.
 */
import type { CiphersuiteImpl, ClientConfig, ClientState, Credential } from 'ts-mls'
import { MessageError } from '../errors.js'
import { groupInfoMessage } from '../group-info.js'
import { decodeGroupInfoMessage, encodePublicMessage, externalCommit, freshLeafKeyPackage } from '../mls-adapter.js'
import { isOwnTrouble } from '../one-rule.js'

/** What a rejoining device needs. */
export interface ExternalRejoinInit {
  /** The device's credential (as in its old leaf). */
  readonly credential: Credential
  /** The device's signature key pair (the key the Directory registered). */
  readonly signatureKeys: {
    /** The public signature key. */
    readonly publicKey: Uint8Array
    /** The private signature key. */
    readonly signKey: Uint8Array
  }
  /** The primitives of the group's ciphersuite. */
  readonly cs: CiphersuiteImpl
  /** ts-mls settings (retention, padding, credential checks). */
  readonly clientConfig: ClientConfig
  /**
   * `true` (resync): remove the device's old leaf, found by its signature key,
   * in the same commit. `false`: join as a new leaf (the channel allows that
   * only under its external-join policy).
   */
  readonly resync: boolean
  /** The commit's `authenticated_data` (signed; the group uses it to say why it resyncs). */
  readonly authenticatedData?: Uint8Array
}

/** An external commit ready to post, and the state the device holds once the channel accepts it. */
export interface ExternalRejoin {
  /** The epoch the commit is for (`postCommit`'s `epoch`). */
  readonly epoch: bigint
  /** The commit, an `mls_public_message` MLSMessage with a `new_member_commit` sender. */
  readonly commit: Uint8Array
  /** The signed GroupInfo of the epoch the commit leads to (`postCommit`'s `groupInfo`). */
  readonly groupInfo: Uint8Array
  /** The device's group state after the commit. */
  readonly state: ClientState
  /** The leaf the commit removes (the device's old leaf), if any. */
  readonly replacedLeaf: number | undefined
}

/**
 * Build an external commit from `groupInfoBytes` (an `mls_group_info`
 * MLSMessage with the `ratchet_tree` and `external_pub` extensions, as the
 * channel's `fetchGroupInfo` returns). Throws `MessageError`
 * (`INVALID_MESSAGE`) for a GroupInfo that is not one, or that ts-mls refuses
 * (bad signature, invalid tree, no `external_pub`).
 */
export async function createExternalRejoin(groupInfoBytes: Uint8Array, init: ExternalRejoinInit): Promise<ExternalRejoin> {
  const groupInfo = decodeGroupInfoMessage(groupInfoBytes)
  if (groupInfo === undefined) throw new MessageError('INVALID_MESSAGE', 'Not an mls_group_info MLSMessage')
  const leaf = await freshLeafKeyPackage(init.credential, init.signatureKeys, init.cs)
  let joined
  try {
    joined = await externalCommit(groupInfo, leaf, {
      cs: init.cs,
      clientConfig: init.clientConfig,
      resync: init.resync,
      authenticatedData: init.authenticatedData
    })
  } catch (cause) {
    // The AuthenticationService's store or transport failing is own trouble (retry), not a verdict on the GroupInfo.
    if (isOwnTrouble(cause)) throw cause
    throw new MessageError('INVALID_MESSAGE', `Cannot build an external commit from this GroupInfo: ${(cause as Error).message}`, { cause })
  }
  const content = joined.publicMessage.content
  const replaced =
    content.contentType === 'commit'
      ? content.commit.proposals.flatMap((p) => (p.proposalOrRefType === 'proposal' && p.proposal.proposalType === 'remove' ? [p.proposal.remove.removed] : []))
      : []
  return {
    epoch: groupInfo.groupContext.epoch,
    commit: encodePublicMessage(joined.publicMessage),
    groupInfo: await groupInfoMessage(joined.newState, init.cs),
    state: joined.newState,
    replacedLeaf: replaced[0]
  }
}
