/**
 * A group as a public observer sees it (RFC 9420 section 8 and 12, modelled
 * on OpenMLS's `PublicGroup`): the ratchet tree, the GroupContext and the
 * confirmation tag of the epoch, enough to verify every commit that is sent
 * as a PublicMessage and to compute the next epoch's public state, without
 * any group secret. The Group Channel keeps one per group.
 *
 * What a public observer can check, and this module does: the commit is for
 * the group and its current epoch; the sender is a member (or, for an
 * external commit, brings its own leaf); the FramedContent signature verifies
 * with the sender's key over the current GroupContext; every proposal is
 * valid against the tree (RFC 9420 section 12.2, through ts-mls's proposal
 * validation); the UpdatePath's leaf node signature, credential and parent
 * hashes verify. What it cannot check: the membership tag and the
 * confirmation tag (they need the epoch's secrets) and whether each member can
 * decrypt its path secret.
 */
import { isOwnTrouble } from '../one-rule.js'
import type { AuthenticationService, CiphersuiteImpl, GroupContext, GroupInfo, KeyPackage, LeafNode, Proposal, ProposalOrRef, PublicMessage, RatchetTree } from 'ts-mls'
import { makeProposalRef, type AuthenticatedContent } from 'ts-mls/authenticatedContent.js'
import { nextEpochContext, validateLeafNodeCredentialAndKeyUniqueness, validateLeafNodeUpdateOrCommit } from 'ts-mls/clientState.js'
import { applyProposals, applyUpdatePath, decodeRatchetTree, encodeMlsMessage, encodeRatchetTree, ratchetTreeEncoder, ratchetTreeFromExtension, treeHashRoot, validateRatchetTree, varLenTypeEncoder } from '../ts-mls-fixes.js'
import type { ClientState } from 'ts-mls/clientState.js'
import { defaultClientConfig } from 'ts-mls/clientConfig.js'
import { contramapBufferEncoders, encode } from 'ts-mls/codec/tlsEncoder.js'
import { mapDecoders } from 'ts-mls/codec/tlsDecoder.js'
import { decodeUint32, decodeUint8, uint32Encoder, uint8Encoder } from 'ts-mls/codec/number.js'
import { decodeVarLenData, decodeVarLenType, varLenDataEncoder } from 'ts-mls/codec/variableLength.js'
import { decodeProposal, proposalEncoder } from 'ts-mls/proposal.js'
import { verifyFramedContentSignature, type FramedContentCommit } from 'ts-mls/framedContent.js'
import { decodeGroupContext, encodeGroupContext, groupContextEncoder } from 'ts-mls/groupContext.js'
import { verifyGroupInfoSignature } from 'ts-mls/groupInfo.js'
import { addLeafNode, removeLeafNode } from 'ts-mls/ratchetTree.js'
import { emptyPskIndex } from 'ts-mls/pskIndex.js'
import { leafToNodeIndex, nodeToLeafIndex, toLeafIndex } from 'ts-mls/treemath.js'
import { constantTimeEqual } from 'ts-mls/util/constantTimeCompare.js'
import { bytesToBase64 } from 'ts-mls/util/byteArray.js'
import { decodeExternalSender } from 'ts-mls/externalSender.js'
import { protectExternalProposalPublic } from 'ts-mls/messageProtectionPublic.js'
import { fromHex, toHex } from '../bytes.js'
import { MessageError, MlsToolkitError, type ErrorCode } from '../errors.js'
import { externalSendersChange } from '../server-sender.js'

/** The public state of one group in one epoch. */
export interface PublicGroupState {
  readonly groupContext: GroupContext
  readonly ratchetTree: RatchetTree
  /**
   * The confirmation tag of the commit that started the epoch (or of the
   * GroupInfo the state was created from); with the confirmed transcript hash
   * it gives the interim transcript hash the next commit builds on.
   */
  readonly confirmationTag: Uint8Array
  /**
   * Standalone proposals received in this epoch, by the hex of their
   * ProposalRef, in the order received: what a commit may include by
   * reference. Emptied by every commit. Absent means none.
   */
  readonly proposals?: ReadonlyMap<string, PendingProposal>
}

/** Why a commit or GroupInfo was refused; in `details.reason` of the error. */
export type PublicGroupRejection =
  | 'not-a-commit'
  | 'wrong-group'
  | 'wrong-epoch'
  | 'unknown-sender'
  | 'bad-signature'
  | 'unknown-proposal-reference'
  | 'unsupported-proposal'
  | 'invalid-proposals'
  /** A Remove of a leaf that a pending proposal already removes in this epoch. */
  | 'removal-pending'
  | 'missing-update-path'
  | 'invalid-update-path'
  | 'invalid-external-commit'
  | 'invalid-group-info'
  | 'group-info-mismatch'
  | 'external-senders-change'

