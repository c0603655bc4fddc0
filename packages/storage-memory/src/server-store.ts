import type {
  AbortOptions,
  AccessWindow,
  AppendCommitResult,
  AppendMessageResult,
  AppendProposalResult,
  ClientId,
  FetchCursor,
  GroupIdHex,
  GroupRecord,
  IdentityRecord,
  KeyPackageRecord,
  LogPruning,
  LogRecord,
  NewGroupRecord,
  PublicStateRecord,
  RosterEntry,
  ServerStore,
  WelcomePruning,
  WelcomeRecord
} from '@mls/contracts/interfaces'
import { StorageError, distinctBytes, equalBytes, throwIfAborted } from '@mls/contracts'

/** Options of `memoryServerStore()`. */
export interface MemoryServerStoreInit {
  /** Shown in `Symbol.toStringTag`; useful when a test holds several stores. */
  name?: string
}

interface GroupState {
  epoch: bigint
  lastSeq: number
  roster: RosterEntry[]
  access: AccessWindow[]
  log: LogRecord[]
  /** When each log entry was appended (ms), parallel to `log`. */
  appendedAt: number[]
  /** Entries below this seq may have been deleted by retention. */
  retainedFrom: number
  digests: Set<string>
  publicState: PublicStateRecord | undefined
  /** How far each member has fetched (`advanceFetchCursors`). */
  cursors: Map<ClientId, number>
}

/** The open access window of `clientId` (it is a current member), if any. */
const openWindow = (g: GroupState, clientId: ClientId): AccessWindow | undefined => g.access.find((w) => w.clientId === clientId && w.untilSeq === null)

/** The lowest fetch cursor of the group's current members; `lastSeq` without members. */
function fetchFloor(g: GroupState): number {
  let floor = Number.POSITIVE_INFINITY
  for (const w of g.access) if (w.untilSeq === null) floor = Math.min(floor, Math.max(w.fromSeq, g.cursors.get(w.clientId) ?? 0))
  return floor === Number.POSITIVE_INFINITY ? g.lastSeq : floor
}

const copyIdentity = (r: IdentityRecord): IdentityRecord => ({ ...r, signaturePublicKey: r.signaturePublicKey.slice() })
const copyKeyPackage = (r: KeyPackageRecord): KeyPackageRecord => ({ ...r, keyPackage: r.keyPackage.slice() })
const copyLog = (r: LogRecord): LogRecord => ({ ...r, message: r.message.slice() })
/** A message deleted by retention: its bytes are gone, its seq and digest stay. */
const isPruned = (r: LogRecord): boolean => r.kind === 'application' && r.message.length === 0
/** One stored copy of a commit's Welcome, shared by the mailbox rows of all its recipients. */
interface SharedWelcome {
  readonly groupId: GroupIdHex
  readonly commitSeq: number
  readonly welcome: Uint8Array
  readonly appendedAt: number
  /** Mailbox rows referring to this copy; it is dropped at 0. */
  references: number
}

/** A client's mailbox: its rows, and the newest seq it ever had (seqs are never reused). */
interface Mailbox {
  rows: { seq: number; shared: SharedWelcome }[]
  lastSeq: number
}

const welcomeOut = (seq: number, w: SharedWelcome): WelcomeRecord => ({ seq, groupId: w.groupId, welcome: w.welcome.slice(), commitSeq: w.commitSeq })
const copyRoster = (roster: readonly RosterEntry[]): RosterEntry[] => roster.map((e) => ({ leafIndex: e.leafIndex, clientId: e.clientId }))
const copyPublicState = (r: PublicStateRecord | undefined): PublicStateRecord | undefined =>
  r === undefined ? undefined : { epoch: r.epoch, state: r.state.slice(), groupInfo: r.groupInfo?.slice() }

function checkPublicState(r: PublicStateRecord | undefined): void {
  if (r === undefined) return
  if (typeof r.epoch !== 'bigint') throw invalid('Public state epoch must be a bigint')
  checkBytes(r.state, 'Public state')
  if (r.groupInfo !== undefined) checkBytes(r.groupInfo, 'GroupInfo')
}

