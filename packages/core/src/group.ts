import type { CiphersuiteImpl, ClientState, ClientConfig, PrivateMessage, Proposal, PublicMessage } from 'ts-mls'
import { emptyPskIndex, mlsExporter, zeroOutUint8Array } from 'ts-mls'
import { createApplicationMessage, createCommit, encodeGroupState, encodeMlsMessage, processPublicMessage, unprotectPublicMessage } from './ts-mls-fixes.js'
import { resync, resyncReason } from './recovery/resync.js'
import { hasPendingProposals, pendingRemovals, selfRemoveProposal } from './proposals.js'
import { unprotectPrivateMessage } from 'ts-mls/messageProtection.js'
import type { ChannelEntry, GroupChannelClient } from './interfaces/channel.js'
import type { ClientStore, StoreOperation } from './interfaces/client-store.js'
import type { ClientId } from './interfaces/common.js'
import { MessageError, MlsToolkitError, UsageError } from './errors.js'
import { equalBytes, fromHex, toHex } from './bytes.js'
import { basicCredentials, type CredentialValidator } from './identity.js'
import { decodeRecord, encodeRecord, storeKeys } from './records.js'
import { Emitter } from './emitter.js'
import { Mutex } from './mutex.js'
import { commitRequest, externalCommitter } from './group-info.js'
import { isOwnTrouble, wrapMlsFailure } from './one-rule.js'
import { memberAtLeaf, membersOf, withCurrentHistory } from './mls-adapter.js'
import { decodeIntent, decodeMessage, decodeState, encodeIntent, type GroupMeta, type PendingRecord } from './group-records.js'
import type {
  CommitIntent,
  CommitOutcome,
  GroupEvents,
  GroupStatus,
  Member,
  ReceiveResult,
  ReceivedMessage,
  ValidatedKeyPackage
} from './group-types.js'

export * from './group-types.js'
export { isOwnTrouble } from './one-rule.js'

/** Services and settings a group needs from its client. */
export interface GroupComponents {
  readonly clientId: ClientId
  /** How members' credentials name them (default `basicCredentials`). */
  readonly validator?: CredentialValidator
  readonly store: ClientStore
  readonly channel: GroupChannelClient
  readonly cs: CiphersuiteImpl
  readonly clientConfig: ClientConfig
  readonly maxCommitAttempts: number
  /** How many message digests to remember for replay detection. */
  readonly replayWindow: number
  /** How many future-epoch messages `receive` holds back at most. */
  readonly maxWaitingMessages: number
  /** Keep each received message in the store, in the same write as the state, until acknowledged. */
  readonly durableInbox: boolean
}

/** Details of a commit failure that is this member's alone: the group recovers by resync. */
const RECOVERABLE = 'recoverable'

interface PendingCommit {
  epoch: bigint
  intent: CommitIntent
  commit: Uint8Array
  welcome: Uint8Array | undefined
  newState: ClientState
  consumed: Uint8Array[]
  added: ClientId[]
  removed: ClientId[]
}

const WRONG_GROUP_TEXT = 'The message is for another group'

/** Entries asked for per fetch; the server may return fewer. */
const FETCH_PAGE = 500

/** One MLS group of one client: a state machine driven by the Group Channel. */
export class Group {
  readonly groupId: Uint8Array
  readonly groupIdHex: string
  private state: ClientState | undefined
  private meta: GroupMeta
  private pending: PendingCommit | undefined
  private readonly components: GroupComponents
  private readonly lock = new Mutex()
  private readonly commitLock = new Mutex()
  private readonly events = new Emitter<GroupEvents>()
  private readonly sentMessages = new Map<string, Uint8Array>()
  private waiting: Uint8Array[] = []
  private syncing: Promise<void> | undefined
  private syncAgain = false

  private constructor(components: GroupComponents, groupId: Uint8Array, state: ClientState | undefined, meta: GroupMeta, pending: PendingCommit | undefined) {
    this.components = components
    this.groupId = groupId
    this.groupIdHex = toHex(groupId)
    this.state = state
    this.meta = meta
    this.pending = pending
  }

  /** @internal Build a group from a fresh ts-mls state and persist it with `extra` operations in one write. */
  static async persistNew(
    components: GroupComponents,
    state: ClientState,
    cursor: number,
    extra: readonly StoreOperation[],
    status: 'joining' | 'active' = 'active'
  ): Promise<Group> {
    const meta: GroupMeta = { status, cursor, epoch: state.groupContext.epoch, digests: [] }
    const group = new Group(components, state.groupContext.groupId, state, meta, undefined)
    await components.store.write([...group.stateOperations(state, meta), ...extra])
    return group
  }

