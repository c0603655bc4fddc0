/**
 * Leaving `failed`: a member that cannot follow its group any more (a commit
 * it alone cannot process, e.g. a path secret it cannot decrypt) rejoins by
 * an external commit that replaces its old leaf (RFC 9420 section 12.4.3.2),
 * built from the GroupInfo the channel keeps for the current epoch. The
 * reason travels signed in the commit's `authenticated_data`, so every other
 * member can say who resynced and why.
 */
import type { CiphersuiteImpl, ClientConfig, ClientState, PublicMessage } from 'ts-mls'
import type { GroupChannelClient } from '../interfaces/channel.js'
import { createExternalRejoin } from './external-rejoin.js'

/** Longest reason kept from a resync commit (bytes of UTF-8). */
const MAX_REASON_BYTES = 200

/** The outcome of one recovery attempt. */
export type ResyncOutcome =
  | { readonly kind: 'rejoined'; readonly state: ClientState; readonly seq: number; readonly commit: Uint8Array }
  /** The channel holds no GroupInfo for its current epoch (its last commit came without one); retry after the next commit. */
  | { readonly kind: 'no-group-info' }
  /** Another commit won every attempt; retry later. */
  | { readonly kind: 'conflict' }

/** The reason as it goes into `authenticated_data`. */
export function encodeResyncReason(reason: string): Uint8Array {
  const bytes = new TextEncoder().encode(reason)
  return bytes.length <= MAX_REASON_BYTES ? bytes : bytes.slice(0, MAX_REASON_BYTES)
}

/** The reason a resync commit gives (its `authenticated_data`), as text; empty when it gives none. */
export function resyncReason(message: PublicMessage): string {
  const data = message.content.authenticatedData
  return new TextDecoder('utf-8', { fatal: false }).decode(data.length <= MAX_REASON_BYTES ? data : data.slice(0, MAX_REASON_BYTES))
}

/**
 * Rejoin `groupId` as the device of `state` (its old, still persisted state:
 * it gives the credential, the signature key pair and the leaf to replace).
 * Up to `attempts` tries: each fetches the channel's GroupInfo, builds the
 * resync commit and posts it; a conflict (another commit got in first) means
 * a newer GroupInfo, so it tries again. Service refusals are thrown.
 */
export async function resync(
  state: ClientState,
  deps: { readonly groupId: Uint8Array; readonly channel: GroupChannelClient; readonly cs: CiphersuiteImpl; readonly clientConfig: ClientConfig },
  reason: string,
  attempts: number
): Promise<ResyncOutcome> {
  const ownLeaf = state.ratchetTree[state.privatePath.leafIndex * 2]
  if (ownLeaf?.nodeType !== 'leaf') throw new Error('The state holds no own leaf')
  for (let attempt = 0; attempt < attempts; attempt++) {
    const info = await deps.channel.fetchGroupInfo(deps.groupId)
    if (info === undefined) return { kind: 'no-group-info' }
    const rejoin = await createExternalRejoin(info.groupInfo, {
      credential: ownLeaf.leaf.credential,
      signatureKeys: { publicKey: ownLeaf.leaf.signaturePublicKey, signKey: state.signaturePrivateKey },
      cs: deps.cs,
      clientConfig: deps.clientConfig,
      resync: true,
      authenticatedData: encodeResyncReason(reason)
    })
    const posted = await deps.channel.postCommit(deps.groupId, { epoch: rejoin.epoch, commit: rejoin.commit, groupInfo: rejoin.groupInfo })
    if (posted.kind === 'accepted') return { kind: 'rejoined', state: rejoin.state, seq: posted.seq, commit: rejoin.commit }
  }
  return { kind: 'conflict' }
}