const copyAccess = (access: readonly AccessWindow[]): AccessWindow[] =>
  access.map((w) => ({ clientId: w.clientId, fromSeq: w.fromSeq, untilSeq: w.untilSeq }))

function invalid(message: string): StorageError {
  return new StorageError('STORAGE_IO', message)
}

function checkBytes(value: unknown, what: string): void {
  if (!(value instanceof Uint8Array)) throw invalid(`${what} must be a Uint8Array`)
}

function checkLogEntry(entry: Omit<LogRecord, 'seq'>): void {
  if (entry.kind !== 'commit' && entry.kind !== 'application' && entry.kind !== 'proposal') throw invalid('Log entry kind must be commit, application or proposal')
  if (typeof entry.epoch !== 'bigint') throw invalid('Log entry epoch must be a bigint')
  if (typeof entry.sender !== 'string' || typeof entry.digest !== 'string') throw invalid('Log entry sender and digest must be strings')
  checkBytes(entry.message, 'Log entry message')
}

function checkFetchCursor(c: FetchCursor): void {
  if (typeof c.groupId !== 'string' || typeof c.clientId !== 'string') throw invalid('A fetch cursor names its group and client as strings')
  if (!Number.isSafeInteger(c.seq) || c.seq < 0) throw invalid('A fetch cursor seq is a non-negative integer')
}

function checkWelcomePruning(p: WelcomePruning): void {
  for (const value of [p.appendedBeforeMs, p.keepWelcomes]) {
    if (typeof value !== 'number' || Number.isNaN(value)) throw invalid('Welcome pruning limits are numbers')
  }
}

function checkPruning(p: LogPruning): void {
  for (const value of [p.appendedBeforeMs, p.keepMessages, p.keepDigestsForEpochs, p.hardLimitBeforeMs ?? 0]) {
    if (typeof value !== 'number' || Number.isNaN(value)) throw invalid('Log pruning limits are numbers')
  }
}

class MemoryServerStore implements ServerStore {
  readonly specificationVersion = 'v1' as const
  private readonly name: string
  private readonly identities = new Map<ClientId, IdentityRecord>()
  private readonly pools = new Map<ClientId, KeyPackageRecord[]>()
  private readonly lastResorts = new Map<ClientId, KeyPackageRecord>()
  private readonly knownRefs = new Set<string>()
  private readonly served = new Map<string, ClientId>()
  private readonly groups = new Map<GroupIdHex, GroupState>()
  private readonly mailboxes = new Map<ClientId, Mailbox>()
  private readonly sharedWelcomes = new Set<SharedWelcome>()
  private readonly deviceLists = new Map<string, Uint8Array[]>()
  private closed = false

  constructor(init: MemoryServerStoreInit) {
    this.name = init.name ?? 'default'
  }

  get [Symbol.toStringTag](): string {
    return `MemoryServerStore(${this.name})`
  }

  private check(options?: AbortOptions): void {
    if (this.closed) throw new StorageError('STORAGE_CLOSED', 'The store is closed')
    throwIfAborted(options?.signal)
  }

  async registerIdentity(record: IdentityRecord, options?: AbortOptions): Promise<'created' | 'exists' | 'conflict'> {
    this.check(options)
    checkBytes(record.signaturePublicKey, 'signaturePublicKey')
    const existing = this.identities.get(record.clientId)
    if (existing !== undefined) return equalBytes(existing.signaturePublicKey, record.signaturePublicKey) ? 'exists' : 'conflict'
    this.identities.set(record.clientId, copyIdentity(record))
    return 'created'
  }

  async getIdentity(clientId: ClientId, options?: AbortOptions): Promise<IdentityRecord | undefined> {
    this.check(options)
    const record = this.identities.get(clientId)
    return record === undefined ? undefined : copyIdentity(record)
  }