  /** @internal Load a group from the store. */
  static async load(components: GroupComponents, groupIdHex: string): Promise<Group | undefined> {
    const { store, clientConfig } = components
    const metaBytes = await store.get(storeKeys.groupMeta(groupIdHex))
    if (metaBytes === undefined) return undefined
    const meta = decodeRecord<GroupMeta>(metaBytes, 'group meta')
    let state: ClientState | undefined
    const stateBytes = await store.get(storeKeys.groupState(groupIdHex))
    if (stateBytes !== undefined) state = decodeState(stateBytes, clientConfig)
    let pending: PendingCommit | undefined
    const pendingBytes = await store.get(storeKeys.groupPending(groupIdHex))
    if (pendingBytes !== undefined) {
      const record = decodeRecord<PendingRecord>(pendingBytes, 'pending commit')
      pending = {
        epoch: record.epoch,
        intent: decodeIntent(record.intent),
        commit: record.commit,
        welcome: record.welcome,
        newState: decodeState(record.newState, clientConfig),
        consumed: [],
        added: record.added,
        removed: record.removed
      }
    }
    const groupId = state?.groupContext.groupId ?? fromHex(groupIdHex)
    const group = new Group(components, groupId, state, meta, pending)
    const sentPrefix = storeKeys.groupSentPrefix(groupIdHex)
    for (const entry of await store.list(sentPrefix)) group.sentMessages.set(entry.key.slice(sentPrefix.length), entry.value)
    return group
  }

  /** How members' credentials name them. */
  private get validator(): CredentialValidator {
    return this.components.validator ?? basicCredentials
  }

  /** The group's state in the state machine. */
  get status(): GroupStatus {
    return this.meta.status
  }

  /** The current epoch. */
  get epoch(): bigint {
    return this.meta.epoch
  }

  /** Position of the last channel entry this member processed. */
  get cursor(): number {
    return this.meta.cursor
  }

  /** True while a created commit waits for the channel. */
  get hasPendingCommit(): boolean {
    return this.pending !== undefined
  }

  on<K extends keyof GroupEvents>(type: K, listener: (event: GroupEvents[K]) => void): () => void {
    return this.events.on(type, listener)
  }

  once<K extends keyof GroupEvents>(type: K): Promise<GroupEvents[K]> {
    return this.events.once(type)
  }

  /** RFC 9420 section 8.7: equal across members exactly when they agree on the epoch. */
  epochAuthenticator(): Uint8Array {
    return this.requireState().keySchedule.epochAuthenticator.slice()
  }

  /** The MLS exporter (RFC 9420 section 8.5), for application keys bound to this epoch. */
  async exportSecret(label: string, context: Uint8Array, length: number): Promise<Uint8Array> {
    return mlsExporter(this.requireState().keySchedule.exporterSecret, label, context, length, this.components.cs)
  }

  /** The current members, ordered by leaf index. */
  members(): Member[] {
    return this.state === undefined ? [] : membersOf(this.state, this.validator)
  }

  /** This member's leaf index. */
  get ownLeafIndex(): number {
    return this.requireState().privatePath.leafIndex
  }

  /** @internal Snapshot of the ts-mls state, for tests and diagnostics. */
  get mlsState(): ClientState | undefined {
    return this.state
  }

  /** Encrypt and post an application message in the current epoch. */
  async send(plaintext: Uint8Array | string): Promise<{ seq: number }> {
    const data = typeof plaintext === 'string' ? new TextEncoder().encode(plaintext) : plaintext
    // ts-mls sends no application message while proposals are pending: commit them first (e.g. a member's leave).
    if (this.state !== undefined && this.meta.status === 'active' && hasPendingProposals(this.state) && !this.isLeaving()) {
      await this.commit({ kind: 'update' })
    }
    const message = await this.lock.run(async () => {
      if (this.meta.status !== 'active' && this.meta.status !== 'committing' && this.meta.status !== 'joining') {
        throw new UsageError('INVALID_STATE', `The group is ${this.meta.status}`)
      }
      const state = this.requireState()
      if (hasPendingProposals(state)) {
        throw new UsageError('INVALID_STATE', this.isLeaving() ? 'This member is leaving the group' : 'Proposals are pending: the next commit includes them')
      }
      const result = await createApplicationMessage(state, data, this.components.cs)
      const bytes = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_private_message', privateMessage: result.privateMessage })
      // Persist the advanced ratchet before the message leaves: a restart can never reuse a key/nonce.
      // The plaintext is kept with it until the channel echoes the message (a sender cannot decrypt its own).
      const digest = await this.digest(bytes)
      await this.commitState(result.newState, this.meta, [{ type: 'put', key: storeKeys.groupSent(this.groupIdHex, digest), value: data.slice() }])
      result.consumed.forEach(zeroOutUint8Array)
      this.sentMessages.set(digest, data.slice())
      return bytes
    })
    return this.components.channel.postMessage(this.groupId, message)
  }

  /** Add every device of each user. KeyPackages come from the Directory and are validated first. */
  async addMembers(keyPackages: readonly ValidatedKeyPackage[]): Promise<CommitOutcome> {
    if (keyPackages.length === 0) throw new UsageError('INVALID_ARGUMENT', 'Nothing to add')
    return this.commit({ kind: 'add', keyPackages })
  }

  /**
   * Remove members: each target is a client id (`user/device`) or a user id
   * (all its devices; naming this member's own user removes its other devices).
   */
  async removeMembers(targets: readonly string[]): Promise<CommitOutcome> {
    if (targets.length === 0) throw new UsageError('INVALID_ARGUMENT', 'Nothing to remove')
    if (targets.includes(this.components.clientId)) {
      throw new UsageError('INVALID_ARGUMENT', 'A member cannot remove itself with a commit')
    }
    return this.commit({ kind: 'remove', targets })
  }