function reject(reason: PublicGroupRejection, message: string, cause?: unknown, code: ErrorCode = 'INVALID_MESSAGE'): MessageError {
  return new MessageError(code, message, { details: { reason }, ...(cause === undefined ? {} : { cause }) })
}

/**
 * What a check that failed with `cause` throws: a verdict on the input (`reject`), unless `cause` is the checker's
 * own trouble (a store or transport failure of the AuthenticationService, an abort), which propagates unchanged so
 * the caller retries instead of refusing.
 */
function verdict(reason: PublicGroupRejection, message: string, cause: unknown): Error {
  return isOwnTrouble(cause) ? (cause as Error) : reject(reason, message, cause)
}

/** A proposal sent on its own (by a member or an external sender), waiting to be committed by reference. */
export interface PendingProposal {
  readonly proposal: Proposal
  /** The leaf of the member that sent it; `undefined` for an external sender. */
  readonly senderLeafIndex: number | undefined
}

/** What verifying a commit found, and the state it leads to. */
export interface VerifiedCommit {
  /** The public state of the next epoch. */
  readonly next: PublicGroupState
  /** `member` for a commit by a member; `external` for an external commit (RFC 9420 section 12.4.3.2). */
  readonly kind: 'member' | 'external'
  /** The committer's leaf in the next epoch (its new leaf for an external commit). */
  readonly committerLeafIndex: number
  /** The committer's leaf node before the commit; `undefined` for an external commit. */
  readonly committerLeafNode: LeafNode | undefined
  /** The committer's leaf node after the commit (its UpdatePath's leaf node if it has one). */
  readonly committerNewLeafNode: LeafNode
  /** Leaves the commit removes, with the leaf node each held. */
  readonly removed: readonly { leafIndex: number; leafNode: LeafNode }[]
  /** Leaves the commit fills by Add, with the KeyPackage of each. */
  readonly added: readonly { leafIndex: number; keyPackage: KeyPackage }[]
  /** Every proposal the commit applies (by value and by reference), in order. */
  readonly proposals: readonly PendingProposal[]
}

/** Options of `verifyCommit` and `publicGroupFromGroupInfo`. */
export interface PublicGroupOptions {
  /**
   * Validates the credential of every leaf node the commit brings (KeyPackages
   * of Adds, the UpdatePath's leaf node). Default: accept every credential.
   */
  readonly authService?: AuthenticationService
  /**
   * Proposals received on their own in this epoch, by the hex of their
   * ProposalRef (RFC 9420 section 5.2): what proposals by reference resolve
   * to. Default: the state's own `proposals`.
   */
  readonly proposalsByRef?: ReadonlyMap<string, PendingProposal>
}

const acceptAll: AuthenticationService = { validateCredential: () => Promise.resolve(true) }

function leafAt(tree: RatchetTree, leafIndex: number): LeafNode | undefined {
  const node = tree[leafToNodeIndex(toLeafIndex(leafIndex))]
  return node?.nodeType === 'leaf' ? node.leaf : undefined
}

/** The leaf node at `leafIndex`, or `undefined` for a blank or out-of-range leaf. */
export function publicGroupLeaf(state: PublicGroupState, leafIndex: number): LeafNode | undefined {
  if (!Number.isSafeInteger(leafIndex) || leafIndex < 0) return undefined
  return leafAt(state.ratchetTree, leafIndex)
}

/** Every occupied leaf of the tree, in leaf order. */
export function publicGroupMembers(state: PublicGroupState): { leafIndex: number; leafNode: LeafNode }[] {
  const out: { leafIndex: number; leafNode: LeafNode }[] = []
  state.ratchetTree.forEach((node, nodeIndex) => {
    if (node?.nodeType === 'leaf') out.push({ leafIndex: nodeIndex / 2, leafNode: node.leaf })
  })
  return out
}

