import type { ClientState, PrivateMessage, PublicMessage } from 'ts-mls'
import { resyncReason } from './recovery/resync.js'
import type { StoreDurability, StoreOperation } from './interfaces/client-store.js'
import { durabilityFor } from './group-persistence.js'
import type { ClientId } from './interfaces/common.js'
import { checkExternalSender, externalSendersChange } from './server-sender.js'
import { MessageError, MlsToolkitError, UsageError } from './errors.js'
import { equalBytes } from './bytes.js'
import { checkProposalCommittable, hasPendingProposal, withOwnUpdateKey, type OwnUpdateKey } from './proposals.js'
import type { CredentialValidator } from './identity.js'
import { decodeRecord, storeKeys } from './records.js'
import type { Emitter } from './emitter.js'
import { externalCommitter } from './group-info.js'
import { wrapMlsFailure } from './one-rule.js'
import {
  decryptPrivateMessage,
  handshakeWireFormatOf,
  memberAtLeaf,
  membersOf,
  openPrivateHandshake,
  processHandshake,
  processPrivateHandshake,
  verifyPublicMessage,
  zeroAll
} from './mls-adapter.js'
import type { AuthenticatedContent } from 'ts-mls/authenticatedContent.js'
import { decodeMessage } from './group-records.js'
import { advanced, commitApplied, type CommittingState, type GroupState, type LiveState } from './group-state.js'
import type { GroupComponents } from './group.js'
import type { GroupEvents, Member, ReceiveResult, ReceivedMessage } from './group-types.js'

/** Details of a commit failure that is this member's alone: the group recovers by resync. */
export const RECOVERABLE = 'recoverable'

export const WRONG_GROUP_TEXT = 'The message is for another group'

/** Where the group is in the channel log, besides its state: the cursor and the digests of recent messages (replay detection). */
export interface Progress {
  readonly cursor: number
  readonly digests: readonly string[]
}

/** A commit or proposal as read from either wire format: its authenticated content, and how to verify and process it. */
interface Handshake {
  readonly authenticated: AuthenticatedContent
  /** The checks every member makes alike before processing (a PublicMessage's membership tag and signature). */
  verify(what: string): Promise<void>
  /** Process it on `input` (the state, with this member's own Update key where a commit needs it). */
  process(input: ClientState): Promise<{ newState: ClientState; actionTaken: string; consumed: Uint8Array[] }>
  /** The PublicMessage of a possible external commit; `undefined` for a PrivateMessage. */
  readonly external: PublicMessage | undefined
}

/** What processing a message needs from its group: its state, its persistence and the transitions it shares with other paths. */
export interface ReceiveHost {
  readonly groupId: Uint8Array
  readonly groupIdHex: string
  readonly components: GroupComponents
  readonly validator: CredentialValidator
  readonly current: GroupState
  readonly progress: Progress
  readonly epoch: bigint
  readonly events: Emitter<GroupEvents>
  readonly sentMessages: Map<string, Uint8Array>
  readonly waiting: Uint8Array[]
  digest(bytes: Uint8Array): Promise<string>
  withProgress(seq: number | undefined, digest: string): Progress
  commitState(next: GroupState & { mls: ClientState }, progress: Progress, extra?: readonly StoreOperation[], durability?: StoreDurability): Promise<void>
  mergePending(current: CommittingState, seq: number | undefined, digest: string): Promise<void>
  becomeRemoved(current: LiveState, epoch: bigint, seq: number | undefined, digest: string, by: ClientId | undefined): Promise<void>
  emitEpochChange(before: Member[], newState: ClientState, committer: ClientId | undefined, own: boolean): void
  receivedMessage(seq: number | undefined, digest: string, sender: ClientId, plaintext: Uint8Array, epoch: bigint, own: boolean): ReceivedMessage
  inboxOperations(message: ReceivedMessage): StoreOperation[]
}

/**
 * How a group processes one message (a channel entry or one handed to
 * `receive`): replay and epoch checks, application messages, commits and
 * standalone proposals. Every change goes through the host's persisted
 * transitions; bad input throws a typed error and changes nothing.
 */
export class GroupReceiver {
  constructor(private readonly host: ReceiveHost) {}