  async listDevices(userId: string, options?: AbortOptions): Promise<IdentityRecord[]> {
    this.check(options)
    const out: IdentityRecord[] = []
    for (const record of this.identities.values()) if (record.userId === userId) out.push(copyIdentity(record))
    return out.sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0))
  }

  async addKeyPackages(
    clientId: ClientId,
    records: readonly KeyPackageRecord[],
    lastResort: KeyPackageRecord | undefined,
    options?: AbortOptions
  ): Promise<void> {
    this.check(options)
    for (const r of [...records, ...(lastResort === undefined ? [] : [lastResort])]) {
      checkBytes(r.keyPackage, 'keyPackage')
      if (typeof r.ref !== 'string' || typeof r.notAfter !== 'number') throw invalid('KeyPackage record needs a string ref and a numeric notAfter')
    }
    const pool = this.pools.get(clientId) ?? []
    const added = new Set<string>()
    for (const r of records) {
      if (this.knownRefs.has(r.ref) || added.has(r.ref)) continue
      added.add(r.ref)
      pool.push({ ...copyKeyPackage(r), clientId, lastResort: false })
    }
    for (const ref of added) this.knownRefs.add(ref)
    this.pools.set(clientId, pool)
    if (lastResort !== undefined && !this.knownRefs.has(lastResort.ref)) {
      const previous = this.lastResorts.get(clientId)
      previous?.keyPackage.fill(0)
      this.knownRefs.add(lastResort.ref)
      this.lastResorts.set(clientId, { ...copyKeyPackage(lastResort), clientId, lastResort: true })
    }
  }

  async consumeKeyPackage(clientId: ClientId, nowSeconds: number, options?: AbortOptions): Promise<KeyPackageRecord | undefined> {
    this.check(options)
    const pool = this.pools.get(clientId) ?? []
    while (pool.length > 0) {
      const record = pool.shift() as KeyPackageRecord
      if (record.notAfter < nowSeconds) {
        record.keyPackage.fill(0)
        continue
      }
      const out = copyKeyPackage(record)
      record.keyPackage.fill(0)
      this.served.set(record.ref, clientId)
      return out
    }
    const lastResort = this.lastResorts.get(clientId)
    if (lastResort === undefined || lastResort.notAfter < nowSeconds) return undefined
    this.served.set(lastResort.ref, clientId)
    return copyKeyPackage(lastResort)
  }

  async countKeyPackages(clientId: ClientId, options?: AbortOptions): Promise<{ oneTime: number; lastResort: boolean }> {
    this.check(options)
    return { oneTime: this.pools.get(clientId)?.length ?? 0, lastResort: this.lastResorts.has(clientId) }
  }

  async lookupServedKeyPackage(ref: string, options?: AbortOptions): Promise<ClientId | undefined> {
    this.check(options)
    return this.served.get(ref)
  }

  async createGroup(group: NewGroupRecord, options?: AbortOptions): Promise<boolean> {
    this.check(options)
    checkPublicState(group.publicState)
    if (this.groups.has(group.groupId)) return false
    this.groups.set(group.groupId, {
      epoch: group.epoch,
      lastSeq: group.lastSeq,
      roster: copyRoster(group.roster),
      access: copyAccess(group.access),
      log: [],
      appendedAt: [],
      retainedFrom: 1,
      digests: new Set(),
      publicState: copyPublicState(group.publicState),
      cursors: new Map()
    })
    return true
  }

  async getGroup(groupId: GroupIdHex, options?: AbortOptions): Promise<GroupRecord | undefined> {
    this.check(options)
    const g = this.groups.get(groupId)
    if (g === undefined) return undefined
    return { groupId, epoch: g.epoch, lastSeq: g.lastSeq, roster: copyRoster(g.roster), access: copyAccess(g.access) }
  }

  async listGroupsOf(clientId: ClientId, options?: AbortOptions): Promise<GroupIdHex[]> {
    this.check(options)
    if (typeof clientId !== 'string') throw invalid('clientId must be a string')
    return [...this.groups.entries()].filter(([, g]) => g.roster.some((e) => e.clientId === clientId)).map(([id]) => id).sort()
  }

  private group(groupId: GroupIdHex): GroupState {
    const g = this.groups.get(groupId)
    if (g === undefined) throw new StorageError('UNKNOWN_GROUP', `Unknown group ${groupId}`)
    return g
  }

  async appendCommit(
    groupId: GroupIdHex,
    commit: {
      expectedEpoch: bigint
      entry: Omit<LogRecord, 'seq'>
      roster: readonly RosterEntry[]
      access: readonly AccessWindow[]
      welcomes: readonly { clientId: ClientId; welcome: Uint8Array }[]
      publicState?: PublicStateRecord
    },
    options?: AbortOptions
  ): Promise<AppendCommitResult> {
    this.check(options)
    const g = this.group(groupId)
    checkLogEntry(commit.entry)
    checkPublicState(commit.publicState)
    for (const w of commit.welcomes) checkBytes(w.welcome, 'welcome')
    if (g.epoch !== commit.expectedEpoch) return { kind: 'conflict', epoch: g.epoch }
    const seq = g.lastSeq + 1
    const resolve = (n: number | null): number | null => (n === -1 ? seq : n)
    g.log.push(copyLog({ ...commit.entry, seq }))
    g.appendedAt.push(Date.now())
    g.digests.add(commit.entry.digest)
    g.lastSeq = seq
    g.epoch = commit.expectedEpoch + 1n
    g.roster = copyRoster(commit.roster)
    if (commit.publicState !== undefined) g.publicState = copyPublicState(commit.publicState)
    g.access = commit.access.map((w) => ({ clientId: w.clientId, fromSeq: resolve(w.fromSeq) as number, untilSeq: resolve(w.untilSeq) }))
    // One copy per distinct Welcome of the commit, referred to by each recipient's row.
    const { distinct, indexOf } = distinctBytes(commit.welcomes.map((w) => w.welcome))
    const appendedAt = Date.now()
    const copies = distinct.map((welcome): SharedWelcome => ({ groupId, commitSeq: seq, welcome: welcome.slice(), appendedAt, references: 0 }))
    const welcomeSeqs = commit.welcomes.map(({ clientId }, i) => {
      const mailbox = this.mailboxes.get(clientId) ?? { rows: [], lastSeq: 0 }
      const shared = copies[indexOf[i] as number] as SharedWelcome
      mailbox.lastSeq++
      mailbox.rows.push({ seq: mailbox.lastSeq, shared })
      shared.references++
      this.sharedWelcomes.add(shared)
      this.mailboxes.set(clientId, mailbox)
      return { clientId, seq: mailbox.lastSeq }
    })
    return { kind: 'accepted', seq, welcomeSeqs }
  }

  async appendMessage(groupId: GroupIdHex, entry: Omit<LogRecord, 'seq'>, options?: AbortOptions): Promise<AppendMessageResult> {
    this.check(options)
    const g = this.group(groupId)
    checkLogEntry(entry)
    if (g.digests.has(entry.digest)) return { kind: 'duplicate' }
    if (!g.roster.some((e) => e.clientId === entry.sender)) return { kind: 'not-a-member' }
    const seq = g.lastSeq + 1
    g.log.push(copyLog({ ...entry, seq }))
    g.appendedAt.push(Date.now())
    g.digests.add(entry.digest)
    g.lastSeq = seq
    return { kind: 'accepted', seq }
  }

  async readLog(groupId: GroupIdHex, afterSeq: number, limit: number, untilSeq?: number, options?: AbortOptions): Promise<LogRecord[]> {
    this.check(options)
    const g = this.groups.get(groupId)
    if (g === undefined || limit <= 0) return []
    const out: LogRecord[] = []
    // seq n lives at index n - 1 (the log has no gaps)
    for (let i = Math.max(0, Math.floor(afterSeq)); i < g.log.length && out.length < limit; i++) {
      const record = g.log[i] as LogRecord
      if (untilSeq !== undefined && record.seq > untilSeq) break
      if (record.seq > afterSeq && !isPruned(record)) out.push(copyLog(record))
    }
    return out
  }

  async pruneLogs(pruning: LogPruning, options?: AbortOptions): Promise<{ deleted: number }> {
    this.check(options)
    checkPruning(pruning)
    let deleted = 0
    const hardLimit = pruning.hardLimitBeforeMs ?? 0
    for (const g of this.groups.values()) {
      for (const clientId of [...g.cursors.keys()]) if (openWindow(g, clientId) === undefined) g.cursors.delete(clientId)
      const floor = fetchFloor(g)
      const messages = g.log.flatMap((record, index) => (record.kind === 'application' && !isPruned(record) ? [index] : []))
      const keepFrom = Math.max(0, messages.length - Math.max(0, pruning.keepMessages))
      for (const [position, index] of messages.entries()) {
        const appendedAt = g.appendedAt[index] as number
        const selected = (position < keepFrom || appendedAt < pruning.appendedBeforeMs) && (g.log[index] as LogRecord).seq <= floor
        if (!selected && !(appendedAt < hardLimit)) continue
        const record = g.log[index] as LogRecord
        record.message.fill(0)
        // The digest stays in `digests`: a replay is still refused.
        g.log[index] = { ...record, message: new Uint8Array(0) }
        g.retainedFrom = Math.max(g.retainedFrom, record.seq + 1)
        deleted++
      }
    }
    return { deleted }
  }

  async logRetainedFrom(groupId: GroupIdHex, options?: AbortOptions): Promise<number | undefined> {
    this.check(options)
    return this.groups.get(groupId)?.retainedFrom
  }

  async advanceFetchCursors(cursors: readonly FetchCursor[], options?: AbortOptions): Promise<void> {
    this.check(options)
    for (const c of cursors) checkFetchCursor(c)
    for (const c of cursors) {
      const g = this.groups.get(c.groupId)
      if (g === undefined || openWindow(g, c.clientId) === undefined) continue
      g.cursors.set(c.clientId, Math.max(g.cursors.get(c.clientId) ?? 0, Math.min(c.seq, g.lastSeq)))
    }
  }

  async readFetchCursors(groupId: GroupIdHex, options?: AbortOptions): Promise<FetchCursor[]> {
    this.check(options)
    const g = this.groups.get(groupId)
    if (g === undefined) return []
    return g.access.filter((w) => w.untilSeq === null).map((w) => ({ groupId, clientId: w.clientId, seq: Math.max(w.fromSeq, g.cursors.get(w.clientId) ?? 0) }))
  }

  async readWelcomes(clientId: ClientId, afterSeq: number, limit: number, options?: AbortOptions): Promise<WelcomeRecord[]> {
    this.check(options)
    const rows = this.mailboxes.get(clientId)?.rows ?? []
    if (limit <= 0) return []
    return rows
      .filter((r) => r.seq > afterSeq)
      .slice(0, limit)
      .map((r) => welcomeOut(r.seq, r.shared))
  }

  async pruneWelcomes(pruning: WelcomePruning, options?: AbortOptions): Promise<{ deleted: number }> {
    this.check(options)
    checkWelcomePruning(pruning)
    let deleted = 0
    for (const mailbox of this.mailboxes.values()) {
      const kept: Mailbox['rows'] = []
      for (const r of mailbox.rows) {
        if (!(r.shared.appendedAt < pruning.appendedBeforeMs || r.seq <= mailbox.lastSeq - pruning.keepWelcomes)) {
          kept.push(r)
          continue
        }
        deleted++
        if (--r.shared.references > 0) continue
        // The last row referring to the copy went: the copy goes too.
        r.shared.welcome.fill(0)
        this.sharedWelcomes.delete(r.shared)
      }
      mailbox.rows = kept
    }
    return { deleted }
  }

  async serveLastResortKeyPackage(clientId: ClientId, nowSeconds: number, options?: AbortOptions): Promise<KeyPackageRecord | undefined> {
    this.check(options)
    const lastResort = this.lastResorts.get(clientId)
    if (lastResort === undefined || lastResort.notAfter < nowSeconds) return undefined
    this.served.set(lastResort.ref, clientId)
    return copyKeyPackage(lastResort)
  }

  async readDeviceList(userId: string, options?: AbortOptions): Promise<Uint8Array[]> {
    this.check(options)
    return (this.deviceLists.get(userId) ?? []).map((e) => e.slice())
  }

  async appendDeviceListEntry(userId: string, expectedLength: number, entry: Uint8Array, options?: AbortOptions): Promise<'appended' | 'conflict'> {
    this.check(options)
    checkBytes(entry, 'device-list entry')
    if (typeof userId !== 'string' || !Number.isSafeInteger(expectedLength)) throw invalid('userId must be a string and expectedLength an integer')
    const list = this.deviceLists.get(userId) ?? []
    if (list.length !== expectedLength) return 'conflict'
    list.push(entry.slice())
    this.deviceLists.set(userId, list)
    return 'appended'
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const pool of this.pools.values()) for (const r of pool) r.keyPackage.fill(0)
    for (const r of this.lastResorts.values()) r.keyPackage.fill(0)
    this.pools.clear()
    this.lastResorts.clear()
  }

  async getPublicState(groupId: GroupIdHex, options?: AbortOptions): Promise<PublicStateRecord | undefined> {
    this.check(options)
    return copyPublicState(this.groups.get(groupId)?.publicState)
  }

  async appendProposal(
    groupId: GroupIdHex,
    proposal: { expectedEpoch: bigint; expectedState?: Uint8Array; entry: Omit<LogRecord, 'seq'>; publicState: PublicStateRecord },
    options?: AbortOptions
  ): Promise<AppendProposalResult> {
    this.check(options)
    const g = this.group(groupId)
    checkLogEntry(proposal.entry)
    checkPublicState(proposal.publicState)
    if (proposal.publicState === undefined) throw invalid('A proposal comes with the public state that holds it')
    if (proposal.expectedState !== undefined && !(proposal.expectedState instanceof Uint8Array)) throw invalid('expectedState must be a Uint8Array')
    if (g.epoch !== proposal.expectedEpoch) return { kind: 'conflict', epoch: g.epoch }
    if (proposal.expectedState !== undefined && !sameBytes(g.publicState?.state, proposal.expectedState)) return { kind: 'conflict', epoch: g.epoch }
    if (g.digests.has(proposal.entry.digest)) return { kind: 'duplicate' }
    const seq = g.lastSeq + 1
    g.log.push(copyLog({ ...proposal.entry, seq }))
    g.appendedAt.push(Date.now())
    g.digests.add(proposal.entry.digest)
    g.lastSeq = seq
    g.publicState = copyPublicState(proposal.publicState)
    return { kind: 'accepted', seq }
  }

  /** Test hook: every KeyPackage byte array the store holds (pooled and last-resort). */
  rawKeyPackages(): Uint8Array[] {
    return [...[...this.pools.values()].flat(), ...this.lastResorts.values()].map((r) => r.keyPackage)
  }

  /** Test hook: the message bytes of every log entry the store holds. */
  rawLogMessages(): Uint8Array[] {
    return [...this.groups.values()].flatMap((g) => g.log.map((r) => r.message))
  }

  /** Test hook: every stored Welcome copy (one per distinct Welcome of a commit, however many recipients). */
  rawWelcomes(): Uint8Array[] {
    return [...this.sharedWelcomes].map((w) => w.welcome)
  }
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i])
}

/**
 * A server store in memory: plain maps, state lives as long as the object.
 * Every method checks everything before it mutates, so each call is atomic;
 * values are copied in and out; KeyPackage bytes that leave the store are zeroed.
 */
export function memoryServerStore(init: MemoryServerStoreInit = {}): ServerStore & {
  /** Test hook: every KeyPackage byte array the store holds (pooled and last-resort). */
  rawKeyPackages(): Uint8Array[]
  /** Test hook: the message bytes of every log entry the store holds. */
  rawLogMessages(): Uint8Array[]
  /** Test hook: every stored Welcome copy (one per distinct Welcome of a commit, however many recipients). */
  rawWelcomes(): Uint8Array[]
} {
  return new MemoryServerStore(init)
}