/** The ts-mls client state fields that proposal validation reads, without secrets. */
function observerState(state: PublicGroupState, authService: AuthenticationService, proposalsByRef: ReadonlyMap<string, PendingProposal>): ClientState {
  const unappliedProposals: Record<string, { proposal: Proposal; senderLeafIndex: number | undefined }> = {}
  for (const [refHex, pending] of proposalsByRef) {
    unappliedProposals[bytesToBase64(fromHex(refHex))] = { proposal: pending.proposal, senderLeafIndex: pending.senderLeafIndex }
  }
  return {
    groupContext: state.groupContext,
    ratchetTree: state.ratchetTree,
    unappliedProposals,
    confirmationTag: state.confirmationTag,
    // An observer has no leaf: a leaf index past the tree is never "self-removed".
    privatePath: { leafIndex: state.ratchetTree.length + 1, privateKeys: {} },
    clientConfig: { ...defaultClientConfig, authService, lifetimeConfig: { ...defaultClientConfig.lifetimeConfig, validateLifetimeOnReceive: false } }
  } as unknown as ClientState
}

function resolveProposals(items: readonly ProposalOrRef[], committerLeaf: number | undefined, byRef: ReadonlyMap<string, PendingProposal>): PendingProposal[] {
  return items.map((item) => {
    if (item.proposalOrRefType === 'proposal') return { proposal: item.proposal, senderLeafIndex: committerLeaf }
    const found = byRef.get(toHex(item.reference))
    if (found === undefined) throw reject('unknown-proposal-reference', `The commit references proposal ${toHex(item.reference)}, which the group has not seen in this epoch`)
    return found
  })
}

/**
 * Verify a commit sent as a PublicMessage against the group's public state
 * and compute the next epoch's public state. Throws a `MessageError`
 * (`INVALID_MESSAGE`, `WRONG_EPOCH`, `NOT_A_MEMBER`) with `details.reason`.
 *
 * Refused on principle: ReInit (the toolkit does not carry a group into a new
 * one), PreSharedKey proposals (an observer cannot know the PSK, and the
 * toolkit does not use them) and custom proposal types.
 */