  /**
   * The core of the state machine. `seq` is the channel position (undefined for
   * `receive`); `postedBy` the channel-authenticated sender.
   */
  async processMessage(bytes: Uint8Array, seq: number | undefined, postedBy: ClientId | undefined): Promise<ReceiveResult> {
    const current = this.host.current
    if (current.kind === 'removed' || current.kind === 'failed') throw new UsageError('INVALID_STATE', `The group is ${current.kind}`)
    const state = current.mls
    const digest = await this.host.digest(bytes)
    if (this.host.progress.digests.includes(digest)) {
      if (seq === undefined) return { kind: 'duplicate' }
      throw new MessageError('REPLAYED_MESSAGE', 'The message was already processed')
    }
    const message = decodeMessage(bytes)
    if (message.wireformat === 'mls_public_message') {
      return this.processHandshake(current, message.publicMessage, bytes, digest, seq, postedBy)
    }
    if (message.wireformat !== 'mls_private_message') {
      throw new MessageError('INVALID_MESSAGE', `Unexpected wire format ${message.wireformat} in a group`)
    }
    const pm = message.privateMessage
    if (!equalBytes(pm.groupId, this.host.groupId)) throw new MessageError('WRONG_GROUP', WRONG_GROUP_TEXT)
    if (pm.contentType === 'commit' && pm.epoch > state.groupContext.epoch && seq !== undefined) {
      // As for a PublicMessage commit: the channel ordered a commit for an epoch this member never reached.
      throw new MessageError('WRONG_EPOCH', `Commit for epoch ${pm.epoch}, group is at ${state.groupContext.epoch}`, { details: { [RECOVERABLE]: true } })
    }
    if (pm.epoch > state.groupContext.epoch) {
      if (seq !== undefined) throw new MessageError('WRONG_EPOCH', `Message for future epoch ${pm.epoch} (current ${state.groupContext.epoch})`)
      if (this.host.waiting.length >= this.host.components.maxWaitingMessages) {
        throw new MessageError('WRONG_EPOCH', `Too many messages waiting for future epochs`)
      }
      this.host.waiting.push(bytes.slice())
      return { kind: 'waiting-for-epoch', epoch: pm.epoch }
    }
    if (pm.contentType !== 'application') return this.processPrivateHandshake(current, pm, bytes, digest, seq, postedBy)
    const own = this.host.sentMessages.get(digest)
    if (own !== undefined && postedBy === this.host.components.clientId) {
      const received = this.host.receivedMessage(seq, digest, this.host.components.clientId, own, pm.epoch, true)
      await this.host.commitState(
        current,
        this.host.withProgress(seq, digest),
        [...this.host.inboxOperations(received), { type: 'delete', key: storeKeys.groupSent(this.host.groupIdHex, digest) }],
        durabilityFor(seq)
      )
      this.host.sentMessages.delete(digest)
      this.host.events.emit('message:received', received)
      return { kind: 'own-message' }
    }
    const decrypted = await this.decryptApplication(state, pm)
    if (postedBy !== undefined && postedBy !== decrypted.sender) {
      throw new MessageError('INVALID_MESSAGE', `Posted by ${postedBy} but signed by ${decrypted.sender}`)
    }
    if (seq !== undefined && pm.epoch < state.groupContext.epoch && !membersOf(state, this.host.validator).some((m) => m.clientId === decrypted.sender)) {
      // Ordered after the commit that removed its sender (a channel that cannot read private handshakes lets it through).
      throw new MessageError('INVALID_MESSAGE', `${decrypted.sender} was removed before this message was ordered`, { details: { reason: 'sender-removed' } })
    }
    const received = this.host.receivedMessage(seq, digest, decrypted.sender, decrypted.plaintext, pm.epoch, false)
    await this.host.commitState(advanced(current, decrypted.newState), this.host.withProgress(seq, digest), this.host.inboxOperations(received), durabilityFor(seq))
    zeroAll(decrypted.consumed)
    this.host.events.emit('message:received', received)
    return { kind: 'application', sender: decrypted.sender, plaintext: decrypted.plaintext, epoch: pm.epoch }
  }

  /** A handshake sent as a PublicMessage (the group's policy is public handshakes, or an external commit, which is always public). */
  private async processHandshake(
    current: LiveState,
    pm: PublicMessage,
    bytes: Uint8Array,
    digest: string,
    seq: number | undefined,
    postedBy: ClientId | undefined
  ): Promise<ReceiveResult> {
    if (!equalBytes(pm.content.groupId, this.host.groupId)) throw new MessageError('WRONG_GROUP', WRONG_GROUP_TEXT)
    if (current.kind === 'committing' && equalBytes(current.pending.commit, bytes)) {
      await this.host.mergePending(current, seq, digest)
      return { kind: 'own-commit', epoch: this.host.epoch }
    }
    if (pm.content.sender.senderType === 'member' && handshakeWireFormatOf(current.mls.groupContext.extensions) === 'private') {
      throw new MessageError('INVALID_MESSAGE', "This group's handshakes are PrivateMessages", { details: { reason: 'handshake-wire-format' } })
    }
    const cs = this.host.components.cs
    const handshake: Handshake = {
      authenticated: { wireformat: 'mls_public_message', content: pm.content, auth: pm.auth },
      verify: (what) => this.checkPublicly(current.mls, pm, what),
      process: (input) => processHandshake(input, pm, cs),
      external: pm
    }
    return this.processHandshakeContent(current, handshake, digest, seq, postedBy)
  }

