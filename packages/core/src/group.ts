import type { CiphersuiteImpl, ClientState, ClientConfig, Proposal } from 'ts-mls'
import { resync } from './recovery/resync.js'
import { hasPendingProposals, pendingRemovals, proposalMessages, updateProposal, withoutOwnUpdates } from './proposals.js'
import type { ChannelEntry, GroupChannelClient } from './interfaces/channel.js'
import type { ClientStore, StoreDurability, StoreOperation } from './interfaces/client-store.js'
import type { ClientId } from './interfaces/common.js'
import type { ServerExternalSender } from './interfaces/transport.js'
import { MessageError, StorageError, UsageError, MlsToolkitError } from './errors.js'
import { equalBytes, fromHex, toHex } from './bytes.js'
import { basicCredentials, type CredentialValidator } from './identity.js'
import { decodeRecord, encodeRecord, storeKeys } from './records.js'
import { Emitter } from './emitter.js'
import { Mutex } from './mutex.js'
import { commitRequest } from './group-info.js'
import { isOwnTrouble, wrapMlsFailure } from './one-rule.js'
import {
  createCommitMessages,
  encryptApplication,
  exportSecret,
  handshakeWireFormatOf,
  type HandshakeWireFormat,
  membersOf,
  proposalRefKey,
  wipeState,
  withCurrentHistory,
  zeroAll
} from './mls-adapter.js'
import { decodeIntent, encodeIntent, type GroupMeta, type PendingRecord } from './group-records.js'
import { durabilityFor, encodeStagedPending, GroupPersistence } from './group-persistence.js'
import { ChannelSync } from './group-sync.js'
import { GroupReceiver, RECOVERABLE, WRONG_GROUP_TEXT, type Progress } from './group-receive.js'
import { planCommit } from './commit-plan.js'
import {
  advanced,
  caughtUp,
  commitDiscarded,
  commitMerged,
  commitStarted,
  created,
  epochOf,
  failedOn,
  fromRecords,
  joined,
  mlsOf,
  removedAt,
  resynced,
  type CommittingState,
  type GroupState,
  type LiveState,
  type PendingCommit
} from './group-state.js'
import type {
  CommitIntent,
  CommitOutcome,
  GroupEvents,
  GroupProposals,
  ProposalsPosted,
  GroupStatus,
  Member,
  ReceiveResult,
  ReceivedMessage,
  ValidatedKeyPackage
} from './group-types.js'

export * from './group-types.js'
export { HANDSHAKE_WIRE_FORMAT_EXTENSION, handshakeWireFormatOf, type HandshakeWireFormat } from './mls-adapter.js'
export { isOwnTrouble } from './one-rule.js'

/** Services and settings a group needs from its client. */
export interface GroupComponents {
  /** The client this group belongs to. */
  readonly clientId: ClientId
  /** How members' credentials name them (default `basicCredentials`). */
  readonly validator?: CredentialValidator
  /** The server's pinned external sender: the only external sender whose Remove proposals are accepted. */
  readonly serverSender?: () => ServerExternalSender | undefined
  /** The client's store, where the group's state is persisted. */
  readonly store: ClientStore
  /** The Group Channel of the client's connection. */
  readonly channel: GroupChannelClient
  /** The primitives of the group's ciphersuite. */
  readonly cs: CiphersuiteImpl
  /** ts-mls settings (retention, padding, credential checks) built by the client. */
  readonly clientConfig: ClientConfig
  /** Commit attempts before giving up after repeated races. */
  readonly maxCommitAttempts: number
  /** How many message digests to remember for replay detection. */
  readonly replayWindow: number
  /** How many future-epoch messages `receive` holds back at most. */
  readonly maxWaitingMessages: number
  /** Keep each received message in the store, in the same write as the state, until acknowledged. */
  readonly durableInbox: boolean
}


/**
 * One MLS group of one client: a state machine driven by the Group Channel.
 * Its state is one `GroupState` variant (group-state.ts), changed only through
 * the transitions there, each persisted before it is adopted.
 */
