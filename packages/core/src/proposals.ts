/**
 * Standalone proposals (RFC 9420 section 12.1): a member proposes an Add, an
 * Update of its own leaf or a Remove (its own, to leave, or another
 * member's); the channel orders it, every member keeps it with its state
 * (ts-mls's `unappliedProposals`), and the next commit, whoever makes it,
 * includes every pending proposal by reference. A proposal of a past epoch
 * lapses with it.
 */
import type { CiphersuiteImpl, ClientState, Proposal } from 'ts-mls'
import type { AuthenticatedContent } from 'ts-mls/authenticatedContent.js'
import { checkPendingProposals, publicGroupOf, type PendingProposal } from './public-group/public-group.js'
import {
  handshakeWireFormatOf,
  privateProposalMessage,
  proposalRefKey,
  proposalRefOf,
  proposalRefOfKey,
  publicProposalMessage,
  signLeafNode
} from './mls-adapter.js'
import { toHex } from './bytes.js'
import { MessageError } from './errors.js'

/** The leaves that pending Remove proposals will remove in the next commit. */
export function pendingRemovals(state: ClientState): Set<number> {
  const leaves = new Set<number>()
  for (const pending of Object.values(state.unappliedProposals)) {
    if (pending.proposal.proposalType === 'remove') leaves.add(pending.proposal.remove.removed)
  }
  return leaves
}

/** True when the proposal with this ProposalRef waits in `state`'s epoch. */
export function hasPendingProposal(state: ClientState, reference: Uint8Array): boolean {
  return state.unappliedProposals[proposalRefKey(reference)] !== undefined
}

/** True while proposals wait for a commit (ts-mls then refuses to send application messages). */
export function hasPendingProposals(state: ClientState): boolean {
  return Object.keys(state.unappliedProposals).length > 0
}

/** A self-Remove proposal from `state`'s own leaf, as an `mls_public_message` MLSMessage. */
export function selfRemoveProposal(state: ClientState, cs: CiphersuiteImpl): Promise<Uint8Array> {
  return publicProposalMessage(state, { proposalType: 'remove', remove: { removed: state.privatePath.leafIndex } }, cs)
}

/** A proposal from `state`'s own leaf, as an `mls_public_message` MLSMessage (the sender keeps it when the channel echoes it). */
export function memberProposal(state: ClientState, proposal: Proposal, cs: CiphersuiteImpl): Promise<Uint8Array> {
  return publicProposalMessage(state, proposal, cs)
}

/**
 * Proposals from `state`'s own leaf as MLSMessages in the group's handshake
 * wire format. As PublicMessages the state is unchanged (the sender keeps
 * each proposal when the channel echoes it). As PrivateMessages the sender
 * cannot read its own messages back, so `newState` holds them already (and
 * the advanced secret tree): persist it before posting.
 */
export async function proposalMessages(
  state: ClientState,
  proposals: readonly Proposal[],
  cs: CiphersuiteImpl
): Promise<{ messages: Uint8Array[]; refs: Uint8Array[]; newState: ClientState | undefined; consumed: Uint8Array[] }> {
  if (handshakeWireFormatOf(state.groupContext.extensions) === 'public') {
    return { messages: await Promise.all(proposals.map((p) => memberProposal(state, p, cs))), refs: [], newState: undefined, consumed: [] }
  }
  let current = state
  const messages: Uint8Array[] = []
  const refs: Uint8Array[] = []
  const consumed: Uint8Array[] = []
  for (const proposal of proposals) {
    const created = await privateProposalMessage(current, proposal, cs)
    refs.push(created.ref)
    current = created.newState
    messages.push(created.message)
    consumed.push(...created.consumed)
  }
  return { messages, refs, newState: current, consumed }
}

/** The private key of this member's own pending Update: needed when another member's commit includes it. */
export interface OwnUpdateKey {
  /** The epoch the Update was proposed in. */
  readonly epoch: bigint
  /** The new leaf's HPKE public key (how the Update is recognised in a commit). */
  readonly publicKey: Uint8Array
  /** Its private key, exported. */
  readonly privateKey: Uint8Array
}

/**
 * An Update proposal of `state`'s own leaf (RFC 9420 section 12.1.2): the same
 * credential, signature key and capabilities with a fresh HPKE key pair,
 * signed as an `update` leaf node for this group and leaf. Returns the
 * proposal and the key the member keeps until a commit includes it.
 */