  /**
   * Leave the group: post a Remove proposal for this member's own leaf. The
   * channel orders it, the other members keep it, and the next commit any of
   * them makes includes it by reference; when that commit arrives this group
   * becomes `removed`. Resolves once the proposal is ordered. A proposal lapses
   * if the epoch changes before a commit includes it: call `leave` again.
   */
  async leave(): Promise<{
    /** The proposal's channel position. */
    seq: number
  }> {
    const proposal = await this.lock.run(async () => {
      if (this.meta.status !== 'active' && this.meta.status !== 'committing') {
        throw new UsageError('INVALID_STATE', `The group is ${this.meta.status}`)
      }
      return selfRemoveProposal(this.requireState(), this.components.cs)
    })
    return this.components.channel.postProposal(this.groupId, proposal)
  }

  /** Refresh this member's leaf secret: a commit with an update path (post-compromise security). */
  async update(): Promise<CommitOutcome> {
    return this.commit({ kind: 'update' })
  }

  /**
   * Create a commit for `intent`, post it, and return once the channel has
   * ordered it and this member has merged it. If another member's commit for
   * the same epoch wins, that one is applied and the intent retried on the new
   * epoch (or reported `not-needed`).
   */
  async commit(intent: CommitIntent): Promise<CommitOutcome> {
    return this.commitLock.run(async () => {
      if (this.meta.status === 'joining') await this.sync()
      await this.resumePendingCommit()
      for (let attempt = 1; attempt <= this.components.maxCommitAttempts; attempt++) {
        const created = await this.lock.run(() => this.createPendingCommit(intent))
        if (created.kind === 'not-needed') return { ...created, attempts: attempt }
        const pending = created.pending
        const posted = await this.components.channel.postCommit(this.groupId, await commitRequest(pending, this.components.cs))
        if (posted.kind === 'accepted') {
          await this.syncThrough(posted.seq)
          if (this.pending === pending) throw new MessageError('INTERNAL', 'The channel accepted the commit but did not deliver it')
          return { kind: 'committed', epoch: this.meta.epoch, seq: posted.seq, attempts: attempt, added: pending.added, removed: pending.removed }
        }
        // Lost the race: apply the winner (which discards our pending commit), then retry.
        await this.sync()
        await this.lock.run(() => this.discardPending(pending))
      }
      throw new MessageError('COMMIT_CONFLICT', `Commit lost the race ${this.components.maxCommitAttempts} times`)
    })
  }

  /**
   * Hand in a message received outside the channel. Messages for a future
   * epoch wait until the group reaches it; a message seen before is rejected
   * as a replay; anything invalid is rejected with a typed error and changes
   * nothing.
   */
  async receive(message: Uint8Array): Promise<ReceiveResult> {
    const result = await this.lock.run(() => this.processMessage(message, undefined, undefined))
    if (result.kind === 'commit') await this.drainWaiting()
    return result
  }

  /** Fetch and process everything the channel holds after this member's cursor. */
  sync(): Promise<void> {
    if (this.syncing !== undefined) {
      this.syncAgain = true
      return this.syncing
    }
    this.syncing = (async () => {
      try {
        do {
          this.syncAgain = false
          await this.pull()
        } while (this.syncAgain)
      } finally {
        this.syncing = undefined
      }
    })()
    return this.syncing
  }

  /** @internal A pushed entry: processed at once when it is the next one, otherwise triggers a sync. */
  async deliver(entry: ChannelEntry): Promise<void> {
    if (entry.seq <= this.meta.cursor) return
    if (entry.seq === this.meta.cursor + 1 && this.syncing === undefined) {
      const processed = await this.lock.run(async () => {
        if (entry.seq !== this.meta.cursor + 1) return entry.seq <= this.meta.cursor
        await this.processEntry(entry)
        return true
      })
      // A group that just failed recovers through sync (`pull` rejoins first).
      if (processed && !this.isFailed()) return
    }
    await this.sync()
  }

  /**
   * Read the log from the cursor to its head. The head is where a page comes
   * back empty: the server may clamp a page to fewer entries than asked, so a
   * short page is not the end.
   */
  private async pull(): Promise<void> {
    for (;;) {
      if (this.meta.status === 'failed') await this.lock.run(() => this.rejoin())
      if (this.meta.status === 'removed' || this.meta.status === 'failed') return
      const entries = await this.components.channel.fetchEntries(this.groupId, this.meta.cursor, { limit: FETCH_PAGE })
      if (entries.length === 0) return this.lock.run(() => this.finishJoining())
      for (const entry of entries) {
        await this.lock.run(async () => {
          if (entry.seq === this.meta.cursor + 1 && this.meta.status !== 'failed') await this.processEntry(entry)
        })
        if (this.isFailed()) break
      }
    }
  }