export class Group {
  /** The MLS group id. */
  readonly groupId: Uint8Array
  /** `groupId` in lower-case hex, as the services and the store key the group. */
  readonly groupIdHex: string
  private current: GroupState
  private progress: Progress
  private readonly components: GroupComponents
  private readonly persistence: GroupPersistence
  private readonly lock = new Mutex()
  private readonly commitLock = new Mutex()
  private readonly events = new Emitter<GroupEvents>()
  private readonly sentMessages = new Map<string, Uint8Array>()
  private readonly channelSync: ChannelSync
  private waiting: Uint8Array[] = []
  /** True when draining `waiting` stopped at own trouble: the next `receive` drains again. */
  private drainInterrupted = false
  private readonly receiver: GroupReceiver

  private constructor(components: GroupComponents, groupId: Uint8Array, current: GroupState, progress: Progress, persistence?: GroupPersistence) {
    this.components = components
    this.groupId = groupId
    this.groupIdHex = toHex(groupId)
    this.persistence = persistence ?? GroupPersistence.empty(components.store, this.groupIdHex)
    this.current = current
    this.progress = progress
    this.channelSync = new ChannelSync(
      {
        groupId,
        cursor: () => this.progress.cursor,
        status: () => this.current.kind,
        applyNext: (entry) => this.lock.run(() => this.applyNext(entry)),
        rejoin: () => this.lock.run(() => this.rejoin()),
        caughtUp: () => this.lock.run(() => this.finishJoining()),
        cursorExpired: (cause) => this.lock.run(() => this.failExpiredCursor(cause))
      },
      components.channel
    )
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the receiver reads the group's private state through this host
    const group = this
    this.receiver = new GroupReceiver({
      groupId,
      groupIdHex: this.groupIdHex,
      components,
      get validator() {
        return group.validator
      },
      get current() {
        return group.current
      },
      get progress() {
        return group.progress
      },
      get epoch() {
        return group.epoch
      },
      events: this.events,
      sentMessages: this.sentMessages,
      get waiting() {
        return group.waiting
      },
      digest: (bytes) => this.digest(bytes),
      withProgress: (seq, digest) => this.withProgress(seq, digest),
      commitState: (next, progress, extra, durability) => this.commitState(next, progress, extra, durability),
      mergePending: (current, seq, digest) => this.mergePending(current, seq, digest),
      becomeRemoved: (current, epoch, seq, digest, by) => this.becomeRemoved(current, epoch, seq, digest, by),
      emitEpochChange: (before, newState, committer, own) => this.emitEpochChange(before, newState, committer, own),
      receivedMessage: (seq, digest, sender, plaintext, epoch, own) => this.receivedMessage(seq, digest, sender, plaintext, epoch, own),
      inboxOperations: (message) => this.inboxOperations(message)
    })
  }

  /** @internal Build a group from a fresh ts-mls state and persist it with `extra` operations in one write. */
  static async persistNew(
    components: GroupComponents,
    state: ClientState,
    cursor: number,
    extra: readonly StoreOperation[],
    status: 'joining' | 'active' = 'active'
  ): Promise<Group> {
    const group = new Group(components, state.groupContext.groupId, status === 'joining' ? joined(state) : created(state), { cursor, digests: [] })
    await group.persist(group.current, group.progress, extra)
    return group
  }

  /** @internal Load a group from the store. */
  static async load(components: GroupComponents, groupIdHex: string): Promise<Group | undefined> {
    const { store, clientConfig } = components
    const loaded = await GroupPersistence.load(store, groupIdHex, clientConfig)
    if (loaded === undefined) return undefined
    const { meta, state, persistence } = loaded
    let pending: PendingCommit | undefined
    const pendingBytes = await store.get(storeKeys.groupPending(groupIdHex))
    if (pendingBytes !== undefined) {
      const record = decodeRecord<PendingRecord>(pendingBytes, 'pending commit')
      pending = {
        epoch: record.epoch,
        intent: decodeIntent(record.intent),
        commit: record.commit,
        welcome: record.welcome,
        newState: await persistence.loadPending(record, state, clientConfig),
        consumed: [],
        added: record.added,
        removed: record.removed
      }
    }
    const current = fromRecords(meta, state, pending)
    if (current === undefined) throw new StorageError('STORAGE_CORRUPT', `Group ${groupIdHex} is ${meta.status} but its state record is missing`)
    const groupId = state?.groupContext.groupId ?? fromHex(groupIdHex)
    const group = new Group(components, groupId, current, { cursor: meta.cursor, digests: meta.digests }, persistence)
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
    return this.current.kind
  }