export async function verifyCommit(state: PublicGroupState, message: PublicMessage, cs: CiphersuiteImpl, options: PublicGroupOptions = {}): Promise<VerifiedCommit> {
  const authService = options.authService ?? acceptAll
  const byRef = options.proposalsByRef ?? state.proposals ?? new Map<string, PendingProposal>()
  const content = message.content
  if (content.contentType !== 'commit') throw reject('not-a-commit', `Expected a commit, got ${content.contentType} content`)
  if (!constantTimeEqual(content.groupId, state.groupContext.groupId)) throw reject('wrong-group', 'The commit is for another group')
  if (content.epoch !== state.groupContext.epoch) {
    throw reject('wrong-epoch', `The commit is for epoch ${content.epoch}, the group is at epoch ${state.groupContext.epoch}`, undefined, 'WRONG_EPOCH')
  }
  if (message.auth.contentType !== 'commit') throw reject('not-a-commit', 'The commit carries no confirmation tag')
  const commitContent = content as FramedContentCommit
  const sender = content.sender
  const path = content.commit.path

  let committerLeaf: number | undefined
  let signatureKey: Uint8Array
  if (sender.senderType === 'member') {
    const leaf = publicGroupLeaf(state, sender.leafIndex)
    if (leaf === undefined) throw reject('unknown-sender', `The commit is sent by leaf ${sender.leafIndex}, which is blank`, undefined, 'NOT_A_MEMBER')
    committerLeaf = sender.leafIndex
    signatureKey = leaf.signaturePublicKey
  } else if (sender.senderType === 'new_member_commit') {
    if (path === undefined) throw reject('invalid-external-commit', 'An external commit must carry an update path')
    signatureKey = path.leafNode.signaturePublicKey
  } else {
    throw reject('unknown-sender', `A commit cannot be sent by a ${sender.senderType} sender`)
  }
  const signed = await verifyFramedContentSignature(signatureKey, 'mls_public_message', content, message.auth, state.groupContext, cs.signature)
  if (!signed) throw reject('bad-signature', 'The commit signature does not verify')

  if (sender.senderType === 'new_member_commit') {
    for (const item of content.commit.proposals) {
      if (item.proposalOrRefType !== 'proposal') throw reject('invalid-external-commit', 'An external commit cannot carry proposals by reference')
    }
  }
  const proposals = resolveProposals(content.commit.proposals, committerLeaf, byRef)
  for (const { proposal } of proposals) {
    const type = proposal.proposalType
    if (type === 'reinit') throw reject('unsupported-proposal', 'ReInit is not supported')
    if (type === 'psk') throw reject('unsupported-proposal', 'PreSharedKey proposals are not supported')
    if (typeof type === 'number') throw reject('unsupported-proposal', `Custom proposal type ${type} is not supported`)
    if (type === 'external_init' && sender.senderType !== 'new_member_commit') throw reject('invalid-proposals', 'Only an external commit carries ExternalInit')
  }
  // Who may propose as an external sender (the server) is fixed when the group is created (docs/trust-model.md).
  if (externalSendersChange(state.groupContext, proposals.map((p) => p.proposal)) !== undefined) {
    throw reject('external-senders-change', "A commit may not add, replace or drop the group's external_senders")
  }
  if (sender.senderType === 'new_member_commit') {
    return verifyExternalCommit(state, commitContent, message.auth.signature, message.auth.confirmationTag, proposals, cs, authService)
  }
  const committer = committerLeaf as number
  const before = state.ratchetTree

  let applied
  try {
    applied = await applyProposals(observerState(state, authService, byRef), content.commit.proposals, toLeafIndex(committer), emptyPskIndex, false, cs)
  } catch (cause) {
    if (cause instanceof MessageError) throw cause
    throw verdict('invalid-proposals', `The commit's proposals are invalid: ${(cause as Error).message}`, cause)
  }
  if (applied.additionalResult.kind !== 'memberCommit') throw reject('invalid-proposals', 'The commit is not a member commit')
  if (applied.needsUpdatePath && path === undefined) throw reject('missing-update-path', 'The commit needs an update path (it is empty or removes or updates members)')
  const groupContext =
    applied.additionalResult.extensions.length > 0 ? { ...state.groupContext, extensions: applied.additionalResult.extensions } : state.groupContext

  let tree = applied.tree
  if (path !== undefined) {
    try {
      const leafError = await validateLeafNodeUpdateOrCommit(path.leafNode, committer, state.groupContext, authService, cs.signature)
      if (leafError !== undefined) throw leafError
      const uniqueError = await validateLeafNodeCredentialAndKeyUniqueness(applied.tree, path.leafNode, committer)
      if (uniqueError !== undefined) throw uniqueError
      tree = await applyUpdatePath(applied.tree, toLeafIndex(committer), path, cs.hash)
    } catch (cause) {
      throw verdict('invalid-update-path', `The update path is invalid: ${(cause as Error).message}`, cause)
    }
  }
  const next = await nextState(groupContext, tree, commitContent, message.auth.signature, message.auth.confirmationTag, state.confirmationTag, cs)
  const removed = proposals.flatMap(({ proposal }) => {
    if (proposal.proposalType !== 'remove') return []
    const leafNode = leafAt(before, proposal.remove.removed)
    return leafNode === undefined ? [] : [{ leafIndex: proposal.remove.removed, leafNode }]
  })
  const committerLeafNode = leafAt(before, committer) as LeafNode
  return {
    next,
    kind: 'member',
    committerLeafIndex: committer,
    committerLeafNode,
    committerNewLeafNode: leafAt(tree, committer) ?? committerLeafNode,
    removed,
    added: applied.additionalResult.addedLeafNodes.map(([leafIndex, keyPackage]) => ({ leafIndex, keyPackage })),
    proposals
  }
}

async function nextState(
  groupContext: GroupContext,
  tree: RatchetTree,
  content: FramedContentCommit,
  signature: Uint8Array,
  confirmationTag: Uint8Array,
  previousConfirmationTag: Uint8Array,
  cs: CiphersuiteImpl
): Promise<PublicGroupState> {
  const treeHash = await treeHashRoot(tree, cs.hash)
  const context = await nextEpochContext(groupContext, 'mls_public_message', content, signature, treeHash, previousConfirmationTag, cs.hash)
  return { groupContext: context, ratchetTree: tree, confirmationTag }
}

