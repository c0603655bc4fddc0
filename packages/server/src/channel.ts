import type {
  AbortOptions,
  AccessWindow,
  ChannelEntry,
  ClientId,
  FetchCursor,
  GroupRecord,
  LogRecord,
  PostCommitResult,
  ServerStore,
  WelcomeEntry
} from '@mls/core/interfaces'
import { ServiceError, equalBytes, fromHex, handshakeWireFormatOf, throwIfAborted, toHex, type CredentialValidator } from '@mls/core'
import type { Proposal } from '@mls/core/mls'
import type { ServiceLimits } from './limits.js'
import { SERVER_SENDER, type ChannelService, type ExternalJoinPolicy, type FetchOptions, type InstanceBus, type InstanceNotice } from './services.js'
import { decodeMessage, type Suites } from './suites.js'
import { TokenBuckets } from './token-bucket.js'
import type { Subscriptions } from './subscriptions.js'
import { KeyedMutex } from './keyed-mutex.js'
import { applyToRoster, readCommit, welcomeRecipients, type ReadCommit } from './commit.js'
import { encodePublicGroupState, externalRemoveProposal, verifyCommit, verifyMemberProposal, withPendingProposal, type PendingProposal } from '@mls/core/public-group'
import { PublicStates, asServiceError, checkUploadedGroupInfo, directoryAuthService, initialPublicState, type LoadedPublicState } from './public-state.js'

/** How long noted fetch cursors wait before they are written (one store call for all of them). */
const FETCH_CURSOR_FLUSH_MS = 1000

/** Appends of one proposal tried before giving up when other instances keep changing the group's public state. */
const MAX_PROPOSAL_ATTEMPTS = 8

function invalid(message: string): ServiceError {
  return new ServiceError('INVALID_MESSAGE', message)
}

function checkBytes(value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new ServiceError('INVALID_ARGUMENT', `${what} must be a Uint8Array`)
}

function checkSize(bytes: Uint8Array, max: number, what: string): void {
  if (bytes.length > max) throw new ServiceError('PAYLOAD_TOO_LARGE', `${what} is ${bytes.length} bytes, the limit is ${max}`, { details: { size: bytes.length, limit: max } })
}

function checkSeq(afterSeq: unknown): asserts afterSeq is number {
  if (typeof afterSeq !== 'number' || !Number.isSafeInteger(afterSeq) || afterSeq < 0) {
    throw new ServiceError('INVALID_ARGUMENT', `afterSeq must be a non-negative integer, got ${String(afterSeq)}`)
  }
}

/**
 * A group record's roster and access windows by client id, built once per roster or access array (a commit
 * replaces them; a message does not), so that checking a caller, finding its windows and finding the readers of
 * an entry cost the same in a group of 10 and of 10,000 members.
 */
const rosterIds = new WeakMap<readonly { readonly clientId: ClientId }[], ReadonlySet<ClientId>>()
const windowsById = new WeakMap<readonly AccessWindow[], ReadonlyMap<ClientId, readonly AccessWindow[]>>()

function inRoster(roster: readonly { readonly clientId: ClientId }[], clientId: ClientId): boolean {
  let ids = rosterIds.get(roster)
  if (ids === undefined) rosterIds.set(roster, (ids = new Set(roster.map((e) => e.clientId))))
  return ids.has(clientId)
}

/** Each reader's access windows, by `fromSeq`. */
function readers(access: readonly AccessWindow[]): ReadonlyMap<ClientId, readonly AccessWindow[]> {
  let index = windowsById.get(access)
  if (index === undefined) {
    const built = new Map<ClientId, AccessWindow[]>()
    for (const w of access) {
      const list = built.get(w.clientId)
      if (list === undefined) built.set(w.clientId, [w])
      else list.push(w)
    }
    for (const list of built.values()) list.sort((a, b) => a.fromSeq - b.fromSeq)
    windowsById.set(access, (index = built))
  }
  return index
}

/** `clientId`'s access windows, by `fromSeq`. */
function windowsOf(access: readonly AccessWindow[], clientId: ClientId): readonly AccessWindow[] {
  return readers(access).get(clientId) ?? []
}

/** Whether `window` (with -1 meaning `seq`) lets its client read the entry at `seq`. */
function covers(window: AccessWindow, seq: number): boolean {
  const from = window.fromSeq === -1 ? seq : window.fromSeq
  const until = window.untilSeq === -1 ? seq : window.untilSeq
  return from < seq && (until === null || seq <= until)
}

