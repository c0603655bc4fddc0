/**
 * A harness for unit tests of `Group` above its channel and store: an
 * in-memory Group Channel whose every response and push goes through a seeded
 * scheduler (so the order of deliveries is reproducible from the seed and
 * differs between seeds), and an in-memory store that can be told to fail.
 * Real ts-mls groups, real commits; only the services are fakes.
 */
import {
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  type CiphersuiteImpl,
  type ClientConfig
} from 'ts-mls'
import { defaultClientConfig } from 'ts-mls/clientConfig.js'
import { makeKeyPackageRef } from 'ts-mls/keyPackage.js'
import { createGroup, joinGroup } from '../src/ts-mls-fixes.js'
import type { ChannelEntry, ChannelEvent, GroupChannelClient, PostCommitResult, WelcomeEntry } from '../src/interfaces/channel.js'
import { CLIENT_STORE_SPECIFICATION_VERSION, type ClientStore, type StoreEntry, type StoreOperation } from '../src/interfaces/client-store.js'
import type { ClientId } from '../src/interfaces/common.js'
import { StorageError, TransportError, type MlsToolkitError } from '../src/errors.js'
import { equalBytes, toHex } from '../src/bytes.js'
import { credentialFor } from '../src/identity.js'
import { decodeMessage } from '../src/group-records.js'
import { Group, type GroupComponents, type GroupEvents } from '../src/group.js'

/** A seeded scheduler: tasks run one per macrotask, each time a task drawn from the queue by the seed. */
export class SeededScheduler {
  private state: number
  private readonly queue: (() => void)[] = []
  private pumping = false

  constructor(seed: number) {
    this.state = seed >>> 0 || 1
  }

  /** mulberry32, in [0, 1). */
  random(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 0x100000000
  }

  /** Run `task` later, in an order drawn from the seed among the tasks waiting. */
  schedule(task: () => void): void {
    this.queue.push(task)
    if (!this.pumping) {
      this.pumping = true
      setImmediate(() => this.pump())
    }
  }

  private pump(): void {
    const index = Math.floor(this.random() * this.queue.length)
    const [task] = this.queue.splice(index, 1)
    task?.()
    if (this.queue.length > 0) setImmediate(() => this.pump())
    else this.pumping = false
  }
}

type Method = keyof GroupChannelClient

/** One group's log, as the Group Channel keeps it: one commit per epoch, the first one posted wins. */
export class MemoryChannel {
  readonly entries: ChannelEntry[] = []
  epoch = 0n
  private groupInfo: { epoch: bigint; groupInfo: Uint8Array } | undefined
  /** While true, the channel hands out no GroupInfo (as when the last commit came without one). */
  withholdGroupInfo = false
  private readonly welcomes = new Map<ClientId, WelcomeEntry[]>()
  private readonly listeners = new Map<ClientId, Set<(event: ChannelEvent) => void>>()
  private readonly failures: { clientId: ClientId; method: Method; error: MlsToolkitError; afterApplying: boolean }[] = []
  private readonly held: (() => void)[] = []
  private holdCommits = 0
  private readonly tampered = new Map<string, Uint8Array>()

  constructor(
    readonly groupId: Uint8Array,
    readonly scheduler: SeededScheduler
  ) {}

  /**
   * The next call of `method` by `clientId` fails with `error`: before the
   * channel applies it, or (`afterApplying`) after, as a response lost on the way back.
   */
  failNext(clientId: ClientId, method: Method, error: MlsToolkitError, options: { afterApplying?: boolean } = {}): void {
    this.failures.push({ clientId, method, error, afterApplying: options.afterApplying ?? false })
  }

  /** Hold the next `count` posted commits until all of them arrived, then order them as the seed says. */
  holdNextCommits(count: number): void {
    this.holdCommits = count
  }

  /** `clientId` reads different bytes at `seq` (a message only it cannot process). */
  tamperFor(clientId: ClientId, seq: number, message: Uint8Array): void {
    this.tampered.set(`${clientId}#${seq}`, message)
  }