  /**
   * A commit or proposal sent as a PrivateMessage, where the group's policy
   * says so: decrypted (which verifies its signature) to make the same checks
   * as for a PublicMessage, then processed. This member's own proposals come
   * back as echoes it cannot decrypt: recognised by digest, already kept.
   */
  private async processPrivateHandshake(
    current: LiveState,
    pm: PrivateMessage,
    bytes: Uint8Array,
    digest: string,
    seq: number | undefined,
    postedBy: ClientId | undefined
  ): Promise<ReceiveResult> {
    const state = current.mls
    if (current.kind === 'committing' && equalBytes(current.pending.commit, bytes)) {
      await this.host.mergePending(current, seq, digest)
      return { kind: 'own-commit', epoch: this.host.epoch }
    }
    if (this.host.sentMessages.has(digest) && postedBy === this.host.components.clientId && pm.contentType === 'proposal') {
      await this.host.commitState(current, this.host.withProgress(seq, digest), [{ type: 'delete', key: storeKeys.groupSent(this.host.groupIdHex, digest) }], durabilityFor(seq))
      this.host.sentMessages.delete(digest)
      return { kind: 'proposal', epoch: state.groupContext.epoch }
    }
    if (handshakeWireFormatOf(state.groupContext.extensions) !== 'private') {
      throw new MessageError('INVALID_MESSAGE', 'Handshake messages must be PublicMessages', { details: { reason: 'handshake-wire-format' } })
    }
    if (pm.epoch !== state.groupContext.epoch) throw new MessageError('WRONG_EPOCH', `Handshake for epoch ${pm.epoch}, group is at ${state.groupContext.epoch}`)
    const cs = this.host.components.cs
    let opened
    try {
      opened = await openPrivateHandshake(state, pm, cs)
    } catch (cause) {
      // Every member holds the same epoch secrets: what one cannot decrypt, none can (skipped by all).
      throw wrapMlsFailure('MESSAGE_REJECTED', 'Handshake could not be decrypted', cause)
    }
    const handshake: Handshake = {
      authenticated: { wireformat: 'mls_private_message', content: opened.content, auth: opened.auth },
      verify: () => Promise.resolve(),
      process: (input) => processPrivateHandshake(input, pm, cs),
      external: undefined
    }
    return this.processHandshakeContent(current, handshake, digest, seq, postedBy)
  }