export function createChannelService(deps: {
  store: ServerStore
  suites: Suites
  limits: ServiceLimits
  subscriptions: Subscriptions
  bus?: InstanceBus | undefined
  validator: CredentialValidator
  externalJoinPolicy?: ExternalJoinPolicy
  externalSender?: { readonly signaturePublicKey: Uint8Array; readonly signaturePrivateKey: Uint8Array } | undefined
  now?: () => number
}): ChannelService {
  const { store, suites, limits, subscriptions, bus, validator } = deps
  const groupsCreated = new TokenBuckets(limits.groupsPerHour / 60, limits.groupBurst, deps.now ?? Date.now)
  const mutex = new KeyedMutex()
  const publicStates = new PublicStates(store, suites, limits.groupCacheSize)

  function fetchArgs(options: FetchOptions | number | undefined, abortOptions: AbortOptions | undefined): { limit: number; signal: AbortSignal | undefined } {
    const given = typeof options === 'number' ? options : options?.limit
    const signal = (typeof options === 'object' ? options.signal : undefined) ?? abortOptions?.signal
    if (given !== undefined && (typeof given !== 'number' || !Number.isSafeInteger(given) || given < 1)) {
      throw new ServiceError('INVALID_ARGUMENT', `limit must be a positive integer, got ${String(given)}`)
    }
    return { limit: Math.min(given ?? limits.defaultFetchLimit, limits.maxFetchLimit), signal }
  }

  function checkGroupId(groupId: unknown): asserts groupId is Uint8Array {
    checkBytes(groupId, 'groupId')
    if (groupId.length === 0 || groupId.length > limits.maxGroupIdBytes) {
      throw new ServiceError('INVALID_ARGUMENT', `A group id is 1 to ${limits.maxGroupIdBytes} bytes, got ${groupId.length}`)
    }
  }

  // Group records (epoch, roster, access) are cached: every mutation of a group
  // goes through this service under the group's mutex, so the cache is exact for
  // one server process. A commit invalidates it before it is stored; a load that
  // raced with an invalidation is not cached (generation check: one counter for
  // every group, not one per group, so it never grows). With several
  // instances (a bus) the cache is off (createServices sets groupCacheSize to
  // 0): another instance may change the group.
  const cache = new Map<string, GroupRecord>()
  let generation = 0

  function invalidate(groupHex: string): void {
    cache.delete(groupHex)
    generation++
  }

  async function loadGroup(groupHex: string, options: AbortOptions | undefined): Promise<GroupRecord> {
    const cached = cache.get(groupHex)
    if (cached !== undefined) return cached
    const seen = generation
    const group = await store.getGroup(groupHex, options)
    if (group === undefined) throw new ServiceError('UNKNOWN_GROUP', `Unknown group ${groupHex}`)
    if (generation === seen && limits.groupCacheSize > 0) {
      if (cache.size >= limits.groupCacheSize) cache.delete(cache.keys().next().value as string)
      cache.set(groupHex, group)
    }
    return group
  }

  function requireMember(group: GroupRecord, caller: ClientId): void {
    if (!inRoster(group.roster, caller)) throw new ServiceError('NOT_A_MEMBER', `${caller} is not a member of group ${group.groupId}`)
  }

  function toEntry(groupId: Uint8Array, record: LogRecord): ChannelEntry {
    return { groupId: groupId.slice(), seq: record.seq, kind: record.kind, epoch: record.epoch, sender: record.sender, message: record.message.slice() }
  }

  // Fetch cursors (retention keeps what a current member has not fetched): noted here, written in batches.
  const noted = new Map<string, FetchCursor>()
  let flushTimer: ReturnType<typeof setTimeout> | undefined
  let flushing: Promise<void> = Promise.resolve()

  function noteFetched(groupHex: string, clientId: ClientId, seq: number): void {
    if (seq <= 0) return
    const key = `${groupHex}/${clientId}`
    if ((noted.get(key)?.seq ?? -1) >= seq) return
    noted.set(key, { groupId: groupHex, clientId, seq })
    if (flushTimer !== undefined) return
    flushTimer = setTimeout(() => {
      flushTimer = undefined
      flushCursors(undefined).catch(() => undefined) // kept in `noted`, written with the next batch
    }, FETCH_CURSOR_FLUSH_MS)
    flushTimer.unref?.()
  }

  function flushCursors(options: AbortOptions | undefined): Promise<void> {
    const run = flushing.then(async () => {
      if (noted.size === 0) return
      const batch = [...noted.values()]
      noted.clear()
      try {
        await store.advanceFetchCursors(batch, options)
      } catch (error) {
        for (const c of batch) if ((noted.get(`${c.groupId}/${c.clientId}`)?.seq ?? -1) < c.seq) noted.set(`${c.groupId}/${c.clientId}`, c)
        throw error
      }
    })
    flushing = run.catch(() => undefined)
    return run
  }

  function fanOutEntry(groupId: Uint8Array, access: readonly AccessWindow[], record: LogRecord): void {
    // Only connected clients get a push: walk whichever is smaller, the connected clients or the group's readers.
    const byReader = readers(access)
    const candidates = subscriptions.size < byReader.size ? [...subscriptions.clients()] : [...byReader.keys()]
    for (const clientId of candidates) {
      if (windowsOf(access, clientId).some((w) => covers(w, record.seq))) {
        subscriptions.emit(clientId, () => ({ type: 'entry:appended', entry: toEntry(groupId, record) }))
      }
    }
    bus?.publish({ type: 'entry', groupId: toHex(groupId), seq: record.seq })
  }

  // Another instance appended: push it to this instance's connected readers (read back from the store).
  bus?.subscribe((notice) => {
    relay(notice).catch(() => undefined)
  })

  async function relay(notice: InstanceNotice): Promise<void> {
    if (notice.type === 'welcome') {
      if (!subscriptions.has(notice.clientId)) return
      const [record] = await store.readWelcomes(notice.clientId, notice.seq - 1, 1)
      if (record === undefined || record.seq !== notice.seq) return
      subscriptions.emit(notice.clientId, () => ({
        type: 'welcome:appended',
        entry: { seq: record.seq, groupId: fromHex(record.groupId), welcome: record.welcome.slice(), commitSeq: record.commitSeq }
      }))
      return
    }
    const group = await store.getGroup(notice.groupId)
    if (group === undefined) return
    const readers = new Set(group.access.filter((w) => covers(w, notice.seq) && subscriptions.has(w.clientId)).map((w) => w.clientId))
    if (readers.size === 0) return
    const [record] = await store.readLog(notice.groupId, notice.seq - 1, 1)
    if (record === undefined || record.seq !== notice.seq) return
    const groupId = fromHex(notice.groupId)
    for (const clientId of readers) subscriptions.emit(clientId, () => ({ type: 'entry:appended', entry: toEntry(groupId, record) }))
  }

  /** Whether `caller` may join `groupHex` by an external commit without being in its roster. */
  async function mayJoinExternally(caller: ClientId, groupId: Uint8Array): Promise<boolean> {
    if (deps.externalJoinPolicy === undefined) return false
    return (await deps.externalJoinPolicy({ caller, groupId: groupId.slice() })) === true
  }

  /**
   * An external commit (RFC 9420 section 12.4.3.2). Resync: a device in the
   * roster replaces its own leaf (the commit removes exactly that leaf).
   * Join: a device not in the roster, only if `externalJoinPolicy` allows it;
   * it removes nobody. Either way the new leaf names the caller with its
   * registered key, and the commit is verified against the public state.
   */
  async function externalCommit(
    caller: ClientId,
    groupId: Uint8Array,
    group: GroupRecord,
    read: ReadCommit,
    request: { commit: Uint8Array; welcome?: Uint8Array; groupInfo?: Uint8Array },
    options: AbortOptions | undefined
  ): Promise<PostCommitResult> {
    const groupHex = group.groupId
    const own = group.roster.find((e) => e.clientId === caller)
    if (own === undefined && !(await mayJoinExternally(caller, groupId))) {
      throw new ServiceError('NOT_A_MEMBER', `${caller} may not join group ${groupHex} by an external commit: only a device in its roster may (resync)`, {
        details: { reason: 'external-join-refused' }
      })
    }
    if (read.epoch !== group.epoch) return { kind: 'conflict', epoch: group.epoch }
    if (request.welcome !== undefined) throw new ServiceError('WELCOME_INVALID', 'An external commit adds nobody, so it has no Welcome')
    const loaded = await publicStates.load(group, options)
    if (privateHandshakes(loaded)) throw wireFormatRefused('A group with private handshakes has no public state to check an external commit against')
    const verified = await verifyCommit(loaded.state, read.message, loaded.cs, { authService: directoryAuthService(store, validator, options) }).catch((error: unknown) => {
      throw asServiceError(error)
    })
    const refuse = (message: string): ServiceError => new ServiceError('INVALID_MESSAGE', message, { details: { reason: 'invalid-external-commit' } })
    if (validator.clientIdFromCredential(verified.committerNewLeafNode.credential) !== caller) throw refuse("The external commit's leaf node does not name the caller")
    const removedLeaves = verified.removed.map((r) => r.leafIndex)
    if (own !== undefined && (removedLeaves.length !== 1 || removedLeaves[0] !== own.leafIndex)) {
      throw refuse(`A resync by ${caller} must remove exactly its own leaf ${own.leafIndex}`)
    }
    if (own === undefined && removedLeaves.length !== 0) throw refuse('An external join removes nobody')
    if (request.groupInfo !== undefined) await checkUploadedGroupInfo(verified.next, request.groupInfo, suites, loaded.cs)
    const roster = [...group.roster.filter((e) => e.clientId !== caller), { leafIndex: verified.committerLeafIndex, clientId: caller }].sort(
      (x, y) => x.leafIndex - y.leafIndex
    )
    const access: AccessWindow[] = group.access.map((w) => ({ ...w }))
    if (own === undefined) access.push({ clientId: caller, fromSeq: -1, untilSeq: null })
    const nextEpoch = group.epoch + 1n
    const publicState = { epoch: nextEpoch, state: encodePublicGroupState(verified.next), groupInfo: request.groupInfo?.slice() }
    const digest = await suites.digest(request.commit)
    throwIfAborted(options?.signal)
    const entry = { kind: 'commit' as const, epoch: read.epoch, sender: caller, message: request.commit.slice(), digest }
    invalidate(groupHex)
    const result = await store.appendCommit(groupHex, { expectedEpoch: group.epoch, entry, roster, access, welcomes: [], publicState }, options)
    invalidate(groupHex)
    if (result.kind === 'conflict') {
      publicStates.forget(groupHex)
      return { kind: 'conflict', epoch: result.epoch }
    }
    publicStates.remember(groupHex, { state: verified.next, cs: loaded.cs, groupInfo: publicState.groupInfo, epoch: nextEpoch, stored: publicState.state })
    fanOutEntry(groupId, access, { ...entry, seq: result.seq })
    return { kind: 'accepted', seq: result.seq, epoch: nextEpoch }
  }

  /**
   * Append a proposal to the log and, when it was read and verified (`ref`
   * and `pending`; a private group's proposals are not), to the pending set
   * of the public state (under the group's mutex). The store appends it only
   * while it still holds the state the proposal was checked against (another
   * instance may have appended a proposal meanwhile): `retry` when it did
   * not, so the caller loads the state again and checks again.
   */
  async function appendProposal(
    groupId: Uint8Array,
    group: GroupRecord,
    loaded: LoadedPublicState,
    proposal: { ref?: string; pending?: PendingProposal; message: Uint8Array; sender: ClientId; digest: string },
    options: AbortOptions | undefined
  ): Promise<{ seq: number } | 'retry'> {
    const groupHex = group.groupId
    const next = proposal.ref !== undefined && proposal.pending !== undefined ? withPendingProposal(loaded.state, proposal.ref, proposal.pending) : undefined
    const publicState = { epoch: group.epoch, state: next === undefined ? loaded.stored : encodePublicGroupState(next), groupInfo: loaded.groupInfo }
    const entry = { kind: 'proposal' as const, epoch: group.epoch, sender: proposal.sender, message: proposal.message.slice(), digest: proposal.digest }
    throwIfAborted(options?.signal)
    const result = await store.appendProposal(groupHex, { expectedEpoch: group.epoch, expectedState: loaded.stored, entry, publicState }, options)
    if (result.kind === 'duplicate') throw new ServiceError('REPLAYED_MESSAGE', 'This proposal is already in the group log')
    if (result.kind === 'conflict') {
      publicStates.forget(groupHex)
      invalidate(groupHex)
      if (result.epoch === group.epoch) return 'retry'
      throw new ServiceError('WRONG_EPOCH', `The group moved on to epoch ${result.epoch}`, { details: { epoch: group.epoch, currentEpoch: result.epoch } })
    }
    if (cache.get(groupHex) === group) cache.set(groupHex, { ...group, lastSeq: result.seq })
    if (next !== undefined) publicStates.remember(groupHex, { state: next, cs: loaded.cs, groupInfo: loaded.groupInfo, epoch: group.epoch, stored: publicState.state })
    fanOutEntry(groupId, group.access, { ...entry, seq: result.seq })
    return { seq: result.seq }
  }

  /**
   * What the roster rules of a commit (commit.ts) will demand of a standalone
   * proposal, checked when it is ordered, so that the next honest commit,
   * which includes every pending proposal by reference, is not refused for
   * it: an Add uses a KeyPackage the Directory served for the client it
   * names, who is neither a member nor added by another pending proposal; an
   * Update's leaf node names the caller.
   */
  async function checkProposalForRoster(group: GroupRecord, loaded: LoadedPublicState, caller: ClientId, proposal: Proposal, options: AbortOptions | undefined): Promise<void> {
    if (proposal.proposalType === 'update') {
      if (validator.clientIdFromCredential(proposal.update.leafNode.credential) !== caller) {
        throw new ServiceError('INVALID_MESSAGE', "The Update's leaf node does not name the caller", { details: { reason: 'invalid-proposals' } })
      }
      return
    }
    if (proposal.proposalType !== 'add') return
    const pendingAdds = [...(loaded.state.proposals?.values() ?? [])].flatMap((p) => (p.proposal.proposalType === 'add' ? [p.proposal] : []))
    await applyToRoster(group, { leafIndex: -1, clientId: caller }, [...pendingAdds, proposal], {
      suites,
      validator,
      servedTo: (ref) => store.lookupServedKeyPackage(ref, options),
      registeredKey: async (clientId) => (await store.getIdentity(clientId, options))?.signaturePublicKey
    })
  }

  /** True when the group's policy (its GroupContext, as the creator's GroupInfo showed it) is PrivateMessage handshakes. */
  function privateHandshakes(loaded: LoadedPublicState): boolean {
    return handshakeWireFormatOf(loaded.state.groupContext.extensions) === 'private'
  }

  function wireFormatRefused(message: string): ServiceError {
    return new ServiceError('INVALID_MESSAGE', message, { details: { reason: 'handshake-wire-format' } })
  }

  /** Tell each recipient of a stored commit's Welcome (and the other instances). */
  function pushWelcomes(groupId: Uint8Array, welcome: Uint8Array | undefined, commitSeq: number, welcomeSeqs: readonly { clientId: ClientId; seq: number }[]): void {
    if (welcome === undefined) return
    for (const { clientId, seq } of welcomeSeqs) {
      subscriptions.emit(clientId, () => ({ type: 'welcome:appended', entry: { seq, groupId: groupId.slice(), welcome: welcome.slice(), commitSeq } }))
      bus?.publish({ type: 'welcome', clientId, seq })
    }
  }

  /**
   * A commit sent as a PrivateMessage, in a group whose policy allows it. The
   * channel cannot read it: it orders it (one commit per epoch, from the
   * header's epoch and content type, by a device in the roster) and learns
   * who it adds from its Welcome, whose recipients are KeyPackages the
   * Directory served. It cannot see removals (the roster only grows, and a
   * removed device keeps reading ciphertext it cannot decrypt), verify the
   * commit, or keep a public state or GroupInfo (docs/server.md).
   */
  async function privateCommit(
    caller: ClientId,
    groupId: Uint8Array,
    request: { epoch: bigint; commit: Uint8Array; welcome?: Uint8Array; groupInfo?: Uint8Array },
    contentType: string,
    epoch: bigint,
    options: AbortOptions | undefined
  ): Promise<PostCommitResult> {
    if (contentType !== 'commit') throw new ServiceError('INVALID_MESSAGE', `Expected a commit, got ${contentType} content`, { details: { reason: 'not-a-commit' } })
    if (epoch !== request.epoch) throw invalid(`The commit is for epoch ${epoch}, the request says ${request.epoch}`)
    const groupHex = toHex(groupId)
    return mutex.run(groupHex, async () => {
      throwIfAborted(options?.signal)
      const group = await loadGroup(groupHex, options)
      requireMember(group, caller)
      const loaded = await publicStates.load(group, options)
      if (!privateHandshakes(loaded)) throw wireFormatRefused("This group's commits are PublicMessages")
      if (epoch !== group.epoch) return { kind: 'conflict', epoch: group.epoch }
      const added = new Map<string, ClientId>()
      if (request.welcome !== undefined) {
        const message = decodeMessage(request.welcome)
        if (message === undefined || message.wireformat !== 'mls_welcome') throw new ServiceError('WELCOME_INVALID', 'The Welcome is not a decodable mls_welcome MLSMessage')
        for (const secret of message.welcome.secrets) {
          const ref = toHex(secret.newMember)
          const clientId = await store.lookupServedKeyPackage(ref, options)
          if (clientId === undefined) throw new ServiceError('WELCOME_INVALID', 'The Welcome is addressed to a KeyPackage the Directory did not hand out', { details: { ref } })
          if (group.roster.some((e) => e.clientId === clientId) || [...added.values()].includes(clientId)) {
            throw new ServiceError('WELCOME_INVALID', `The Welcome adds ${clientId}, who is already in the roster`, { details: { ref } })
          }
          added.set(ref, clientId)
        }
      }
      // Roster positions of a private group are the channel's own bookkeeping, not MLS leaf indexes.
      let next = group.roster.reduce((max, e) => Math.max(max, e.leafIndex + 1), 0)
      const roster = [...group.roster.map((e) => ({ ...e })), ...[...added.values()].map((clientId) => ({ leafIndex: next++, clientId }))]
      const access: AccessWindow[] = [...group.access.map((w) => ({ ...w })), ...[...added.values()].map((clientId) => ({ clientId, fromSeq: -1, untilSeq: null }))]
      const nextEpoch = group.epoch + 1n
      const publicState = { epoch: nextEpoch, state: loaded.stored, groupInfo: undefined }
      const digest = await suites.digest(request.commit)
      throwIfAborted(options?.signal)
      const entry = { kind: 'commit' as const, epoch, sender: caller, message: request.commit.slice(), digest }
      const welcome = request.welcome
      invalidate(groupHex)
      const result = await store.appendCommit(
        groupHex,
        { expectedEpoch: group.epoch, entry, roster, access, welcomes: welcome === undefined ? [] : [...added.values()].map((clientId) => ({ clientId, welcome })), publicState },
        options
      )
      invalidate(groupHex)
      if (result.kind === 'conflict') {
        publicStates.forget(groupHex)
        return { kind: 'conflict', epoch: result.epoch }
      }
      publicStates.remember(groupHex, { ...loaded, groupInfo: undefined, epoch: nextEpoch })
      fanOutEntry(groupId, access, { ...entry, seq: result.seq })
      pushWelcomes(groupId, welcome, result.seq, result.welcomeSeqs)
      return { kind: 'accepted', seq: result.seq, epoch: nextEpoch }
    })
  }

  /** A proposal sent as a PrivateMessage, in a group whose policy allows it: ordered in its epoch by a device in the roster, unread. */
  async function privateProposal(caller: ClientId, groupId: Uint8Array, proposal: Uint8Array, epoch: bigint, options: AbortOptions | undefined): Promise<{ seq: number }> {
    const groupHex = toHex(groupId)
    const digest = await suites.digest(proposal)
    return mutex.run(groupHex, () =>
      untilAppended(async () => {
        throwIfAborted(options?.signal)
        const group = await loadGroup(groupHex, options)
        requireMember(group, caller)
        const loaded = await publicStates.load(group, options)
        if (!privateHandshakes(loaded)) throw wireFormatRefused("This group's proposals are PublicMessages")
        if (epoch !== group.epoch) {
          throw new ServiceError('WRONG_EPOCH', `The proposal is for epoch ${epoch}, the group is at epoch ${group.epoch}`, { details: { epoch, currentEpoch: group.epoch } })
        }
        // Unread: the public state stays as it is (the store still checks it is the one loaded).
        return appendProposal(groupId, group, loaded, { message: proposal, sender: caller, digest }, options)
      })
    )
  }

  /** Run `attempt` until the store takes its proposal (another instance's proposal in between means verify again). */
  async function untilAppended<T>(attempt: () => Promise<T | 'retry'>): Promise<T> {
    for (let tries = 1; ; tries++) {
      const result = await attempt()
      if (result !== 'retry') return result
      if (tries >= MAX_PROPOSAL_ATTEMPTS) {
        throw new ServiceError('COMMIT_CONFLICT', `The group's public state changed under ${tries} attempts to append the proposal`, { details: { reason: 'proposal-race' } })
      }
    }
  }

  return {
    async createGroup(caller: ClientId, groupId: Uint8Array, request: { groupInfo: Uint8Array }, options?: AbortOptions): Promise<void> {
      throwIfAborted(options?.signal)
      checkGroupId(groupId)
      checkBytes(request?.groupInfo, 'groupInfo')
      checkSize(request.groupInfo, limits.maxHandshakeBytes, 'The GroupInfo')
      const groupHex = toHex(groupId)
      const publicState = await initialPublicState(caller, groupId, request.groupInfo, { store, suites, validator, options })
      throwIfAborted(options?.signal)
      const retryAfterMs = groupsCreated.take(caller)
      if (retryAfterMs > 0) {
        throw new ServiceError('QUOTA_EXCEEDED', `${caller} created ${limits.groupBurst} groups recently; retry in ${retryAfterMs} ms`, {
          details: { quota: 'groups', limit: limits.groupsPerHour, retryAfterMs }
        })
      }
      const created = await store.createGroup(
        {
          groupId: groupHex,
          epoch: publicState.epoch,
          lastSeq: 0,
          roster: [{ leafIndex: 0, clientId: caller }],
          access: [{ clientId: caller, fromSeq: 0, untilSeq: null }],
          publicState
        },
        options
      )
      if (!created) {
        groupsCreated.refund(caller)
        throw new ServiceError('GROUP_EXISTS', `Group ${groupHex} exists`)
      }
    },

    async postCommit(
      caller: ClientId,
      groupId: Uint8Array,
      request: { epoch: bigint; commit: Uint8Array; welcome?: Uint8Array; groupInfo?: Uint8Array },
      options?: AbortOptions
    ): Promise<PostCommitResult> {
      throwIfAborted(options?.signal)
      checkGroupId(groupId)
      checkBytes(request?.commit, 'commit')
      if (request.groupInfo !== undefined) {
        checkBytes(request.groupInfo, 'groupInfo')
        checkSize(request.groupInfo, limits.maxHandshakeBytes, 'The GroupInfo')
      }
      if (typeof request.epoch !== 'bigint') throw new ServiceError('INVALID_ARGUMENT', 'epoch must be a bigint')
      checkSize(request.commit, limits.maxHandshakeBytes, 'The commit')
      if (request.welcome !== undefined) {
        checkBytes(request.welcome, 'welcome')
        checkSize(request.welcome, limits.maxHandshakeBytes, 'The Welcome')
      }
      const privateMessage = decodeMessage(request.commit)
      if (privateMessage?.wireformat === 'mls_private_message') {
        const header = privateMessage.privateMessage
        if (!equalBytes(header.groupId, groupId)) throw invalid('The commit is for another group')
        return privateCommit(caller, groupId, request, header.contentType, header.epoch, options)
      }
      const read = readCommit(request.commit, groupId, request.epoch)
      const groupHex = toHex(groupId)
      return mutex.run(groupHex, async () => {
        throwIfAborted(options?.signal)
        const group = await loadGroup(groupHex, options)
        if (read.external) return externalCommit(caller, groupId, group, read, request, options)
        requireMember(group, caller)
        if (read.epoch !== group.epoch) return { kind: 'conflict', epoch: group.epoch }
        const committer = group.roster.find((e) => e.leafIndex === read.senderLeaf)
        if (committer === undefined || committer.clientId !== caller) {
          throw new ServiceError('INVALID_MESSAGE', `The commit is sent by leaf ${read.senderLeaf}, which is not the caller's`, { details: { reason: 'unknown-sender' } })
        }
        const pathLeaf = read.commit.path?.leafNode
        if (pathLeaf !== undefined) {
          if (validator.clientIdFromCredential(pathLeaf.credential) !== caller) throw invalid("The update path's leaf node does not name the caller")
          const identity = await store.getIdentity(caller, options)
          if (identity === undefined || !equalBytes(identity.signaturePublicKey, pathLeaf.signaturePublicKey)) {
            throw invalid("The update path's leaf node does not carry the caller's registered signature key")
          }
        }
        // Verify the commit as a public group does, before anything else reads its proposals.
        const loaded = await publicStates.loadIfAny(group, options)
        let verified: Awaited<ReturnType<typeof verifyCommit>> | undefined
        let proposals: readonly Proposal[]
        if (loaded === undefined) {
          // A group created before the channel kept public state (server store schema 1): its commits
          // are checked by the roster rules only, as then (docs/server.md); it has no proposals by reference.
          if (read.commit.proposals.some((p) => p.proposalOrRefType !== 'proposal')) {
            throw invalid('This group has no public state, so its commits cannot carry proposals by reference')
          }
          proposals = read.proposals
        } else {
          if (privateHandshakes(loaded)) throw wireFormatRefused("This group's commits are PrivateMessages")
          verified = await verifyCommit(loaded.state, read.message, loaded.cs, { authService: directoryAuthService(store, validator, options) }).catch((error: unknown) => {
            throw asServiceError(error)
          })
          proposals = verified.proposals.map((p) => p.proposal)
        }
        const change = await applyToRoster(group, committer, proposals, {
          suites,
          validator,
          servedTo: (ref) => store.lookupServedKeyPackage(ref, options),
          registeredKey: async (clientId) => (await store.getIdentity(clientId, options))?.signaturePublicKey
        })
        for (const { leafIndex, keyPackage } of verified?.added ?? []) {
          const entry = change.roster.find((e) => e.leafIndex === leafIndex)
          if (entry === undefined || entry.clientId !== validator.clientIdFromCredential(keyPackage.leafNode.credential)) {
            throw new ServiceError('INTERNAL', `The roster and the ratchet tree disagree on leaf ${leafIndex}`)
          }
        }
        if (request.groupInfo !== undefined && verified !== undefined && loaded !== undefined) {
          await checkUploadedGroupInfo(verified.next, request.groupInfo, suites, loaded.cs)
        }
        const nextEpoch = group.epoch + 1n
        const publicState =
          verified === undefined ? undefined : { epoch: nextEpoch, state: encodePublicGroupState(verified.next), groupInfo: request.groupInfo?.slice() }
        const recipients = welcomeRecipients(request.welcome, change.added)
        const welcome = request.welcome
        const digest = await suites.digest(request.commit)
        throwIfAborted(options?.signal)
        const entry = { kind: 'commit' as const, epoch: read.epoch, sender: caller, message: request.commit.slice(), digest }
        invalidate(groupHex)
        const result = await store.appendCommit(
          groupHex,
          {
            expectedEpoch: group.epoch,
            entry,
            roster: change.roster,
            access: change.access,
            welcomes: welcome === undefined ? [] : recipients.map((clientId) => ({ clientId, welcome })),
            ...(publicState === undefined ? {} : { publicState })
          },
          options
        )
        invalidate(groupHex)
        if (result.kind === 'conflict') {
          publicStates.forget(groupHex)
          return { kind: 'conflict', epoch: result.epoch }
        }
        if (verified !== undefined && loaded !== undefined && publicState !== undefined) {
          publicStates.remember(groupHex, { state: verified.next, cs: loaded.cs, groupInfo: publicState.groupInfo, epoch: nextEpoch, stored: publicState.state })
        }
        fanOutEntry(groupId, change.access, { ...entry, seq: result.seq })
        pushWelcomes(groupId, welcome, result.seq, result.welcomeSeqs)
        return { kind: 'accepted', seq: result.seq, epoch: nextEpoch }
      })
    },

    async postProposal(caller: ClientId, groupId: Uint8Array, proposal: Uint8Array, options?: AbortOptions): Promise<{ seq: number }> {
      throwIfAborted(options?.signal)
      checkGroupId(groupId)
      checkBytes(proposal, 'proposal')
      checkSize(proposal, limits.maxHandshakeBytes, 'The proposal')
      const decoded = decodeMessage(proposal)
      if (decoded === undefined) throw new ServiceError('INVALID_MESSAGE', 'The proposal is not a decodable MLSMessage', { details: { reason: 'undecodable' } })
      if (decoded.wireformat === 'mls_private_message' && decoded.privateMessage.contentType === 'proposal') {
        if (!equalBytes(decoded.privateMessage.groupId, groupId)) throw invalid('The proposal is for another group')
        return privateProposal(caller, groupId, proposal, decoded.privateMessage.epoch, options)
      }
      if (decoded.wireformat !== 'mls_public_message' || decoded.publicMessage.content.contentType !== 'proposal') {
        throw new ServiceError('INVALID_MESSAGE', 'A proposal must be an mls_public_message with proposal content', { details: { reason: 'not-a-proposal' } })
      }
      const pm = decoded.publicMessage
      const groupHex = toHex(groupId)
      const digest = await suites.digest(proposal)
      return mutex.run(groupHex, () => untilAppended(async () => {
        throwIfAborted(options?.signal)
        const group = await loadGroup(groupHex, options)
        requireMember(group, caller)
        const sender = pm.content.sender
        const own = group.roster.find((e) => e.clientId === caller)
        if (sender.senderType !== 'member' || sender.leafIndex !== own?.leafIndex) {
          throw new ServiceError('INVALID_MESSAGE', "The proposal is not sent from the caller's leaf", { details: { reason: 'unknown-sender' } })
        }
        const loaded = await publicStates.load(group, options)
        if (privateHandshakes(loaded)) throw wireFormatRefused("This group's proposals are PrivateMessages")
        const { ref, pending } = await verifyMemberProposal(loaded.state, pm, loaded.cs, { authService: directoryAuthService(store, validator, options) }).catch(
          (error: unknown) => {
            throw asServiceError(error)
          }
        )
        await checkProposalForRoster(group, loaded, caller, pending.proposal, options)
        return appendProposal(groupId, group, loaded, { ref, pending, message: proposal, sender: caller, digest }, options)
      }))
    },

    async proposeRemoval(groupId: Uint8Array, clientId: ClientId, options?: AbortOptions): Promise<{ seq: number } | undefined> {
      throwIfAborted(options?.signal)
      checkGroupId(groupId)
      const signer = deps.externalSender
      if (signer === undefined) throw new ServiceError('INVALID_STATE', 'This server has no external sender key (ServicesInit.externalSender)')
      const groupHex = toHex(groupId)
      return mutex.run(groupHex, () => untilAppended(async () => {
        throwIfAborted(options?.signal)
        const group = await loadGroup(groupHex, options)
        const leaf = group.roster.find((e) => e.clientId === clientId)
        if (leaf === undefined) return undefined
        const loaded = await publicStates.load(group, options)
        // The server cannot name a leaf of a group whose tree it no longer sees.
        if (privateHandshakes(loaded)) return undefined
        const already = [...(loaded.state.proposals?.values() ?? [])].some((p) => p.proposal.proposalType === 'remove' && p.proposal.remove.removed === leaf.leafIndex)
        if (already) return undefined
        const made = await externalRemoveProposal(loaded.state, leaf.leafIndex, { publicKey: signer.signaturePublicKey, signKey: signer.signaturePrivateKey }, loaded.cs).catch(
          (error: unknown) => {
            throw asServiceError(error)
          }
        )
        const digest = await suites.digest(made.message)
        return appendProposal(groupId, group, loaded, { ...made, sender: SERVER_SENDER, digest }, options)
      }))
    },

    async postMessage(caller: ClientId, groupId: Uint8Array, message: Uint8Array, options?: AbortOptions): Promise<{ seq: number }> {
      throwIfAborted(options?.signal)
      checkGroupId(groupId)
      checkBytes(message, 'message')
      checkSize(message, limits.maxMessageBytes, 'The message')
      const decoded = decodeMessage(message)
      if (decoded === undefined) throw invalid('The message is not a decodable MLSMessage')
      if (decoded.version !== 'mls10') throw invalid('The message is not MLS 1.0')
      if (decoded.wireformat !== 'mls_private_message') {
        throw invalid(`An application message must be an mls_private_message, got ${decoded.wireformat}`)
      }
      const pm = decoded.privateMessage
      if (pm.contentType !== 'application') throw invalid(`Only application content may be posted as a message, got ${pm.contentType}`)
      if (!equalBytes(pm.groupId, groupId)) throw invalid('The message is for another group')
      const groupHex = toHex(groupId)
      const digest = await suites.digest(message)
      return mutex.run(groupHex, async () => {
        throwIfAborted(options?.signal)
        const group = await loadGroup(groupHex, options)
        requireMember(group, caller)
        const oldest = group.epoch - BigInt(limits.epochWindow)
        if (pm.epoch > group.epoch || pm.epoch < oldest) {
          throw new ServiceError('WRONG_EPOCH', `The message is for epoch ${pm.epoch}; the group accepts epochs ${oldest < 0n ? 0n : oldest} to ${group.epoch}`, {
            details: { epoch: pm.epoch, currentEpoch: group.epoch }
          })
        }
        const entry = { kind: 'application' as const, epoch: pm.epoch, sender: caller, message: message.slice(), digest }
        const result = await store.appendMessage(groupHex, entry, options)
        if (result.kind === 'duplicate') throw new ServiceError('REPLAYED_MESSAGE', 'This message is already in the group log')
        if (result.kind === 'not-a-member') {
          // Removed by a commit the loaded record had not seen yet (another instance, or a cache behind the store).
          cache.delete(groupHex)
          throw new ServiceError('NOT_A_MEMBER', `${caller} is not a member of group ${groupHex}`)
        }
        if (cache.get(groupHex) === group) cache.set(groupHex, { ...group, lastSeq: result.seq })
        fanOutEntry(groupId, group.access, { ...entry, seq: result.seq })
        return { seq: result.seq }
      })
    },

    async fetchEntries(
      caller: ClientId,
      groupId: Uint8Array,
      afterSeq: number,
      options?: FetchOptions | number,
      abortOptions?: AbortOptions
    ): Promise<ChannelEntry[]> {
      const { limit, signal } = fetchArgs(options, abortOptions)
      throwIfAborted(signal)
      checkGroupId(groupId)
      checkSeq(afterSeq)
      const groupHex = toHex(groupId)
      const group = await loadGroup(groupHex, { signal })
      const windows = windowsOf(group.access, caller)
      if (windows.length === 0) throw new ServiceError('NOT_A_MEMBER', `${caller} has no access to group ${groupHex}`)
      // Reading after `afterSeq` says the caller holds everything up to it: its fetch cursor (only its own; the store
      // keeps cursors of current members only). The entries returned now count once it reads past them.
      if (windows.some((w) => w.untilSeq === null)) noteFetched(groupHex, caller, Math.min(afterSeq, group.lastSeq))
      const out: ChannelEntry[] = []
      let cursor = afterSeq
      for (const window of windows) {
        if (out.length >= limit) break
        if (window.untilSeq !== null && window.untilSeq <= cursor) continue
        const from = Math.max(cursor, window.fromSeq)
        const records = await store.readLog(groupHex, from, limit - out.length, window.untilSeq ?? undefined, { signal })
        for (const record of records) out.push(toEntry(groupId, record))
        const last = records.at(-1)
        if (last !== undefined) cursor = last.seq
      }
      // Retention may have deleted messages after the reader's cursor. Checked after the read: a pass that
      // committed before it is seen here (it moves the retained start in the same transaction).
      if (afterSeq < group.lastSeq || out.length > 0) {
        const retainedFrom = await store.logRetainedFrom(groupHex, { signal })
        if (retainedFrom !== undefined && afterSeq + 1 < retainedFrom) {
          throw new ServiceError('CURSOR_EXPIRED', `Entries after seq ${afterSeq} of group ${groupHex} were deleted by retention; the log is complete from seq ${retainedFrom}`, {
            details: { afterSeq, oldestRetainedSeq: retainedFrom }
          })
        }
      }
      return out
    },

    async fetchGroupInfo(caller: ClientId, groupId: Uint8Array, options?: AbortOptions): Promise<{ epoch: bigint; groupInfo: Uint8Array } | undefined> {
      throwIfAborted(options?.signal)
      checkGroupId(groupId)
      const groupHex = toHex(groupId)
      const group = await loadGroup(groupHex, options)
      if (!group.roster.some((e) => e.clientId === caller) && !(await mayJoinExternally(caller, groupId))) {
        throw new ServiceError('NOT_A_MEMBER', `${caller} may not fetch the GroupInfo of group ${groupHex}`, { details: { reason: 'external-join-refused' } })
      }
      const record = await store.getPublicState(groupHex, options)
      if (record?.groupInfo === undefined || record.epoch !== group.epoch) return undefined
      const loaded = await publicStates.loadIfAny(group, options)
      if (loaded !== undefined && privateHandshakes(loaded)) return undefined
      return { epoch: record.epoch, groupInfo: record.groupInfo }
    },

    confirmDelivered(caller: ClientId, groupId: Uint8Array, seq: number): void {
      checkGroupId(groupId)
      checkSeq(seq)
      noteFetched(toHex(groupId), caller, seq)
    },

    flushFetchCursors(options?: AbortOptions): Promise<void> {
      throwIfAborted(options?.signal)
      return flushCursors(options)
    },

    async fetchWelcomes(caller: ClientId, afterSeq: number, options?: FetchOptions | number, abortOptions?: AbortOptions): Promise<WelcomeEntry[]> {
      const { limit, signal } = fetchArgs(options, abortOptions)
      throwIfAborted(signal)
      checkSeq(afterSeq)
      const records = await store.readWelcomes(caller, afterSeq, limit, { signal })
      return records.map((r) => ({ seq: r.seq, groupId: fromHex(r.groupId), welcome: r.welcome, commitSeq: r.commitSeq }))
    }
  }
}