async function verifyExternalCommit(
  state: PublicGroupState,
  content: FramedContentCommit,
  signature: Uint8Array,
  confirmationTag: Uint8Array,
  proposals: readonly PendingProposal[],
  cs: CiphersuiteImpl,
  authService: AuthenticationService
): Promise<VerifiedCommit> {
  const path = content.commit.path
  if (path === undefined) throw reject('invalid-external-commit', 'An external commit must carry an update path')
  const inits = proposals.filter((p) => p.proposal.proposalType === 'external_init')
  const removes = proposals.flatMap((p) => (p.proposal.proposalType === 'remove' ? [p.proposal.remove.removed] : []))
  if (inits.length !== 1) throw reject('invalid-external-commit', 'An external commit carries exactly one ExternalInit')
  if (removes.length > 1) throw reject('invalid-external-commit', 'An external commit removes at most one leaf (its own old one)')
  const other = proposals.find((p) => p.proposal.proposalType !== 'external_init' && p.proposal.proposalType !== 'remove')
  if (other !== undefined) throw reject('invalid-external-commit', `An external commit cannot carry ${String(other.proposal.proposalType)}`)
  const removed: { leafIndex: number; leafNode: LeafNode }[] = []
  let tree = state.ratchetTree
  for (const leafIndex of removes) {
    const leafNode = publicGroupLeaf(state, leafIndex)
    if (leafNode === undefined) throw reject('invalid-external-commit', `The external commit removes leaf ${leafIndex}, which is blank`)
    removed.push({ leafIndex, leafNode })
    tree = removeLeafNode(tree, toLeafIndex(leafIndex))
  }
  let joined: RatchetTree
  let leafIndex: number
  try {
    const uniqueError = await validateLeafNodeCredentialAndKeyUniqueness(tree, path.leafNode)
    if (uniqueError !== undefined) throw uniqueError
    const [withLeaf, nodeIndex] = addLeafNode(tree, path.leafNode)
    leafIndex = nodeToLeafIndex(nodeIndex)
    const leafError = await validateLeafNodeUpdateOrCommit(path.leafNode, leafIndex, state.groupContext, authService, cs.signature)
    if (leafError !== undefined) throw leafError
    joined = await applyUpdatePath(withLeaf, toLeafIndex(leafIndex), path, cs.hash, true)
  } catch (cause) {
    throw verdict('invalid-update-path', `The external commit's update path is invalid: ${(cause as Error).message}`, cause)
  }
  const next = await nextState(state.groupContext, joined, content, signature, confirmationTag, state.confirmationTag, cs)
  return {
    next,
    kind: 'external',
    committerLeafIndex: leafIndex,
    committerLeafNode: undefined,
    committerNewLeafNode: path.leafNode,
    removed,
    added: [],
    proposals
  }
}

/**
 * The ProposalRef (hex) of a proposal sent on its own as a PublicMessage, to
 * resolve commits that include it by reference.
 */
export async function proposalRefOf(message: PublicMessage, cs: CiphersuiteImpl): Promise<string> {
  const authenticated: AuthenticatedContent = { wireformat: 'mls_public_message', content: message.content, auth: message.auth }
  return toHex(await makeProposalRef(authenticated, cs.hash))
}

/**
 * Check that the proposals pending in `byRef` can be committed together, as
 * any member's next commit includes them all by reference (RFC 9420 section
 * 12.2): at most one Remove or Update per leaf, and the Adds and Updates
 * applied by an observer that holds no leaf, so the checks that
 * depend on who commits (its own Update or Remove) are left to the
 * committer. Validates each Add's KeyPackage and each Update's leaf node
 * (signatures, credentials through `authService`, capabilities, key
 * uniqueness). Throws `INVALID_MESSAGE` / `invalid-proposals`.
 */
export async function checkPendingProposals(
  state: PublicGroupState,
  byRef: ReadonlyMap<string, PendingProposal>,
  cs: CiphersuiteImpl,
  authService: AuthenticationService = acceptAll
): Promise<void> {
  // Removes are checked by leaf here and left out of the tree application: a set that removes every leaf (two
  // members of a pair both leaving) is still ordered, as before, and no commit would apply it whole anyway.
  const removedLeaves = new Set<number>()
  const updatedLeaves = new Set<number>()
  for (const { proposal, senderLeafIndex } of byRef.values()) {
    const leaf = proposal.proposalType === 'remove' ? proposal.remove.removed : proposal.proposalType === 'update' ? senderLeafIndex : undefined
    if (leaf === undefined) continue
    if (removedLeaves.has(leaf) || updatedLeaves.has(leaf)) throw reject('invalid-proposals', `Leaf ${leaf} is already removed or updated by a pending proposal`)
    if (proposal.proposalType === 'remove') removedLeaves.add(leaf)
    else updatedLeaves.add(leaf)
  }
  const references: ProposalOrRef[] = [...byRef]
    .filter(([, p]) => p.proposal.proposalType !== 'remove')
    .map(([ref]) => ({ proposalOrRefType: 'reference', reference: fromHex(ref) }))
  if (references.length === 0) return
  try {
    await applyProposals(observerState(state, authService, byRef), references, toLeafIndex(state.ratchetTree.length + 1), emptyPskIndex, false, cs)
  } catch (cause) {
    // The toolkit's own errors (e.g. an AuthenticationService that could not reach the Directory) keep their meaning.
    if (MlsToolkitError.isInstance(cause)) throw cause
    throw reject('invalid-proposals', `The pending proposals cannot be committed together: ${(cause as Error).message}`, cause)
  }
}