  /** How this group sends commits and proposals (its GroupContext's policy, fixed at creation). */
  get handshakeWireFormat(): HandshakeWireFormat {
    return handshakeWireFormatOf(this.requireState().groupContext.extensions)
  }

  /** The current epoch. */
  get epoch(): bigint {
    return epochOf(this.current)
  }

  /** Position of the last channel entry this member processed. */
  get cursor(): number {
    return this.progress.cursor
  }

  /** True while a created commit waits for the channel. */
  get hasPendingCommit(): boolean {
    return this.current.kind === 'committing'
  }

  /** Listen to `type` (see `GroupEvents`); returns a function that stops listening. */
  on<K extends keyof GroupEvents>(type: K, listener: (event: GroupEvents[K]) => void): () => void {
    return this.events.on(type, listener)
  }

  /** The next `type` event (see `GroupEvents`). */
  once<K extends keyof GroupEvents>(type: K): Promise<GroupEvents[K]> {
    return this.events.once(type)
  }

  /** RFC 9420 section 8.7: equal across members exactly when they agree on the epoch. */
  epochAuthenticator(): Uint8Array {
    return this.requireState().keySchedule.epochAuthenticator.slice()
  }

  /** The MLS exporter (RFC 9420 section 8.5), for application keys bound to this epoch. */
  async exportSecret(label: string, context: Uint8Array, length: number): Promise<Uint8Array> {
    return exportSecret(this.requireState(), label, context, length, this.components.cs)
  }

  /** The current members, ordered by leaf index. */
  members(): Member[] {
    const state = mlsOf(this.current)
    return state === undefined ? [] : membersOf(state, this.validator)
  }

  /** This member's leaf index. */
  get ownLeafIndex(): number {
    return this.requireState().privatePath.leafIndex
  }

  /** @internal Snapshot of the ts-mls state, for tests and diagnostics. */
  get mlsState(): ClientState | undefined {
    return mlsOf(this.current)
  }