  /**
   * `failed` → `active` by an external commit that replaces this member's old
   * leaf. Entries between the failure and the resync belong to epochs this
   * member cannot read and are passed over. Call under the lock.
   */
  private async rejoin(): Promise<void> {
    if (this.meta.status !== 'failed' || this.state === undefined) return
    const reason = this.meta.failure ?? 'the group state failed'
    const { channel, cs, clientConfig, maxCommitAttempts } = this.components
    let outcome
    try {
      outcome = await resync(this.state, { groupId: this.groupId, channel, cs, clientConfig }, reason, maxCommitAttempts)
    } catch (cause) {
      if (isOwnTrouble(cause)) throw cause
      this.events.emit('message:rejected', { error: wrapMlsFailure('MESSAGE_REJECTED', 'Resync refused', cause), seq: undefined })
      return
    }
    if (outcome.kind !== 'rejoined') return
    const state = outcome.state
    const digest = await this.digest(outcome.commit)
    const meta: GroupMeta = { status: 'active', cursor: outcome.seq, epoch: state.groupContext.epoch, digests: [...this.meta.digests, digest].slice(-this.components.replayWindow) }
    const old = this.state
    await this.commitState(state, meta, [{ type: 'delete', key: storeKeys.groupPending(this.groupIdHex) }])
    for (const secret of Object.values(old.keySchedule)) zeroOutUint8Array(secret)
    this.pending = undefined
    this.events.emit('status:changed', { from: 'failed', to: 'active' })
    this.events.emit('group:resynced', { epoch: state.groupContext.epoch, reason })
    this.events.emit('epoch:changed', { epoch: state.groupContext.epoch, epochAuthenticator: state.keySchedule.epochAuthenticator.slice(), committer: this.components.clientId, own: true })
  }

  /** True once this member's own leave (a self-Remove proposal) is pending. */
  private isLeaving(): boolean {
    return this.state !== undefined && pendingRemovals(this.state).has(this.state.privatePath.leafIndex)
  }

  /** Read through a method: TypeScript narrows `this.meta.status` across awaits that change it. */
  private isFailed(): boolean {
    return this.meta.status === 'failed'
  }

  /** `joining` → `active` once caught up with the channel. */
  private async finishJoining(): Promise<void> {
    if (this.meta.status !== 'joining') return
    const meta: GroupMeta = { ...this.meta, status: 'active' }
    await this.components.store.write([{ type: 'put', key: storeKeys.groupMeta(this.groupIdHex), value: encodeRecord(meta) }])
    this.meta = meta
    this.events.emit('status:changed', { from: 'joining', to: 'active' })
  }

  private async syncThrough(seq: number): Promise<void> {
    while (this.meta.cursor < seq && this.meta.status !== 'removed' && this.meta.status !== 'failed') {
      const before = this.meta.cursor
      await this.sync()
      if (this.meta.cursor === before) throw new MessageError('TRANSPORT_UNAVAILABLE', `The channel did not deliver entry ${seq}`)
    }
  }

  /**
   * Process one in-order channel entry. Bad input is rejected with an event
   * and skipped (the cursor moves past it); a commit only this member cannot
   * process fails the group, which then rejoins (`rejoin`). This member's own trouble (storage, transport, abort)
   * is thrown: nothing durable changed, the cursor stays, the caller retries.
   */
  private async processEntry(entry: ChannelEntry): Promise<void> {
    try {
      if (!equalBytes(entry.groupId, this.groupId)) throw new MessageError('WRONG_GROUP', WRONG_GROUP_TEXT)
      await this.processMessage(entry.message, entry.seq, entry.sender)
    } catch (cause) {
      if (isOwnTrouble(cause)) throw cause
      const error = wrapMlsFailure('MESSAGE_REJECTED', 'Message rejected', cause)
      if (this.meta.cursor < entry.seq) {
        // Only a failure that is this member's alone fails the group (and starts recovery); a commit every
        // member rejects alike is skipped by all of them, so nobody forks.
        const failsGroup = entry.kind === 'commit' && error.details?.[RECOVERABLE] === true
        const failure = failsGroup ? `cannot process the commit at seq ${entry.seq}: ${error.message}` : undefined
        const meta = { ...this.meta, cursor: entry.seq, ...(failsGroup ? { status: 'failed' as const, failure } : {}) }
        await this.components.store.write([{ type: 'put', key: storeKeys.groupMeta(this.groupIdHex), value: encodeRecord(meta) }])
        const from = this.meta.status
        this.meta = meta
        if (failsGroup) this.events.emit('status:changed', { from, to: 'failed' })
      }
      this.events.emit('message:rejected', { error, seq: entry.seq })
    }
  }