/**
 * Verify a standalone proposal sent as a PublicMessage by a member of the
 * group (signature with the current GroupContext, current epoch) and return it
 * with its ProposalRef. Accepted: Add, Update and Remove (RFC 9420 sections
 * 12.1.1 to 12.1.3), each only if the proposals pending in the epoch plus
 * this one can still be committed together (`checkPendingProposals`), so a
 * hostile proposal cannot block the next honest commit. Proposals by
 * external senders are not accepted here.
 */
export async function verifyMemberProposal(
  state: PublicGroupState,
  message: PublicMessage,
  cs: CiphersuiteImpl,
  options: { readonly authService?: AuthenticationService } = {}
): Promise<{ ref: string; pending: PendingProposal }> {
  const content = message.content
  if (content.contentType !== 'proposal') throw reject('not-a-commit', `Expected a proposal, got ${content.contentType} content`)
  if (!constantTimeEqual(content.groupId, state.groupContext.groupId)) throw reject('wrong-group', 'The proposal is for another group')
  if (content.epoch !== state.groupContext.epoch) {
    throw reject('wrong-epoch', `The proposal is for epoch ${content.epoch}, the group is at epoch ${state.groupContext.epoch}`, undefined, 'WRONG_EPOCH')
  }
  if (content.sender.senderType !== 'member') throw reject('unknown-sender', `Only members may send proposals here, the sender is ${content.sender.senderType}`)
  const leaf = publicGroupLeaf(state, content.sender.leafIndex)
  if (leaf === undefined) throw reject('unknown-sender', `The proposal is sent by leaf ${content.sender.leafIndex}, which is blank`, undefined, 'NOT_A_MEMBER')
  if (!(await verifyFramedContentSignature(leaf.signaturePublicKey, 'mls_public_message', content, message.auth, state.groupContext, cs.signature))) {
    throw reject('bad-signature', 'The proposal signature does not verify')
  }
  const proposal = content.proposal
  const type = proposal.proposalType
  if (type !== 'remove' && type !== 'add' && type !== 'update') {
    throw reject('unsupported-proposal', `Standalone ${String(type)} proposals are not supported, only Add, Update and Remove`)
  }
  if (type === 'remove') {
    const removed = proposal.remove.removed
    if (publicGroupLeaf(state, removed) === undefined) throw reject('invalid-proposals', `The proposal removes leaf ${removed}, which is blank`)
    for (const pending of state.proposals?.values() ?? []) {
      if (pending.proposal.proposalType === 'remove' && pending.proposal.remove.removed === removed) {
        throw reject('removal-pending', `Leaf ${removed} is already proposed for removal in this epoch`)
      }
    }
  }
  const ref = await proposalRefOf(message, cs)
  const pending: PendingProposal = { proposal, senderLeafIndex: content.sender.leafIndex }
  if (state.proposals?.has(ref) === true) throw reject('invalid-proposals', 'This proposal is already pending in this epoch')
  const byRef = new Map(state.proposals ?? [])
  byRef.set(ref, pending)
  await checkPendingProposals(state, byRef, cs, options.authService)
  return { ref, pending }
}

/** The index of the external sender with `signaturePublicKey` in the group's `external_senders` list (RFC 9420 section 12.1.8.1), or `undefined`. */
export function externalSenderIndex(state: PublicGroupState, signaturePublicKey: Uint8Array): number | undefined {
  const extension = state.groupContext.extensions.find((e) => e.extensionType === 'external_senders')
  if (extension === undefined) return undefined
  const decoded = decodeVarLenType(decodeExternalSender)(extension.extensionData, 0)
  if (decoded === undefined || decoded[1] !== extension.extensionData.length) return undefined
  const index = decoded[0].findIndex((sender) => constantTimeEqual(sender.signaturePublicKey, signaturePublicKey))
  return index === -1 ? undefined : index
}

/**
 * A Remove proposal of `removedLeaf` by an external sender (the server),
 * signed with its key over the current GroupContext: an `mls_public_message`
 * MLSMessage with its ProposalRef and the pending proposal to keep. Throws
 * `INVALID_STATE` when the group does not list that key in `external_senders`
 * and `INVALID_MESSAGE` when the leaf is blank or already proposed for removal.
 */