  /** The channel as `clientId` sees it. */
  view(clientId: ClientId): GroupChannelClient {
    const call = <T>(method: Method, apply: () => T): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        const failure = this.takeFailure(clientId, method)
        this.scheduler.schedule(() => {
          if (failure !== undefined && !failure.afterApplying) return reject(failure.error)
          let value: T
          try {
            value = apply()
          } catch (error) {
            return reject(error)
          }
          this.scheduler.schedule(() => (failure === undefined ? resolve(structuredClone(value)) : reject(failure.error)))
        })
      })
    return {
      createGroup: () => call('createGroup', () => undefined),
      postCommit: (_groupId, request) => {
        if (this.holdCommits === 0) return call('postCommit', () => this.postCommit(clientId, request))
        return new Promise<PostCommitResult>((resolve, reject) => {
          this.held.push(() => call('postCommit', () => this.postCommit(clientId, request)).then(resolve, reject))
          if (this.held.length === this.holdCommits) {
            this.holdCommits = 0
            for (const release of this.held.splice(0)) this.scheduler.schedule(release)
          }
        })
      },
      postProposal: (_groupId, proposal) => call('postProposal', () => ({ seq: this.append(clientId, 'proposal', proposal).seq })),
      postMessage: (_groupId, message) => call('postMessage', () => ({ seq: this.append(clientId, 'application', message).seq })),
      fetchEntries: (_groupId, afterSeq, options) =>
        call('fetchEntries', () => this.entries.slice(afterSeq, afterSeq + (options?.limit ?? 500)).map((entry) => this.readBy(clientId, entry))),
      fetchGroupInfo: () => call('fetchGroupInfo', () => (this.withholdGroupInfo ? undefined : this.groupInfo)),
      fetchWelcomes: (afterSeq) => call('fetchWelcomes', () => (this.welcomes.get(clientId) ?? []).slice(afterSeq)),
      subscribe: (listener) => {
        const set = this.listeners.get(clientId) ?? new Set()
        this.listeners.set(clientId, set)
        set.add(listener)
        return () => set.delete(listener)
      }
    }
  }

  /** The Welcomes addressed to `clientId`. */
  welcomesFor(clientId: ClientId): readonly WelcomeEntry[] {
    return this.welcomes.get(clientId) ?? []
  }

  private takeFailure(clientId: ClientId, method: Method) {
    const index = this.failures.findIndex((f) => f.clientId === clientId && f.method === method)
    return index < 0 ? undefined : this.failures.splice(index, 1)[0]
  }

  private readBy(clientId: ClientId, entry: ChannelEntry): ChannelEntry {
    const message = this.tampered.get(`${clientId}#${entry.seq}`)
    return message === undefined ? entry : { ...entry, message }
  }

  private postCommit(
    clientId: ClientId,
    request: { epoch: bigint; commit: Uint8Array; welcome?: Uint8Array; groupInfo?: Uint8Array }
  ): PostCommitResult {
    if (request.epoch !== this.epoch) return { kind: 'conflict', epoch: this.epoch }
    const entry = this.append(clientId, 'commit', request.commit)
    this.epoch += 1n
    this.groupInfo = request.groupInfo === undefined ? undefined : { epoch: this.epoch, groupInfo: request.groupInfo }
    if (request.welcome !== undefined) {
      const welcome = decodeMessage(request.welcome)
      if (welcome.wireformat !== 'mls_welcome') throw new TransportError('TRANSPORT_PROTOCOL', 'not a Welcome')
      for (const [joiner, box] of this.pendingJoiners) {
        if (welcome.welcome.secrets.some((s) => equalBytes(s.newMember, box.ref))) {
          const list = this.welcomes.get(joiner) ?? []
          list.push({ seq: list.length + 1, groupId: this.groupId, welcome: request.welcome, commitSeq: entry.seq })
          this.welcomes.set(joiner, list)
        }
      }
    }
    return { kind: 'accepted', seq: entry.seq, epoch: this.epoch }
  }

  /** KeyPackage refs of members being added, to address their Welcomes. */
  readonly pendingJoiners = new Map<ClientId, { ref: Uint8Array }>()

  private append(sender: ClientId, kind: ChannelEntry['kind'], message: Uint8Array): ChannelEntry {
    const entry: ChannelEntry = { groupId: this.groupId, seq: this.entries.length + 1, kind, epoch: this.epoch, sender, message: message.slice() }
    this.entries.push(entry)
    for (const [reader, listeners] of this.listeners) {
      for (const listener of listeners) this.scheduler.schedule(() => listener({ type: 'entry:appended', entry: this.readBy(reader, entry) }))
    }
    return entry
  }
}

/** An in-memory ClientStore whose writes can be made to fail (all or nothing, like a real store). */
export class MemoryStore implements ClientStore {
  readonly specificationVersion = CLIENT_STORE_SPECIFICATION_VERSION
  readonly [Symbol.toStringTag] = 'MemoryStore'
  readonly data = new Map<string, Uint8Array>()
  private failing: ((operations: readonly StoreOperation[]) => boolean) | undefined
  /** Writes refused so far. */
  refused = 0

  /** Refuse (with `STORAGE_IO`) the next write for which `when` holds. */
  failNextWrite(when: (operations: readonly StoreOperation[]) => boolean = () => true): void {
    this.failing = when
  }

  get(key: string): Promise<Uint8Array | undefined> {
    const value = this.data.get(key)
    return Promise.resolve(value?.slice())
  }