  /**
   * The core of the state machine. `seq` is the channel position (undefined for
   * `receive`); `postedBy` the channel-authenticated sender.
   */
  private async processMessage(bytes: Uint8Array, seq: number | undefined, postedBy: ClientId | undefined): Promise<ReceiveResult> {
    const status = this.meta.status
    if (status === 'removed' || status === 'failed') throw new UsageError('INVALID_STATE', `The group is ${status}`)
    const state = this.requireState()
    const digest = await this.digest(bytes)
    if (this.meta.digests.includes(digest)) {
      if (seq === undefined) return { kind: 'duplicate' }
      throw new MessageError('REPLAYED_MESSAGE', 'The message was already processed')
    }
    const message = decodeMessage(bytes)
    if (message.wireformat === 'mls_public_message') {
      return this.processHandshake(message.publicMessage, bytes, digest, seq, postedBy)
    }
    if (message.wireformat !== 'mls_private_message') {
      throw new MessageError('INVALID_MESSAGE', `Unexpected wire format ${message.wireformat} in a group`)
    }
    const pm = message.privateMessage
    if (!equalBytes(pm.groupId, this.groupId)) throw new MessageError('WRONG_GROUP', WRONG_GROUP_TEXT)
    if (pm.epoch > state.groupContext.epoch) {
      if (seq !== undefined) throw new MessageError('WRONG_EPOCH', `Message for future epoch ${pm.epoch} (current ${state.groupContext.epoch})`)
      if (this.waiting.length >= this.components.maxWaitingMessages) {
        throw new MessageError('WRONG_EPOCH', `Too many messages waiting for future epochs`)
      }
      this.waiting.push(bytes.slice())
      return { kind: 'waiting-for-epoch', epoch: pm.epoch }
    }
    if (pm.contentType !== 'application') {
      throw new MessageError('INVALID_MESSAGE', 'Handshake messages must be PublicMessages')
    }
    const own = this.sentMessages.get(digest)
    if (own !== undefined && postedBy === this.components.clientId) {
      const received = this.receivedMessage(seq, digest, this.components.clientId, own, pm.epoch, true)
      await this.commitState(state, this.withProgress(seq, digest), [
        ...this.inboxOperations(received),
        { type: 'delete', key: storeKeys.groupSent(this.groupIdHex, digest) }
      ])
      this.sentMessages.delete(digest)
      this.events.emit('message:received', received)
      return { kind: 'own-message' }
    }
    const decrypted = await this.decryptApplication(state, pm)
    if (postedBy !== undefined && postedBy !== decrypted.sender) {
      throw new MessageError('INVALID_MESSAGE', `Posted by ${postedBy} but signed by ${decrypted.sender}`)
    }
    const received = this.receivedMessage(seq, digest, decrypted.sender, decrypted.plaintext, pm.epoch, false)
    await this.commitState(decrypted.newState, this.withProgress(seq, digest), this.inboxOperations(received))
    decrypted.consumed.forEach(zeroOutUint8Array)
    this.events.emit('message:received', received)
    return { kind: 'application', sender: decrypted.sender, plaintext: decrypted.plaintext, epoch: pm.epoch }
  }