  /** Encrypt and post an application message in the current epoch. */
  async send(plaintext: Uint8Array | string): Promise<{
    /** The message's log seq. */
    seq: number
  }> {
    const data = typeof plaintext === 'string' ? new TextEncoder().encode(plaintext) : plaintext
    // ts-mls sends no application message while proposals are pending: commit them first (e.g. a member's leave).
    if (this.current.kind === 'active' && hasPendingProposals(this.current.mls) && !this.isLeaving()) {
      await this.commit({ kind: 'update' })
    }
    const message = await this.lock.run(async () => {
      const current = this.current
      if (current.kind !== 'active' && current.kind !== 'committing' && current.kind !== 'joining') {
        throw new UsageError('INVALID_STATE', `The group is ${current.kind}`)
      }
      if (hasPendingProposals(current.mls)) {
        throw new UsageError('INVALID_STATE', this.isLeaving() ? 'This member is leaving the group' : 'Proposals are pending: the next commit includes them')
      }
      const result = await encryptApplication(current.mls, data, this.components.cs)
      // Persist the advanced ratchet before the message leaves: a restart can never reuse a key/nonce.
      // The plaintext is kept with it until the channel echoes the message (a sender cannot decrypt its own).
      const digest = await this.digest(result.message)
      await this.commitState(advanced(current, result.newState), this.progress, [
        { type: 'put', key: storeKeys.groupSent(this.groupIdHex, digest), value: data.slice() }
      ])
      zeroAll(result.consumed)
      this.sentMessages.set(digest, data.slice())
      return result.message
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
   *
   * If a removal of this member is already pending in the epoch (an earlier
   * `leave()`, or the server's Remove of a deleted device), nothing is posted:
   * it resolves with `alreadyProposed: true`, and the pending removal does the
   * leaving. The channel refuses a second Remove of one leaf in an epoch, so a
   * removal this member had not seen yet is found by syncing after that refusal;
   * if that removal lapsed meanwhile (a commit without it ended its epoch), the
   * Remove is proposed again in the new epoch.
   */
  async leave(): Promise<{
    /**
     * The channel position of this member's Remove proposal; when one was
     * already pending, the position this member had processed when it found
     * it (the proposal is at or before it).
     */
    seq: number
    /** True when a removal of this member was already pending and nothing was posted. */
    alreadyProposed: boolean
  }> {
    const pendingOwnRemoval = (): boolean => {
      const current = this.current
      return (current.kind === 'active' || current.kind === 'committing') && pendingRemovals(current.mls).has(current.mls.privatePath.leafIndex)
    }
    for (let attempt = 1; ; attempt++) {
      if (pendingOwnRemoval()) return { seq: this.progress.cursor, alreadyProposed: true }
      try {
        const { seqs } = await this.postProposals(async (state) => [{ proposalType: 'remove', remove: { removed: state.privatePath.leafIndex } }])
        return { seq: seqs[0]!, alreadyProposed: false }
      } catch (cause) {
        if (!(MlsToolkitError.isInstance(cause) && cause.details?.['reason'] === 'removal-pending')) throw cause
        // Refused as a duplicate: a removal this member has not processed yet. Catch up and confirm it is there;
        // if a commit without it ended its epoch meanwhile (it lapsed), propose again in the new one.
        await this.sync()
        if (pendingOwnRemoval()) return { seq: this.progress.cursor, alreadyProposed: true }
        if (attempt >= this.components.maxCommitAttempts) throw cause
      }
    }
  }

  /**
   * Standalone proposals (RFC 9420 section 12.1), for groups where members
   * propose and any member commits: each is posted on its own, the channel
   * orders it, every member keeps it, and the next commit by any member
   * includes all pending proposals by reference. Each call resolves once its
   * proposals are ordered (their channel positions). A proposal lapses if the
   * epoch changes before a commit includes it. `send` commits pending
   * proposals first.
   */
  readonly propose: GroupProposals = {
    add: (keyPackages) => this.proposeAdd(keyPackages),
    remove: (targets) => this.proposeRemove(targets),
    update: () => this.proposeUpdate()
  }

  private async proposeAdd(keyPackages: readonly ValidatedKeyPackage[]): Promise<ProposalsPosted> {
    if (keyPackages.length === 0) throw new UsageError('INVALID_ARGUMENT', 'Nothing to add')
    return this.postProposals(async (state) => {
      const plan = planCommit({ kind: 'add', keyPackages }, membersOf(state, this.validator), pendingRemovals(state), this.components.clientId)
      if (plan.kind === 'not-needed') throw new UsageError('INVALID_ARGUMENT', plan.reason)
      return plan.proposals
    })
  }

  private async proposeRemove(targets: readonly string[]): Promise<ProposalsPosted> {
    if (targets.length === 0) throw new UsageError('INVALID_ARGUMENT', 'Nothing to remove')
    if (targets.includes(this.components.clientId)) throw new UsageError('INVALID_ARGUMENT', 'A member leaves with leave()')
    return this.postProposals(async (state) => {
      const plan = planCommit({ kind: 'remove', targets }, membersOf(state, this.validator), pendingRemovals(state), this.components.clientId)
      if (plan.kind === 'not-needed') throw new UsageError('INVALID_ARGUMENT', plan.reason)
      if (plan.proposals.length === 0) throw new UsageError('INVALID_ARGUMENT', 'Every target is already proposed for removal')
      return plan.proposals
    })
  }

  private async proposeUpdate(): Promise<ProposalsPosted> {
    return this.postProposals(async (state) => {
      const { proposal, key } = await updateProposal(state, this.components.cs)
      // The new leaf's private key is kept before the proposal leaves: a commit that includes it needs it.
      await this.components.store.write([{ type: 'put', key: storeKeys.groupUpdateKey(this.groupIdHex), value: encodeRecord(key) }])
      return [proposal]
    })
  }

  /**
   * This member's own private proposals pending in `state` that the channel
   * has not echoed yet (base64 ProposalRefs): kept by digest in the sent
   * records, like application messages; a value that names no pending
   * proposal is an application message's plaintext.
   */
  private unconfirmedProposals(state: ClientState): Set<string> {
    const refs = new Set<string>()
    for (const value of this.sentMessages.values()) {
      const ref = proposalRefKey(value)
      if (state.unappliedProposals[ref] !== undefined) refs.add(ref)
    }
    return refs
  }

  /**
   * Make proposals from the current state (under the lock) and post them in
   * order, in the group's handshake wire format. Private ones are kept in the
   * state (with their digests, to recognise the channel's echo) before they leave.
   */
  private async postProposals(make: (state: ClientState) => Promise<Proposal[]>): Promise<ProposalsPosted> {
    const messages = await this.lock.run(async () => {
      const current = this.current
      if (current.kind !== 'active' && current.kind !== 'committing') throw new UsageError('INVALID_STATE', `The group is ${current.kind}`)
      const made = await proposalMessages(current.mls, await make(current.mls), this.components.cs)
      if (made.newState !== undefined) {
        // Each is remembered by digest with its ProposalRef until the channel echoes it (see unconfirmedProposals).
        const digests = await Promise.all(made.messages.map((m) => this.digest(m)))
        await this.commitState(
          advanced(current, made.newState),
          this.progress,
          digests.map((d, i) => ({ type: 'put' as const, key: storeKeys.groupSent(this.groupIdHex, d), value: made.refs[i]!.slice() }))
        )
        zeroAll(made.consumed)
        digests.forEach((d, i) => this.sentMessages.set(d, made.refs[i]!.slice()))
      }
      return made.messages
    })
    const seqs: number[] = []
    for (const message of messages) seqs.push((await this.components.channel.postProposal(this.groupId, message)).seq)
    return { seqs }
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
      if (this.current.kind === 'joining') await this.sync()
      await this.resumePendingCommit()
      for (let attempt = 1; attempt <= this.components.maxCommitAttempts; attempt++) {
        const created = await this.lock.run(() => this.createPendingCommit(intent))
        if (created.kind === 'not-needed') return { ...created, attempts: attempt }
        const pending = created.pending
        const posted = await this.postPending(pending)
        if (posted.kind === 'accepted') {
          await this.channelSync.syncThrough(posted.seq)
          if (this.pendingCommit() === pending) throw new MessageError('INTERNAL', 'The channel accepted the commit but did not deliver it')
          return { kind: 'committed', epoch: this.epoch, seq: posted.seq, attempts: attempt, added: pending.added, removed: pending.removed }
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
   * nothing. After a commit, the waiting messages are processed; if one of them
   * meets this member's own trouble (a store failure), it and the rest keep
   * waiting and this call rejects with that error: calling `receive` again with
   * the same commit (`duplicate`) processes them.
   */
  async receive(message: Uint8Array): Promise<ReceiveResult> {
    const result = await this.lock.run(() => this.receiver.processMessage(message, undefined, undefined))
    if (result.kind === 'commit' || this.drainInterrupted) await this.drainWaiting()
    return result
  }

  /** Fetch and process everything the channel holds after this member's cursor. */
  sync(): Promise<void> {
    return this.channelSync.sync()
  }

  /** @internal A pushed entry: processed at once when it is the next one, otherwise triggers a sync. */
  deliver(entry: ChannelEntry): Promise<void> {
    return this.channelSync.deliver(entry)
  }

  /** The next entry of the log, if the group is at it and following the log. Call under the lock. */
  private async applyNext(entry: ChannelEntry): Promise<boolean> {
    if (entry.seq <= this.progress.cursor) return true
    if (entry.seq !== this.progress.cursor + 1 || this.current.kind === 'failed') return false
    await this.processEntry(entry)
    return true
  }

  /**
   * `failed` → `active` by an external commit that replaces this member's old
   * leaf. Entries between the failure and the resync belong to epochs this
   * member cannot read and are passed over. Call under the lock.
   */
  private async rejoin(): Promise<void> {
    const failed = this.current
    if (failed.kind !== 'failed') return
    const reason = failed.reason
    const { channel, cs, clientConfig, maxCommitAttempts } = this.components
    let outcome
    try {
      outcome = await resync(failed.mls, { groupId: this.groupId, channel, cs, clientConfig }, reason, maxCommitAttempts)
    } catch (cause) {
      if (isOwnTrouble(cause)) throw cause
      this.events.emit('message:rejected', { error: wrapMlsFailure('MESSAGE_REJECTED', 'Resync refused', cause), seq: undefined })
      return
    }
    if (outcome.kind !== 'rejoined') return
    const state = outcome.state
    const digest = await this.digest(outcome.commit)
    const progress: Progress = { cursor: outcome.seq, digests: [...this.progress.digests, digest].slice(-this.components.replayWindow) }
    await this.commitState(resynced(failed, state), progress, [{ type: 'delete', key: storeKeys.groupPending(this.groupIdHex) }])
    wipeState(failed.mls, { signingKey: false })
    this.events.emit('group:resynced', { epoch: state.groupContext.epoch, reason })
    this.events.emit('epoch:changed', { epoch: state.groupContext.epoch, epochAuthenticator: state.keySchedule.epochAuthenticator.slice(), committer: this.components.clientId, own: true })
  }

  /** True once this member's own leave (a self-Remove proposal) is pending. */
  private isLeaving(): boolean {
    const state = mlsOf(this.current)
    return state !== undefined && pendingRemovals(state).has(state.privatePath.leafIndex)
  }

  /** The commit waiting for the channel, if any. Read through a method: TypeScript would narrow `this.current` across awaits that change it. */
  private pendingCommit(): PendingCommit | undefined {
    return this.current.kind === 'committing' ? this.current.pending : undefined
  }

  /** `joining` → `active` once caught up with the channel. */
  private async finishJoining(): Promise<void> {
    if (this.current.kind !== 'joining') return
    const next = caughtUp(this.current)
    await this.persist(next)
    this.enter(next)
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
      await this.receiver.processMessage(entry.message, entry.seq, entry.sender)
    } catch (cause) {
      if (isOwnTrouble(cause)) throw cause
      const error = wrapMlsFailure('MESSAGE_REJECTED', 'Message rejected', cause)
      if (this.progress.cursor < entry.seq) {
        // Only a failure that is this member's alone fails the group (and starts recovery); a commit every
        // member rejects alike is skipped by all of them, so nobody forks.
        const failsGroup = entry.kind === 'commit' && error.details?.[RECOVERABLE] === true
        const next = failsGroup ? failedOn(this.current, `cannot process the commit at seq ${entry.seq}: ${error.message}`) : this.current
        const progress: Progress = { ...this.progress, cursor: entry.seq }
        // A commit of the epoch this member leaves is dropped with it.
        const dropPending: StoreOperation[] = failsGroup && this.current.kind === 'committing' ? [{ type: 'delete', key: storeKeys.groupPending(this.groupIdHex) }] : []
        await this.persist(next, progress, dropPending)
        this.enter(next, progress)
      }
      this.events.emit('message:rejected', { error, seq: entry.seq })
    }
  }

  /** `committing` → `active`: the channel delivered this member's own commit. */
  private async mergePending(current: CommittingState, seq: number | undefined, digest: string): Promise<void> {
    const pending = current.pending
    const before = membersOf(current.mls, this.validator)
    const newState = withCurrentHistory(pending.newState, current.mls, pending.epoch)
    const next = commitMerged(current, newState)
    const progress = this.withProgress(seq, digest)
    await this.persist(
      next,
      progress,
      [
        { type: 'delete', key: storeKeys.groupPending(this.groupIdHex) },
        { type: 'delete', key: storeKeys.groupUpdateKey(this.groupIdHex) }
      ],
      durabilityFor(seq)
    )
    zeroAll(pending.consumed)
    this.enter(next, progress)
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

  /** → `removed`: secrets, the pending commit and unechoed plaintexts are deleted. */
  private async becomeRemoved(current: LiveState, epoch: bigint, seq: number | undefined, digest: string, by: ClientId | undefined): Promise<void> {
    const next = removedAt(current, epoch)
    const progress = this.withProgress(seq, digest)
    await this.persist(next, progress, [
      { type: 'delete', key: storeKeys.groupPending(this.groupIdHex) },
      { type: 'delete', key: storeKeys.groupUpdateKey(this.groupIdHex) },
      ...[...this.sentMessages.keys()].map((d) => ({ type: 'delete' as const, key: storeKeys.groupSent(this.groupIdHex, d) }))
    ])
    this.sentMessages.clear()
    // Each group state holds its own copy of the signing key, so zeroing it leaves the client's identity key intact.
    wipeState(current.mls, { signingKey: true })
    this.enter(next, progress)
    this.events.emit('group:removed', { epoch, by })
  }

  private async createPendingCommit(
    intent: CommitIntent
  ): Promise<{ kind: 'not-needed'; reason: string } | { kind: 'created'; pending: PendingCommit }> {
    const current = this.current
    if (current.kind !== 'active') throw new UsageError('INVALID_STATE', `The group is ${current.kind}, not active`)
    const state = current.mls
    // A commit would include the member's own Remove, which its sender may not commit (RFC 9420 section 12.2).
    if (this.isLeaving()) throw new UsageError('INVALID_STATE', 'This member is leaving the group; another member commits its removal')
    const plan = planCommit(intent, membersOf(state, this.validator), pendingRemovals(state), this.components.clientId)
    if (plan.kind === 'not-needed') return plan
    const { proposals, added, removed } = plan
    const { commit, welcome, ...result } = await createCommitMessages(withoutOwnUpdates(state, this.unconfirmedProposals(state)), proposals, this.components.cs)
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
      ...encodeStagedPending(result.newState),
      added,
      removed
    }
    const next = commitStarted(current, pending)
    await this.persist(next, this.progress, [{ type: 'put', key: storeKeys.groupPending(this.groupIdHex), value: encodeRecord(record) }])
    this.enter(next)
    return { kind: 'created', pending }
  }

  /** Drop `pending` (if it is still the pending commit) and return to `active`. Call under the lock. */
  private async discardPending(pending: PendingCommit): Promise<void> {
    if (this.current.kind !== 'committing' || this.current.pending !== pending) return
    const next = commitDiscarded(this.current)
    await this.persist(next, this.progress, [{ type: 'delete', key: storeKeys.groupPending(this.groupIdHex) }])
    this.enter(next)
  }

  /**
   * After a restart in `committing`: catch up, and if the pending commit was
   * neither confirmed nor beaten, post it again (the channel accepts it at most
   * once per epoch) and settle it.
   */
  private async resumePendingCommit(): Promise<void> {
    if (this.pendingCommit() === undefined) return
    await this.sync()
    const pending = this.pendingCommit()
    if (pending === undefined) return
    const posted = await this.postPending(pending)
    if (posted.kind === 'accepted') await this.channelSync.syncThrough(posted.seq)
    else await this.sync()
    await this.lock.run(() => this.discardPending(pending))
  }

  /**
   * Post the pending commit. When the channel refuses it as invalid (a typed
   * error that is not this member's own trouble) it will never be ordered: it
   * is discarded, so the group is as before the call, and the error is thrown.
   */
  private async postPending(pending: PendingCommit): ReturnType<GroupChannelClient['postCommit']> {
    try {
      return await this.components.channel.postCommit(this.groupId, await commitRequest(pending, this.components.cs))
    } catch (error) {
      if (MlsToolkitError.isInstance(error) && !isOwnTrouble(error)) await this.lock.run(() => this.discardPending(pending))
      throw error
    }
  }

  /** @internal Called by the client after loading: settle a commit left pending by a crash. */
  async recover(): Promise<void> {
    if (this.pendingCommit() !== undefined) await this.commitLock.run(() => this.resumePendingCommit())
    else await this.sync()
  }

  private async drainWaiting(): Promise<void> {
    const waiting = this.waiting
    this.waiting = []
    this.drainInterrupted = false
    for (let i = 0; i < waiting.length; i++) {
      try {
        await this.receive(waiting[i]!)
      } catch (cause) {
        if (isOwnTrouble(cause)) {
          // Nothing durable changed for it: it and the rest wait again, processed by the next `receive`.
          this.waiting = [...waiting.slice(i), ...this.waiting]
          this.drainInterrupted = true
          throw cause
        }
        this.events.emit('message:rejected', { error: wrapMlsFailure('MESSAGE_REJECTED', 'Message rejected', cause), seq: undefined })
      }
    }
  }

  private withProgress(seq: number | undefined, digest: string): Progress {
    const digests = [...this.progress.digests, digest]
    if (digests.length > this.components.replayWindow) digests.splice(0, digests.length - this.components.replayWindow)
    return { cursor: seq ?? this.progress.cursor, digests }
  }

  /** The channel no longer holds the entries after the cursor (`CURSOR_EXPIRED`): → `failed`, so sync rejoins. Call under the lock. */
  private async failExpiredCursor(cause: MlsToolkitError): Promise<void> {
    if (this.current.kind === 'removed' || this.current.kind === 'failed') return
    const oldest = cause.details?.['oldestRetainedSeq']
    const next = failedOn(this.current, `the channel deleted entries after seq ${this.progress.cursor} (log retained from seq ${String(oldest)})`)
    const dropPending: StoreOperation[] = this.current.kind === 'committing' ? [{ type: 'delete', key: storeKeys.groupPending(this.groupIdHex) }] : []
    await this.persist(next, this.progress, dropPending)
    this.enter(next)
    this.events.emit('message:rejected', { error: cause, seq: undefined })
  }

  /** The `group/<id>/meta` record of a state and progress (its `status` is the state's kind). */
  private metaRecord(state: GroupState = this.current, progress: Progress = this.progress): GroupMeta {
    return {
      status: state.kind,
      cursor: progress.cursor,
      epoch: epochOf(state),
      digests: [...progress.digests],
      ...(state.kind === 'failed' ? { failure: state.reason } : {})
    }
  }

  /** Adopt a persisted state: memory follows the store. Emits `status:changed` when the kind changes. */
  private enter(next: GroupState, progress: Progress = this.progress): void {
    const from = this.current.kind
    this.current = next
    this.progress = progress
    if (from !== next.kind) this.events.emit('status:changed', { from, to: next.kind })
  }

  /**
   * Write a state (its meta record and whatever of its ts-mls state changed,
   * group-persistence.ts) and `extra` in one atomic batch. A `committing`
   * state's pending epoch stays written until a write deletes the pending record.
   * `relaxed` only for what processing the channel's log wrote (`durabilityFor`).
   */
  private async persist(
    next: GroupState,
    progress: Progress = this.progress,
    extra: readonly StoreOperation[] = [],
    durability: StoreDurability = 'strict'
  ): Promise<void> {
    const pendingKey = storeKeys.groupPending(this.groupIdHex)
    const dropsPending = extra.some((op) => op.type === 'delete' && op.key === pendingKey)
    const staged = next.kind === 'committing' && !dropsPending ? next.pending.newState : undefined
    const plan = this.persistence.plan(mlsOf(next), this.metaRecord(next, progress), staged)
    await this.components.store.write([...plan.operations, ...extra], durability === 'strict' ? undefined : { durability })
    plan.written()
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
  private async commitState(
    next: GroupState & { mls: ClientState },
    progress: Progress,
    extra: readonly StoreOperation[] = [],
    durability: StoreDurability = 'strict'
  ): Promise<void> {
    await this.persist(next, progress, extra, durability)
    this.enter(next, progress)
  }

  private async digest(bytes: Uint8Array): Promise<string> {
    return toHex(await this.components.cs.hash.digest(bytes))
  }

  private requireState(): ClientState {
    const state = mlsOf(this.current)
    if (state === undefined) throw new UsageError('INVALID_STATE', `The group is ${this.current.kind}`)
    return state
  }
}
