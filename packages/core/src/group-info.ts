import { createGroupInfoWithExternalPubAndRatchetTree, encodeMlsMessage, type CiphersuiteImpl, type ClientState } from 'ts-mls'

/**
 * The signed GroupInfo of `state`'s epoch as an `mls_group_info` MLSMessage,
 * with the `ratchet_tree` and `external_pub` extensions: what the Group
 * Channel keeps as the group's public state and hands to external joiners.
 */
export async function groupInfoMessage(state: ClientState, cs: CiphersuiteImpl): Promise<Uint8Array> {
  const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(state, [], cs)
  return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo })
}