  /** The checks and transitions of a commit or proposal, whatever its wire format. */
  private async processHandshakeContent(
    current: LiveState,
    handshake: Handshake,
    digest: string,
    seq: number | undefined,
    postedBy: ClientId | undefined
  ): Promise<ReceiveResult> {
    const state = current.mls
    const content = handshake.authenticated.content
    if (!equalBytes(content.groupId, this.host.groupId)) throw new MessageError('WRONG_GROUP', WRONG_GROUP_TEXT)
    if (content.contentType === 'proposal') return this.processProposal(current, handshake, digest, seq, postedBy)
    if (content.contentType !== 'commit') throw new MessageError('INVALID_MESSAGE', 'Only commits and proposals are accepted as handshake messages')
    if (content.epoch > state.groupContext.epoch && seq !== undefined) {
      // The channel ordered a commit for an epoch this member never reached: it missed one, so it resyncs.
      throw new MessageError('WRONG_EPOCH', `Commit for epoch ${content.epoch}, group is at ${state.groupContext.epoch}`, { details: { [RECOVERABLE]: true } })
    }
    if (content.epoch !== state.groupContext.epoch) {
      throw new MessageError('WRONG_EPOCH', `Commit for epoch ${content.epoch}, group is at ${state.groupContext.epoch}`)
    }
    const sender = content.sender
    const committer =
      sender.senderType === 'member'
        ? memberAtLeaf(state.ratchetTree, sender.leafIndex, this.host.validator)
        : handshake.external === undefined
          ? undefined
          : externalCommitter(handshake.external, this.host.validator) // an external commit (a resync): the device its new leaf names
    if (postedBy !== undefined && committer !== postedBy) {
      throw new MessageError('INVALID_MESSAGE', `Commit posted by ${postedBy} but sent from the leaf of ${String(committer)}`)
    }
    if (committer === undefined) throw new MessageError('INVALID_MESSAGE', 'The commit is not sent by a member')
    const byValue = content.commit.proposals.flatMap((p) => (p.proposalOrRefType === 'proposal' ? [p.proposal] : []))
    if (byValue.some((p) => p.proposalType === 'group_context_extensions' && handshakeWireFormatOf(p.groupContextExtensions.extensions) !== handshakeWireFormatOf(state.groupContext.extensions))) {
      throw new MessageError('INVALID_MESSAGE', "A commit may not change the group's handshake wire format", { details: { reason: 'handshake-wire-format' } })
    }
    if (externalSendersChange(state.groupContext, byValue) !== undefined) {
      throw new MessageError('EXTERNAL_SENDER_REFUSED', "A commit may not add, replace or drop the group's external_senders", { details: { reason: 'external-senders-change' } })
    }
    for (const item of content.commit.proposals) {
      if (item.proposalOrRefType === 'reference' && !hasPendingProposal(state, item.reference)) {
        throw new MessageError('INVALID_MESSAGE', 'The commit references a proposal this group has not received in this epoch', { details: { reason: 'unknown-proposal-reference' } })
      }
    }
    // What every member checks alike (membership tag, signature): a failure here is bad input, skipped by all.
    await handshake.verify('Commit')
    const references = content.commit.proposals.flatMap((p) => (p.proposalOrRefType === 'reference' ? [p.reference] : []))
    const input = references.length === 0 ? state : withOwnUpdateKey(state, references, await this.ownUpdateKey(state))
    let result
    try {
      result = await handshake.process(input)
    } catch (cause) {
      // The toolkit's own errors raised inside (this member's trouble from the AuthenticationService's
      // Directory lookups, or a credential it refuses) keep their code and meaning.
      if (MlsToolkitError.isInstance(cause)) throw cause
      // Past the checks every member makes alike, a failure is this member's own (e.g. a path secret it
      // cannot decrypt): the group recovers by resync.
      const detail = cause instanceof Error ? `: ${cause.message}` : ''
      throw new MessageError('MESSAGE_REJECTED', `Commit could not be processed (path secret or key schedule)${detail}`, { cause, details: { [RECOVERABLE]: true } })
    }
    if (result.actionTaken !== 'accept') throw new MessageError('MESSAGE_REJECTED', 'Commit rejected')
    const before = membersOf(state, this.host.validator)
    const newState = result.newState
    if (newState.groupActiveState.kind === 'removedFromGroup') {
      const epoch = state.groupContext.epoch + 1n
      await this.host.becomeRemoved(current, epoch, seq, digest, committer)
      zeroAll(result.consumed)
      return { kind: 'commit', epoch }
    }
    // Another member's commit won this epoch: a pending commit of this member's is dropped in the same write.
    const dropPending: StoreOperation[] = current.kind === 'committing' ? [{ type: 'delete', key: storeKeys.groupPending(this.host.groupIdHex) }] : []
    dropPending.push({ type: 'delete', key: storeKeys.groupUpdateKey(this.host.groupIdHex) })
    await this.host.commitState(commitApplied(current, newState), this.host.withProgress(seq, digest), dropPending, durabilityFor(seq))
    zeroAll(result.consumed)
    this.host.emitEpochChange(before, newState, committer, false)
    if (sender.senderType === 'new_member_commit' && handshake.external !== undefined && before.some((m) => m.clientId === committer)) {
      this.host.events.emit('member:resynced', { epoch: newState.groupContext.epoch, member: committer, reason: resyncReason(handshake.external) })
    }
    return { kind: 'commit', epoch: newState.groupContext.epoch }
  }

  /** This member's own pending Update key for the state's epoch, if it proposed one. */
  private async ownUpdateKey(state: ClientState): Promise<OwnUpdateKey | undefined> {
    const bytes = await this.host.components.store.get(storeKeys.groupUpdateKey(this.host.groupIdHex))
    if (bytes === undefined) return undefined
    const key = decodeRecord<OwnUpdateKey>(bytes, 'own update key')
    return key.epoch === state.groupContext.epoch ? key : undefined
  }

  /** Verify the membership tag and signature of a handshake message: the checks every member makes alike. */
  private async checkPublicly(state: ClientState, pm: PublicMessage, what: string): Promise<void> {
    try {
      await verifyPublicMessage(state, pm, this.host.components.cs)
    } catch (cause) {
      throw wrapMlsFailure('MESSAGE_REJECTED', `${what} rejected`, cause)
    }
  }