export async function updateProposal(state: ClientState, cs: CiphersuiteImpl): Promise<{ proposal: Proposal; key: OwnUpdateKey }> {
  const leafIndex = state.privatePath.leafIndex
  const node = state.ratchetTree[leafIndex * 2]
  if (node?.nodeType !== 'leaf') throw new MessageError('INTERNAL', 'This member has no leaf in its own tree')
  const keys = await cs.hpke.generateKeyPair()
  const publicKey = await cs.hpke.exportPublicKey(keys.publicKey)
  const privateKey = await cs.hpke.exportPrivateKey(keys.privateKey)
  const old = node.leaf
  const tbs = {
    hpkePublicKey: publicKey,
    signaturePublicKey: old.signaturePublicKey,
    credential: old.credential,
    capabilities: old.capabilities,
    leafNodeSource: 'update' as const,
    extensions: old.extensions,
    groupId: state.groupContext.groupId,
    leafIndex
  }
  const signature = await signLeafNode(state.signaturePrivateKey, tbs, cs)
  const leafNode = {
    hpkePublicKey: publicKey,
    signaturePublicKey: old.signaturePublicKey,
    credential: old.credential,
    capabilities: old.capabilities,
    leafNodeSource: 'update' as const,
    extensions: old.extensions,
    signature
  }
  return { proposal: { proposalType: 'update', update: { leafNode } }, key: { epoch: state.groupContext.epoch, publicKey, privateKey } }
}

/**
 * The state a commit by this member is created from: its own pending Update
 * proposals left out (RFC 9420 section 12.2: a committer may not include
 * them; its update path replaces its leaf anyway), and its own private
 * proposals the channel has not echoed yet (`unconfirmed`, base64 refs): a
 * proposal whose post failed is in this member's state only, and a commit
 * that referenced it would be refused by every other member.
 */
export function withoutOwnUpdates(state: ClientState, unconfirmed: ReadonlySet<string> = new Set()): ClientState {
  const own = state.privatePath.leafIndex
  const entries = Object.entries(state.unappliedProposals)
  const kept = entries.filter(([ref, p]) => !(p.proposal.proposalType === 'update' && p.senderLeafIndex === own) && !unconfirmed.has(ref))
  if (kept.length === entries.length) return state
  return { ...state, unappliedProposals: Object.fromEntries(kept) }
}

/**
 * `state` ready to process a commit that includes this member's own Update by
 * reference: the new leaf's private key in its private path (ts-mls only
 * knows the old one). Unchanged if the commit does not include it or the key
 * is not this Update's.
 */
export function withOwnUpdateKey(state: ClientState, references: readonly Uint8Array[], key: OwnUpdateKey | undefined): ClientState {
  if (key === undefined) return state
  const own = state.privatePath.leafIndex
  for (const reference of references) {
    const pending = state.unappliedProposals[proposalRefKey(reference)]
    if (pending?.proposal.proposalType !== 'update' || pending.senderLeafIndex !== own) continue
    if (toHex(pending.proposal.update.leafNode.hpkePublicKey) !== toHex(key.publicKey)) continue
    return { ...state, privatePath: { ...state.privatePath, privateKeys: { ...state.privatePath.privateKeys, [own * 2]: key.privateKey } } }
  }
  return state
}

/**
 * The proposals pending in `state`'s epoch plus the standalone proposal `pm`
 * can still be committed together (the checks of `checkPendingProposals`,
 * with the client's AuthenticationService): otherwise every member refuses
 * it alike (`INVALID_MESSAGE`, `invalid-proposals`), so the next commit
 * never depends on it. The channel makes the same check when it can read
 * the proposal.
 */
export async function checkProposalCommittable(state: ClientState, authenticated: AuthenticatedContent, cs: CiphersuiteImpl): Promise<void> {
  const content = authenticated.content
  if (content.contentType !== 'proposal') return
  const byRef = new Map<string, PendingProposal>()
  for (const [ref, pending] of Object.entries(state.unappliedProposals)) byRef.set(toHex(proposalRefOfKey(ref)), pending)
  const ref = toHex(await proposalRefOf(authenticated, cs))
  if (byRef.has(ref)) throw new MessageError('INVALID_MESSAGE', 'This proposal is already pending', { details: { reason: 'invalid-proposals' } })
  byRef.set(ref, { proposal: content.proposal, senderLeafIndex: content.sender.senderType === 'member' ? content.sender.leafIndex : undefined })
  await checkPendingProposals(publicGroupOf(state), byRef, cs, state.clientConfig.authService)
}