export async function externalRemoveProposal(
  state: PublicGroupState,
  removedLeaf: number,
  signer: { readonly publicKey: Uint8Array; readonly signKey: Uint8Array },
  cs: CiphersuiteImpl
): Promise<{ message: Uint8Array; ref: string; pending: PendingProposal }> {
  const senderIndex = externalSenderIndex(state, signer.publicKey)
  if (senderIndex === undefined) throw new MessageError('INVALID_STATE', "The group does not list this key in its external_senders extension")
  if (publicGroupLeaf(state, removedLeaf) === undefined) throw reject('invalid-proposals', `Leaf ${removedLeaf} is blank`)
  for (const pending of state.proposals?.values() ?? []) {
    if (pending.proposal.proposalType === 'remove' && pending.proposal.remove.removed === removedLeaf) {
      throw reject('removal-pending', `Leaf ${removedLeaf} is already proposed for removal in this epoch`)
    }
  }
  const proposal: Proposal = { proposalType: 'remove', remove: { removed: removedLeaf } }
  const { publicMessage } = await protectExternalProposalPublic(signer.signKey, state.groupContext, new Uint8Array(), proposal, { senderType: 'external', senderIndex }, cs)
  const ref = await proposalRefOf(publicMessage, cs)
  const pending: PendingProposal = { proposal, senderLeafIndex: undefined }
  // E.g. a pending Update of the same leaf: the next commit could not include both.
  await checkPendingProposals(state, new Map([...(state.proposals ?? []), [ref, pending]]), cs)
  return { message: encodeMlsMessage({ version: 'mls10', wireformat: 'mls_public_message', publicMessage }), ref, pending }
}

/** `state` with one more pending proposal (as `verifyMemberProposal` returned it). */
export function withPendingProposal(state: PublicGroupState, ref: string, pending: PendingProposal): PublicGroupState {
  const proposals = new Map(state.proposals ?? [])
  proposals.set(ref, pending)
  return { ...state, proposals }
}

/**
 * The public state a GroupInfo describes, after checking it: its tree (from
 * its `ratchet_tree` extension, or `ratchetTree`) is valid (leaf signatures,
 * credentials through `authService`, parent hashes) and hashes to the
 * GroupContext's tree hash, and the GroupInfo is signed by the leaf it names.
 */
export async function publicGroupFromGroupInfo(
  groupInfo: GroupInfo,
  cs: CiphersuiteImpl,
  options: { authService?: AuthenticationService; ratchetTree?: RatchetTree } = {}
): Promise<PublicGroupState> {
  const tree = treeOfGroupInfo(groupInfo, 'invalid-group-info') ?? options.ratchetTree
  if (tree === undefined) throw reject('invalid-group-info', 'The GroupInfo carries no ratchet tree')
  const context = groupInfo.groupContext
  try {
    const error = await validateRatchetTree(tree, context, defaultClientConfig.lifetimeConfig, options.authService ?? acceptAll, context.treeHash, cs)
    if (error !== undefined) throw error
  } catch (cause) {
    throw verdict('invalid-group-info', `The GroupInfo's ratchet tree is invalid: ${(cause as Error).message}`, cause)
  }
  const state: PublicGroupState = { groupContext: context, ratchetTree: tree, confirmationTag: groupInfo.confirmationTag }
  await checkGroupInfoSignature(state, groupInfo, cs)
  return state
}

async function checkGroupInfoSignature(state: PublicGroupState, groupInfo: GroupInfo, cs: CiphersuiteImpl): Promise<void> {
  const signer = publicGroupLeaf(state, groupInfo.signer)
  if (signer === undefined) throw reject('invalid-group-info', `The GroupInfo is signed by leaf ${groupInfo.signer}, which is blank`)
  if (!(await verifyGroupInfoSignature(groupInfo, signer.signaturePublicKey, cs.signature))) {
    throw reject('invalid-group-info', 'The GroupInfo signature does not verify')
  }
}

/**
 * Check that a GroupInfo describes exactly `state`: the same GroupContext and
 * confirmation tag, signed by a member, and (if it carries one) a ratchet
 * tree with the state's tree hash.
 */