  list(prefix: string): Promise<StoreEntry[]> {
    const entries = [...this.data.entries()].filter(([key]) => key.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    return Promise.resolve(entries.map(([key, value]) => ({ key, value: value.slice() })))
  }

  write(operations: readonly StoreOperation[]): Promise<void> {
    if (this.failing?.(operations) === true) {
      this.failing = undefined
      this.refused++
      return Promise.reject(new StorageError('STORAGE_IO', 'disk unavailable (injected)'))
    }
    for (const op of operations) {
      if (op.type === 'put') this.data.set(op.key, op.value.slice())
      else this.data.delete(op.key)
    }
    return Promise.resolve()
  }

  close(): Promise<void> {
    return Promise.resolve()
  }
}

/** A member: its group, store and the components it was built with. */
export interface Member {
  readonly clientId: ClientId
  readonly store: MemoryStore
  readonly components: GroupComponents
  group: Group
  /** Every `status:changed`, as `from>to`. */
  readonly statuses: string[]
  /** While true, pushed entries are not delivered (the test drives `sync`/`recover` itself). */
  muted: boolean
}

/** A world of one group: a seeded scheduler, the channel, and members that join through it. */
export class World {
  private constructor(
    readonly cs: CiphersuiteImpl,
    readonly channel: MemoryChannel,
    readonly clientConfig: ClientConfig
  ) {}

  static async create(seed: number): Promise<World> {
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
    const scheduler = new SeededScheduler(seed)
    return new World(cs, new MemoryChannel(new TextEncoder().encode(`group-${seed}`), scheduler), defaultClientConfig)
  }

  components(clientId: ClientId, store: MemoryStore): GroupComponents {
    return {
      clientId,
      store,
      channel: this.channel.view(clientId),
      cs: this.cs,
      clientConfig: this.clientConfig,
      maxCommitAttempts: 5,
      replayWindow: 64,
      maxWaitingMessages: 8,
      durableInbox: false
    }
  }

  /** The creator: a new group at epoch 0, `active`. */
  async creator(clientId: ClientId): Promise<Member> {
    const kp = await generateKeyPackage(credentialFor(clientId), defaultCapabilities(), defaultLifetime, [], this.cs)
    const state = await createGroup(this.channel.groupId, kp.publicPackage, kp.privatePackage, [], this.cs, this.clientConfig)
    const store = new MemoryStore()
    const components = this.components(clientId, store)
    return this.watch({ clientId, store, components, group: await Group.persistNew(components, state, 0, []), statuses: [], muted: false })
  }

  /** Add `clientIds` by a commit of `by`, and join each from its Welcome (`joining`). */
  async add(by: Member, clientIds: readonly ClientId[]): Promise<Member[]> {
    const packages = await Promise.all(
      clientIds.map(async (clientId) => ({ clientId, kp: await generateKeyPackage(credentialFor(clientId), defaultCapabilities(), defaultLifetime, [], this.cs) }))
    )
    for (const { clientId, kp } of packages) {
      this.channel.pendingJoiners.set(clientId, { ref: await makeKeyPackageRef(kp.publicPackage, this.cs.hash) })
    }
    const outcome = await by.group.addMembers(packages.map(({ clientId, kp }) => ({ clientId, keyPackage: kp.publicPackage })))
    if (outcome.kind !== 'committed') throw new Error('the add was not committed')
    return Promise.all(
      packages.map(async ({ clientId, kp }) => {
        const entry = this.channel.welcomesFor(clientId).at(-1)
        if (entry === undefined) throw new Error(`no Welcome for ${clientId}`)
        const message = decodeMessage(entry.welcome)
        if (message.wireformat !== 'mls_welcome') throw new Error('not a Welcome')
        const state = await joinGroup(message.welcome, kp.publicPackage, kp.privatePackage, emptyPskIndex, this.cs, undefined, undefined, this.clientConfig)
        const store = new MemoryStore()
        const components = this.components(clientId, store)
        return this.watch({ clientId, store, components, group: await Group.persistNew(components, state, entry.commitSeq, [], 'joining'), statuses: [], muted: false })
      })
    )
  }

  /** Rebuild a member from its store, as after a crash (pushes go to the new instance). */
  async restart(member: Member): Promise<Member> {
    const group = await Group.load(member.components, toHex(this.channel.groupId))
    if (group === undefined) throw new Error('the group is not in the store')
    member.group = group
    member.statuses.length = 0
    group.on('status:changed', (e) => member.statuses.push(`${e.from}>${e.to}`))
    return member
  }

  private watch(member: Member): Member {
    member.group.on('status:changed', (e) => member.statuses.push(`${e.from}>${e.to}`))
    member.components.channel.subscribe((event) => {
      if (event.type === 'entry:appended' && !member.muted) member.group.deliver(event.entry).catch(() => undefined)
    })
    return member
  }
}

/** Resolve with the first `type` event `group` emits for which `when` holds. */
export function nextEvent<K extends keyof GroupEvents>(group: Group, type: K, when: (event: GroupEvents[K]) => boolean = () => true): Promise<GroupEvents[K]> {
  return new Promise((resolve) => {
    const off = group.on(type, (event) => {
      if (!when(event)) return
      off()
      resolve(event)
    })
  })
}