  /** A standalone proposal for the current epoch: kept with the state for the next commit to include by reference. */
  private async processProposal(
    current: LiveState,
    handshake: Handshake,
    digest: string,
    seq: number | undefined,
    postedBy: ClientId | undefined
  ): Promise<ReceiveResult> {
    const state = current.mls
    const content = handshake.authenticated.content
    if (content.contentType !== 'proposal') throw new MessageError('INVALID_MESSAGE', 'Not a proposal')
    if (content.epoch !== state.groupContext.epoch) {
      throw new MessageError('WRONG_EPOCH', `Proposal for epoch ${content.epoch}, group is at ${state.groupContext.epoch}`)
    }
    const sender = content.sender.senderType === 'member' ? memberAtLeaf(state.ratchetTree, content.sender.leafIndex, this.host.validator) : undefined
    if (content.sender.senderType === 'member') {
      if (sender === undefined) throw new MessageError('INVALID_MESSAGE', 'The proposal is not sent by a member')
      if (postedBy !== undefined && sender !== postedBy) throw new MessageError('INVALID_MESSAGE', `Proposal posted by ${postedBy} but sent from the leaf of ${sender}`)
    } else if (content.sender.senderType === 'external') {
      checkExternalSender(state.groupContext, content.sender.senderIndex, this.host.components.serverSender?.())
    } else {
      throw new MessageError('INVALID_MESSAGE', `A standalone proposal from a ${content.sender.senderType} sender`)
    }
    const proposal = content.proposal
    const type = proposal.proposalType
    // A server (external sender) only removes; a member adds, updates its own leaf or removes.
    if (type !== 'remove' && (type !== 'add' && type !== 'update' || content.sender.senderType !== 'member')) {
      throw new MessageError('INVALID_MESSAGE', `Unsupported standalone proposal ${String(type)}`, { details: { reason: 'unsupported-proposal' } })
    }
    const removes = type === 'remove' ? memberAtLeaf(state.ratchetTree, proposal.remove.removed, this.host.validator) : undefined
    if (type === 'remove' && removes === undefined) throw new MessageError('INVALID_MESSAGE', 'The proposal removes a blank leaf')
    const adds = type === 'add' ? this.host.validator.clientIdFromCredential(proposal.add.keyPackage.leafNode.credential) : undefined
    if (type === 'add' && adds === undefined) throw new MessageError('INVALID_MESSAGE', 'The added KeyPackage does not name a client', { details: { reason: 'invalid-proposals' } })
    if (type === 'update' && this.host.validator.clientIdFromCredential(proposal.update.leafNode.credential) !== sender) {
      throw new MessageError('INVALID_MESSAGE', "The Update's leaf node does not name its sender", { details: { reason: 'invalid-proposals' } })
    }
    await handshake.verify('Proposal')
    await checkProposalCommittable(state, handshake.authenticated, this.host.components.cs)
    let result
    try {
      result = await handshake.process(state)
    } catch (cause) {
      throw wrapMlsFailure('MESSAGE_REJECTED', 'Proposal rejected', cause)
    }
    await this.host.commitState(advanced(current, result.newState), this.host.withProgress(seq, digest), [], durabilityFor(seq))
    zeroAll(result.consumed)
    this.host.events.emit('proposal:received', {
      epoch: state.groupContext.epoch,
      seq,
      sender,
      kind: type,
      removes: removes === undefined ? [] : [removes],
      adds: adds === undefined ? [] : [adds]
    })
    return { kind: 'proposal', epoch: state.groupContext.epoch }
  }

  private async decryptApplication(
    state: ClientState,
    pm: PrivateMessage
  ): Promise<{ sender: ClientId; plaintext: Uint8Array; newState: ClientState; consumed: Uint8Array[] }> {
    try {
      const opened = await decryptPrivateMessage(state, pm, this.host.components.cs)
      if (opened === undefined) throw new MessageError('WRONG_EPOCH', `Epoch ${pm.epoch} is beyond the retention window`)
      const content = opened.content
      if (content.contentType !== 'application' || content.sender.senderType !== 'member') {
        throw new MessageError('INVALID_MESSAGE', 'Not an application message from a member')
      }
      const sender = memberAtLeaf(opened.ratchetTree, content.sender.leafIndex, this.host.validator)
      if (sender === undefined) throw new MessageError('INVALID_MESSAGE', 'Sender is not a member')
      return { sender, plaintext: content.applicationData, newState: opened.newState, consumed: opened.consumed }
    } catch (cause) {
      throw wrapMlsFailure('MESSAGE_REJECTED', 'Application message rejected', cause)
    }
  }
}