export async function checkGroupInfo(state: PublicGroupState, groupInfo: GroupInfo, cs: CiphersuiteImpl): Promise<void> {
  if (!constantTimeEqual(encodeGroupContext(groupInfo.groupContext), encodeGroupContext(state.groupContext))) {
    throw reject('group-info-mismatch', `The GroupInfo's GroupContext (epoch ${groupInfo.groupContext.epoch}) is not the group's (epoch ${state.groupContext.epoch})`)
  }
  if (!constantTimeEqual(groupInfo.confirmationTag, state.confirmationTag)) {
    throw reject('group-info-mismatch', "The GroupInfo's confirmation tag is not the epoch's")
  }
  // The tree, if it carries one: byte for byte the encoding of the group's tree (core's clients encode it so; the
  // node encodings are remembered, so this costs what changed), or else decoded and hashed like any other tree.
  const extension = groupInfo.extensions.find((e) => e.extensionType === 'ratchet_tree')
  if (extension !== undefined && !constantTimeEqual(encodeRatchetTree(state.ratchetTree), extension.extensionData)) {
    const tree = treeOfGroupInfo(groupInfo, 'group-info-mismatch')
    if (tree === undefined || !constantTimeEqual(await treeHashRoot(tree, cs.hash), state.groupContext.treeHash)) {
      throw reject('group-info-mismatch', "The GroupInfo's ratchet tree is not the group's")
    }
  }
  await checkGroupInfoSignature(state, groupInfo, cs)
}

/**
 * The ratchet tree of a GroupInfo's `ratchet_tree` extension (`undefined` without one). Bytes that are no valid
 * tree (ts-mls's decoder throws an internal error for a trailing blank node) are refused with `reason`: decoding
 * does no I/O, so the fault is the uploader's.
 */
function treeOfGroupInfo(groupInfo: GroupInfo, reason: PublicGroupRejection): RatchetTree | undefined {
  try {
    return ratchetTreeFromExtension(groupInfo)
  } catch (cause) {
    throw reject(reason, `The GroupInfo's ratchet tree does not decode: ${cause instanceof Error ? cause.message : String(cause)}`)
  }
}

/** The public state of a member's own group state (what the channel should hold for it). */
export function publicGroupOf(state: { groupContext: GroupContext; ratchetTree: RatchetTree; confirmationTag: Uint8Array }): PublicGroupState {
  return { groupContext: state.groupContext, ratchetTree: state.ratchetTree, confirmationTag: state.confirmationTag }
}

const FORMAT_VERSION = 1

interface StoredProposal {
  ref: Uint8Array
  proposal: Proposal
  /** The sender's leaf plus one; 0 for an external sender. */
  sender: number
}

const storedProposalEncoder = contramapBufferEncoders([varLenDataEncoder, proposalEncoder, uint32Encoder], (p: StoredProposal) => [p.ref, p.proposal, p.sender] as const)
const decodeStoredProposal = mapDecoders([decodeVarLenData, decodeProposal, decodeUint32], (ref, proposal, sender): StoredProposal => ({ ref, proposal, sender }))

const publicGroupStateEncoder = contramapBufferEncoders(
  [uint8Encoder, groupContextEncoder, ratchetTreeEncoder, varLenDataEncoder, varLenTypeEncoder(storedProposalEncoder)],
  (s: PublicGroupState) =>
    [
      FORMAT_VERSION,
      s.groupContext,
      s.ratchetTree,
      s.confirmationTag,
      [...(s.proposals ?? new Map<string, PendingProposal>())].map(
        ([ref, p]): StoredProposal => ({ ref: fromHex(ref), proposal: p.proposal, sender: p.senderLeafIndex === undefined ? 0 : p.senderLeafIndex + 1 })
      )
    ] as const
)

/** Encode a public state for storage (a version byte, then TLS encodings of its parts). */
export const encodePublicGroupState: (state: PublicGroupState) => Uint8Array = encode(publicGroupStateEncoder)

/** Decode what `encodePublicGroupState` wrote; `undefined` for anything else. */
export function decodePublicGroupState(bytes: Uint8Array): PublicGroupState | undefined {
  const decoded = mapDecoders(
    [decodeUint8, decodeGroupContext, decodeRatchetTree, decodeVarLenData, decodeVarLenType(decodeStoredProposal)],
    (version, groupContext, ratchetTree, confirmationTag, stored) => {
      if (version !== FORMAT_VERSION) return undefined
      const proposals = new Map(stored.map((p): [string, PendingProposal] => [toHex(p.ref), { proposal: p.proposal, senderLeafIndex: p.sender === 0 ? undefined : p.sender - 1 }]))
      return { groupContext, ratchetTree, confirmationTag, proposals }
    }
  )(bytes, 0)
  if (decoded === undefined || decoded[1] !== bytes.length) return undefined
  return decoded[0]
}