  private async processHandshake(
    pm: PublicMessage,
    bytes: Uint8Array,
    digest: string,
    seq: number | undefined,
    postedBy: ClientId | undefined
  ): Promise<ReceiveResult> {
    const state = this.requireState()
    if (!equalBytes(pm.content.groupId, this.groupId)) throw new MessageError('WRONG_GROUP', WRONG_GROUP_TEXT)
    if (pm.content.contentType === 'proposal') return this.processProposal(state, pm, digest, seq, postedBy)
    if (pm.content.contentType !== 'commit') throw new MessageError('INVALID_MESSAGE', 'Only commits and proposals are accepted as handshake messages')
    const pending = this.pending
    if (pending !== undefined && equalBytes(pending.commit, bytes)) {
      await this.mergePending(pending, seq, digest)
      return { kind: 'own-commit', epoch: this.meta.epoch }
    }
    if (pm.content.epoch > state.groupContext.epoch && seq !== undefined) {
      // The channel ordered a commit for an epoch this member never reached: it missed one, so it resyncs.
      throw new MessageError('WRONG_EPOCH', `Commit for epoch ${pm.content.epoch}, group is at ${state.groupContext.epoch}`, { details: { [RECOVERABLE]: true } })
    }
    if (pm.content.epoch !== state.groupContext.epoch) {
      throw new MessageError('WRONG_EPOCH', `Commit for epoch ${pm.content.epoch}, group is at ${state.groupContext.epoch}`)
    }
    const sender = pm.content.sender
    const committer =
      sender.senderType === 'member'
        ? memberAtLeaf(state.ratchetTree, sender.leafIndex, this.validator)
        : externalCommitter(pm, this.validator) // an external commit (a resync): the device its new leaf names
    if (postedBy !== undefined && committer !== postedBy) {
      throw new MessageError('INVALID_MESSAGE', `Commit posted by ${postedBy} but sent from the leaf of ${String(committer)}`)
    }
    if (committer === undefined) throw new MessageError('INVALID_MESSAGE', 'The commit is not sent by a member')
    // What every member checks alike (membership tag, signature): a failure here is bad input, skipped by all.
    await this.checkPublicly(state, pm, 'Commit')
    let result
    try {
      result = await processPublicMessage(state, pm, emptyPskIndex, this.components.cs)
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
    if (pending !== undefined) await this.discardPending(pending)
    const before = membersOf(state, this.validator)
    const newState = result.newState
    if (newState.groupActiveState.kind === 'removedFromGroup') {
      const removedAt = state.groupContext.epoch + 1n
      await this.becomeRemoved(removedAt, seq, digest, committer)
      result.consumed.forEach(zeroOutUint8Array)
      return { kind: 'commit', epoch: removedAt }
    }
    await this.commitState(newState, { ...this.withProgress(seq, digest), epoch: newState.groupContext.epoch })
    result.consumed.forEach(zeroOutUint8Array)
    this.emitEpochChange(before, newState, committer, false)
    if (sender.senderType === 'new_member_commit' && before.some((m) => m.clientId === committer)) {
      this.events.emit('member:resynced', { epoch: newState.groupContext.epoch, member: committer, reason: resyncReason(pm) })
    }
    return { kind: 'commit', epoch: newState.groupContext.epoch }
  }

  /** Verify the membership tag and signature of a handshake message: the checks every member makes alike. */
  private async checkPublicly(state: ClientState, pm: PublicMessage, what: string): Promise<void> {
    try {
      await unprotectPublicMessage(state.keySchedule.membershipKey, state.groupContext, state.ratchetTree, pm, this.components.cs)
    } catch (cause) {
      throw wrapMlsFailure('MESSAGE_REJECTED', `${what} rejected`, cause)
    }
  }

  /** A standalone proposal for the current epoch: kept with the state for the next commit to include by reference. */
  private async processProposal(
    state: ClientState,
    pm: PublicMessage,
    digest: string,
    seq: number | undefined,
    postedBy: ClientId | undefined
  ): Promise<ReceiveResult> {
    const content = pm.content
    if (content.contentType !== 'proposal') throw new MessageError('INVALID_MESSAGE', 'Not a proposal')
    if (content.epoch !== state.groupContext.epoch) {
      throw new MessageError('WRONG_EPOCH', `Proposal for epoch ${content.epoch}, group is at ${state.groupContext.epoch}`)
    }
    const sender = content.sender.senderType === 'member' ? memberAtLeaf(state.ratchetTree, content.sender.leafIndex, this.validator) : undefined
    if (content.sender.senderType === 'member') {
      if (sender === undefined) throw new MessageError('INVALID_MESSAGE', 'The proposal is not sent by a member')
      if (postedBy !== undefined && sender !== postedBy) throw new MessageError('INVALID_MESSAGE', `Proposal posted by ${postedBy} but sent from the leaf of ${sender}`)
    } else if (content.sender.senderType !== 'external') {
      throw new MessageError('INVALID_MESSAGE', `A standalone proposal from a ${content.sender.senderType} sender`)
    }
    if (content.proposal.proposalType !== 'remove') throw new MessageError('INVALID_MESSAGE', `Unsupported standalone proposal ${content.proposal.proposalType}`)
    const removes = memberAtLeaf(state.ratchetTree, content.proposal.remove.removed, this.validator)
    if (removes === undefined) throw new MessageError('INVALID_MESSAGE', 'The proposal removes a blank leaf')
    await this.checkPublicly(state, pm, 'Proposal')
    let result
    try {
      result = await processPublicMessage(state, pm, emptyPskIndex, this.components.cs)
    } catch (cause) {
      throw wrapMlsFailure('MESSAGE_REJECTED', 'Proposal rejected', cause)
    }
    await this.commitState(result.newState, this.withProgress(seq, digest))
    this.events.emit('proposal:received', { epoch: state.groupContext.epoch, seq, sender, removes: [removes] })
    return { kind: 'proposal', epoch: state.groupContext.epoch }
  }

  private async mergePending(pending: PendingCommit, seq: number | undefined, digest: string): Promise<void> {
    const before = this.state === undefined ? [] : membersOf(this.state, this.validator)
    const newState = withCurrentHistory(pending.newState, this.state, pending.epoch)
    const meta: GroupMeta = { ...this.withProgress(seq, digest), status: 'active', epoch: newState.groupContext.epoch }
    await this.components.store.write([
      ...this.stateOperations(newState, meta),
      { type: 'delete', key: storeKeys.groupPending(this.groupIdHex) }
    ])
    const from = this.meta.status
    this.state = newState
    this.meta = meta
    this.pending = undefined
    pending.consumed.forEach(zeroOutUint8Array)
    if (from !== 'active') this.events.emit('status:changed', { from, to: 'active' })
    this.emitEpochChange(before, newState, this.components.clientId, true)
  }

  private emitEpochChange(before: Member[], newState: ClientState, committer: ClientId | undefined, own: boolean): void {
    const after = membersOf(newState, this.validator)
    const beforeIds = new Set(before.map((m) => m.clientId))
    const afterIds = new Set(after.map((m) => m.clientId))
    const added = after.filter((m) => !beforeIds.has(m.clientId)).map((m) => m.clientId)
    const removed = before.filter((m) => !afterIds.has(m.clientId)).map((m) => m.clientId)
    const epoch = newState.groupContext.epoch
    this.events.emit('epoch:changed', { epoch, epochAuthenticator: newState.keySchedule.epochAuthenticator.slice(), committer, own })
    if (added.length > 0 || removed.length > 0) this.events.emit('members:changed', { epoch, added, removed })
  }

  private async becomeRemoved(epoch: bigint, seq: number | undefined, digest: string, by: ClientId | undefined): Promise<void> {
    const meta: GroupMeta = { ...this.withProgress(seq, digest), status: 'removed', epoch }
    await this.components.store.write([
      { type: 'put', key: storeKeys.groupMeta(this.groupIdHex), value: encodeRecord(meta) },
      { type: 'delete', key: storeKeys.groupState(this.groupIdHex) },
      { type: 'delete', key: storeKeys.groupPending(this.groupIdHex) },
      ...[...this.sentMessages.keys()].map((d) => ({ type: 'delete' as const, key: storeKeys.groupSent(this.groupIdHex, d) }))
    ])
    this.sentMessages.clear()
    const from = this.meta.status
    this.wipeState()
    this.meta = meta
    this.pending = undefined
    this.events.emit('status:changed', { from, to: 'removed' })
    this.events.emit('group:removed', { epoch, by })
  }

  private wipeState(): void {
    const state = this.state
    if (state === undefined) return
    for (const secret of Object.values(state.keySchedule)) zeroOutUint8Array(secret)
    zeroOutUint8Array(state.signaturePrivateKey)
    this.state = undefined
  }

  private async createPendingCommit(
    intent: CommitIntent
  ): Promise<{ kind: 'not-needed'; reason: string } | { kind: 'created'; pending: PendingCommit }> {
    const state = this.requireActive()
    // A commit would include the member's own Remove, which its sender may not commit (RFC 9420 section 12.2).
    if (this.isLeaving()) throw new UsageError('INVALID_STATE', 'This member is leaving the group; another member commits its removal')
    const members = membersOf(state, this.validator)
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
      const proposed = pendingRemovals(state)
      for (const m of members) {
        if (m.clientId === this.components.clientId) continue
        if (intent.targets.includes(m.clientId) || intent.targets.includes(m.userId)) {
          // A target that asked to leave is removed by its own pending proposal, included by reference.
          if (!proposed.has(m.leafIndex)) proposals.push({ proposalType: 'remove', remove: { removed: m.leafIndex } })
          removed.push(m.clientId)
        }
      }
      if (removed.length === 0) return { kind: 'not-needed', reason: 'No target is a member any more' }
    }
    const result = await createCommit(
      { state, cipherSuite: this.components.cs },
      { extraProposals: proposals, wireAsPublicMessage: true, ratchetTreeExtension: true }
    )
    const commit = encodeMlsMessage(result.commit)
    const welcome =
      result.welcome === undefined ? undefined : encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: result.welcome })
    const pending: PendingCommit = {
      epoch: state.groupContext.epoch,
      intent,
      commit,
      welcome,
      newState: result.newState,
      consumed: result.consumed,
      added,
      removed
    }
    const record: PendingRecord = {
      epoch: pending.epoch,
      intent: encodeIntent(intent),
      commit,
      welcome,
      newState: encodeGroupState(result.newState),
      added,
      removed
    }
    const meta: GroupMeta = { ...this.meta, status: 'committing' }
    await this.components.store.write([
      { type: 'put', key: storeKeys.groupPending(this.groupIdHex), value: encodeRecord(record) },
      { type: 'put', key: storeKeys.groupMeta(this.groupIdHex), value: encodeRecord(meta) }
    ])
    this.pending = pending
    this.meta = meta
    this.events.emit('status:changed', { from: 'active', to: 'committing' })
    return { kind: 'created', pending }
  }

  /** Drop `pending` (if it is still the pending commit) and return to `active`. Call under the lock. */
  private async discardPending(pending: PendingCommit): Promise<void> {
    if (this.pending !== pending) return
    const meta: GroupMeta = { ...this.meta, status: this.meta.status === 'committing' ? 'active' : this.meta.status }
    await this.components.store.write([
      { type: 'delete', key: storeKeys.groupPending(this.groupIdHex) },
      { type: 'put', key: storeKeys.groupMeta(this.groupIdHex), value: encodeRecord(meta) }
    ])
    const from = this.meta.status
    this.pending = undefined
    this.meta = meta
    if (from !== meta.status) this.events.emit('status:changed', { from, to: meta.status })
  }

  /**
   * After a restart in `committing`: catch up, and if the pending commit was
   * neither confirmed nor beaten, post it again (the channel accepts it at most
   * once per epoch) and settle it.
   */
  private async resumePendingCommit(): Promise<void> {
    if (this.pending === undefined) return
    await this.sync()
    const pending = this.pending
    if (pending === undefined) return
    if (pending.epoch !== this.meta.epoch) {
      await this.lock.run(() => this.discardPending(pending))
      return
    }
    const posted = await this.components.channel.postCommit(this.groupId, await commitRequest(pending, this.components.cs))
    if (posted.kind === 'accepted') await this.syncThrough(posted.seq)
    else await this.sync()
    await this.lock.run(() => this.discardPending(pending))
  }

  /** @internal Called by the client after loading: settle a commit left pending by a crash. */
  async recover(): Promise<void> {
    if (this.pending !== undefined) await this.commitLock.run(() => this.resumePendingCommit())
    else await this.sync()
  }

  private async drainWaiting(): Promise<void> {
    const waiting = this.waiting
    this.waiting = []
    for (const bytes of waiting) {
      try {
        await this.receive(bytes)
      } catch (cause) {
        this.events.emit('message:rejected', { error: wrapMlsFailure('MESSAGE_REJECTED', 'Message rejected', cause), seq: undefined })
      }
    }
  }

  private async decryptApplication(
    state: ClientState,
    pm: PrivateMessage
  ): Promise<{ sender: ClientId; plaintext: Uint8Array; newState: ClientState; consumed: Uint8Array[] }> {
    const cs = this.components.cs
    const retention = state.clientConfig.keyRetentionConfig
    try {
      if (pm.epoch < state.groupContext.epoch) {
        const past = state.historicalReceiverData.get(pm.epoch)
        if (past === undefined) throw new MessageError('WRONG_EPOCH', `Epoch ${pm.epoch} is beyond the retention window`)
        const r = await unprotectPrivateMessage(past.senderDataSecret, pm, past.secretTree, past.ratchetTree, past.groupContext, retention, cs)
        const content = r.content.content
        if (content.contentType !== 'application' || content.sender.senderType !== 'member') {
          throw new MessageError('INVALID_MESSAGE', 'Not an application message from a member')
        }
        const sender = memberAtLeaf(past.ratchetTree, content.sender.leafIndex, this.validator)
        if (sender === undefined) throw new MessageError('INVALID_MESSAGE', 'Sender is not a member')
        const historical = new Map(state.historicalReceiverData)
        historical.set(pm.epoch, { ...past, secretTree: r.tree })
        return { sender, plaintext: content.applicationData, newState: { ...state, historicalReceiverData: historical }, consumed: r.consumed }
      }
      const r = await unprotectPrivateMessage(
        state.keySchedule.senderDataSecret,
        pm,
        state.secretTree,
        state.ratchetTree,
        state.groupContext,
        retention,
        cs
      )
      const content = r.content.content
      if (content.contentType !== 'application' || content.sender.senderType !== 'member') {
        throw new MessageError('INVALID_MESSAGE', 'Not an application message from a member')
      }
      const sender = memberAtLeaf(state.ratchetTree, content.sender.leafIndex, this.validator)
      if (sender === undefined) throw new MessageError('INVALID_MESSAGE', 'Sender is not a member')
      return { sender, plaintext: content.applicationData, newState: { ...state, secretTree: r.tree }, consumed: r.consumed }
    } catch (cause) {
      throw wrapMlsFailure('MESSAGE_REJECTED', 'Application message rejected', cause)
    }
  }

  private withProgress(seq: number | undefined, digest: string): GroupMeta {
    const digests = [...this.meta.digests, digest]
    if (digests.length > this.components.replayWindow) digests.splice(0, digests.length - this.components.replayWindow)
    return { ...this.meta, cursor: seq ?? this.meta.cursor, digests }
  }

  private stateOperations(state: ClientState, meta: GroupMeta): StoreOperation[] {
    return [
      { type: 'put', key: storeKeys.groupState(this.groupIdHex), value: encodeGroupState(state) },
      { type: 'put', key: storeKeys.groupMeta(this.groupIdHex), value: encodeRecord(meta) }
    ]
  }

  private receivedMessage(
    seq: number | undefined,
    digest: string,
    sender: ClientId,
    plaintext: Uint8Array,
    epoch: bigint,
    own: boolean
  ): ReceivedMessage {
    return { id: seq === undefined ? `d${digest}` : `s${String(seq).padStart(12, '0')}`, sender, plaintext, epoch, seq, own }
  }

  private inboxOperations(message: ReceivedMessage): StoreOperation[] {
    if (!this.components.durableInbox) return []
    return [{ type: 'put', key: storeKeys.groupInbox(this.groupIdHex, message.id), value: encodeRecord(message) }]
  }

  /**
   * Messages received but not yet acknowledged, oldest first (with
   * `durableInbox`). A message is stored in the same atomic write that advances
   * the group past it, so after a crash it is here even if no listener saw it.
   */
  async unacknowledged(): Promise<ReceivedMessage[]> {
    const entries = await this.components.store.list(storeKeys.groupInboxPrefix(this.groupIdHex))
    return entries.map((e) => decodeRecord<ReceivedMessage>(e.value, 'inbox message'))
  }

  /** Delete received messages from the durable inbox once the application has them. */
  async acknowledge(ids: string | readonly string[]): Promise<void> {
    const list = typeof ids === 'string' ? [ids] : ids
    await this.components.store.write(list.map((id) => ({ type: 'delete' as const, key: storeKeys.groupInbox(this.groupIdHex, id) })))
  }

  /** Persist, then adopt: memory never runs ahead of the store. */
  private async commitState(state: ClientState, meta: GroupMeta, extra: readonly StoreOperation[] = []): Promise<void> {
    await this.components.store.write([...this.stateOperations(state, meta), ...extra])
    this.state = state
    this.meta = meta
  }

  private async digest(bytes: Uint8Array): Promise<string> {
    return toHex(await this.components.cs.hash.digest(bytes))
  }

  private requireState(): ClientState {
    if (this.state === undefined) throw new UsageError('INVALID_STATE', `The group is ${this.meta.status}`)
    return this.state
  }

  private requireActive(): ClientState {
    if (this.meta.status !== 'active') throw new UsageError('INVALID_STATE', `The group is ${this.meta.status}, not active`)
    return this.requireState()
  }
}
