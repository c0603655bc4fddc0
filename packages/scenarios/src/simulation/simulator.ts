import { createHash } from 'node:crypto'
import type { CryptoProvider, Group, MlsClient } from '@mls/core'
import { MlsToolkitError, StorageError, createMlsClient, equalBytes, isOwnTrouble } from '@mls/core'
import type { ClientStore } from '@mls/core/interfaces'
import { getCiphersuiteFromName } from '@mls/core/mls'
import { createServices, type Services, type ServicesInit } from '@mls/server'
import { memoryClientStore, memoryServerStore } from '@mls/storage-memory'
import { memoryTransport } from '@mls/transport-memory'
import { nodeCrypto } from '@mls/crypto-node'
import { faultyStore, type StoreFaults } from '../faulty-store.js'
import { powerLossStore, type PowerLossStore } from '../power-loss-store.js'
import { NO_NETWORK_FAULTS, Random, SimulatedNetwork, faultyTransport, type NetworkFaults } from './network.js'

/** What a simulation run does. Everything else follows from `seed`. */
export interface SimulationOptions {
  seed: number
  /** Random operations after the setup. */
  steps: number
  /** `large` grows one group to a few dozen members (deep, sparse trees). Default: every fourth seed is large. */
  profile?: 'small' | 'large'
  crypto?: CryptoProvider
  /**
   * Also draw `leave` (a member's self-Remove proposal, included by the next
   * commit). Off by default so that the seeds recorded before it existed
   * replay the same operations.
   */
  leave?: boolean
  /**
   * Also draw `serverRemove`: the server, as the groups' external sender
   * (RFC 9420 section 12.1.8.1), proposes the removal of a member, and the
   * next commit of another member includes it. The services then have an
   * external sender key (every group lists it). Off by default, like `leave`.
   */
  serverRemovals?: boolean
  /**
   * Also draw `powerLoss`: like a crash, and the client's store loses a
   * seeded number of the relaxed writes made since its last strict one (the
   * contract of `StoreDurability`), so the client restarts behind what it had
   * processed. Off by default, like `leave`.
   */
  powerLoss?: boolean
}

export interface SimulationResult {
  seed: number
  steps: number
  profile: 'small' | 'large'
  /** SHA-256 of the trace: equal for two runs of one seed. */
  traceDigest: string
  trace: string[]
  stats: { messagesDelivered: number; commits: number; crashes: number; storeFaults: number; networkTasks: number; maxGroupSize: number; powerLosses: number }
}

/** An invariant was violated. The message names the seed and the command that replays it. */
export class SimulationViolation extends Error {
  constructor(
    readonly seed: number,
    readonly steps: number,
    readonly profile: 'small' | 'large',
    readonly violation: string,
    readonly trace: readonly string[],
    /** The opt-in operations of the run, as CLI flags (`--leave`, `--server-removals`). */
    readonly flags: readonly string[] = []
  ) {
    super(
      `Simulation seed ${seed} (${profile}, ${steps} steps) violated an invariant: ${violation}\n` +
        `Replay: pnpm sim --seed ${seed} --steps ${steps} --profile ${profile}${flags.map((flag) => ` ${flag}`).join('')}\n` +
        `Last trace lines:\n  ${trace.slice(-40).join('\n  ')}`
    )
    this.name = 'SimulationViolation'
  }
}

/** Failures a client's operation may legitimately end with (the caller sees them; nothing is lost). */
const EXPECTED_OPERATION_ERRORS = new Set(['INVALID_STATE', 'COMMIT_CONFLICT', 'NO_KEY_PACKAGE', 'WRONG_EPOCH', 'NOT_A_MEMBER', 'INVALID_ARGUMENT'])

interface Membership {
  readonly groupHex: string
  readonly joinSeq: number
  readonly joinEpoch: bigint
  removedSeq: number | undefined
  readonly delivered: number[]
}

interface SimClient {
  readonly userId: string
  readonly clientId: string
  /** The client's store, kept across restarts (its disk): with `powerLoss`, one whose relaxed writes a power loss undoes. */
  readonly disk: ClientStore | PowerLossStore
  incarnation: number
  faults: StoreFaults | undefined
  client: MlsClient | undefined
  /** `start()`/`connect()` resolved for the current incarnation and no server restart happened since. */
  connected: boolean
  online: boolean
  readonly memberships: Map<string, Membership>
}

type Operation =
  | 'send'
  | 'leave'
  | 'serverRemove'
  | 'update'
  | 'add'
  | 'remove'
  | 'createGroup'
  | 'restart'
  | 'crash'
  | 'powerLoss'
  | 'offline'
  | 'online'
  | 'serverRestart'
  | 'storeFault'
  | 'sync'
  | 'reconnect'
  | 'publish'
  | 'settle'

const SMALL_CLIENTS = 10
const LARGE_CLIENTS = 32
const LARGE_GROUP = 26
const MAX_GROUPS = 5

/** Run one seeded simulation; throws `SimulationViolation` on the first broken invariant. */
export async function runSimulation(options: SimulationOptions): Promise<SimulationResult> {
  const world = new World(options)
  return world.run()
}

class World {
  private readonly seed: number
  private readonly steps: number
  private readonly profile: 'small' | 'large'
  private readonly leave: boolean
  private readonly serverRemovals: boolean
  private readonly powerLoss: boolean
  private externalSender: ServicesInit['externalSender']
  private readonly random: Random
  private readonly network: SimulatedNetwork
  private readonly crypto: CryptoProvider
  private readonly serverStore = memoryServerStore()
  private serverFence = { down: false }
  private services!: Services
  private readonly transport
  private readonly memory: { setOnline(clientId: string, online: boolean): void }
  private readonly clients: SimClient[] = []
  /** Group id hex → every client id that was ever added (never re-added, so each membership is one period). */
  private readonly groups = new Map<string, { everMembers: Set<string> }>()
  private readonly inflight = new Set<Promise<void>>()
  /** The first violation, kept even when it was raised where nobody awaits (a background operation, an event listener). */
  private failure: SimulationViolation | undefined
  private readonly trace: string[] = []
  private networkFaults: NetworkFaults = NO_NETWORK_FAULTS
  private step = 0
  private readonly stats = { messagesDelivered: 0, commits: 0, crashes: 0, storeFaults: 0, networkTasks: 0, maxGroupSize: 0, powerLosses: 0 }

  constructor(options: SimulationOptions) {
    this.seed = options.seed
    this.steps = options.steps
    this.profile = options.profile ?? (options.seed % 4 === 0 ? 'large' : 'small')
    this.leave = options.leave ?? false
    this.serverRemovals = options.serverRemovals ?? false
    this.powerLoss = options.powerLoss ?? false
    this.random = new Random(options.seed)
    this.network = new SimulatedNetwork(new Random(options.seed ^ 0x5eed))
    this.crypto = options.crypto ?? nodeCrypto()
    this.services = this.startServices()
    // Requests go to whichever services instance is current: a server restart swaps it.
    const services = new Proxy({} as Services, { get: (_target, prop) => Reflect.get(this.services, prop) as unknown })
    const memory = memoryTransport({ services, scheduler: this.network })
    this.memory = memory
    this.transport = faultyTransport(memory, new Random(options.seed ^ 0xfa17), () => this.networkFaults)
  }

  /**
   * A server process: its services, on the one durable store through a fence.
   * A restart takes the old process down: requests still running in it can
   * no longer touch the store (a dead process writes nothing), so the new
   * process's group cache, exact for one process, stays exact.
   */
  private startServices(): Services {
    this.serverFence.down = true
    const fence = { down: false }
    this.serverFence = fence
    const store = new Proxy(this.serverStore, {
      get: (target, prop) => {
        const value = Reflect.get(target, prop) as unknown
        if (typeof value !== 'function') return value
        return (...args: unknown[]) =>
          fence.down
            ? Promise.reject(new StorageError('STORAGE_IO', 'Simulated: the server process running this request was restarted'))
            : (value as (...a: unknown[]) => unknown).apply(target, args)
      }
    })
    return createServices({ store, crypto: this.crypto, now: this.network.clock, ...(this.externalSender === undefined ? {} : { externalSender: this.externalSender }) })
  }

  async run(): Promise<SimulationResult> {
    if (this.serverRemovals) {
      const cs = await this.crypto.getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
      const keys = await cs.signature.keygen()
      this.externalSender = { signaturePublicKey: keys.publicKey, signaturePrivateKey: keys.signKey }
      this.services = this.startServices()
    }
    await this.setup()
    this.networkFaults = { requestLost: 0.02, responseLost: 0.02, pushDropped: 0.05, pushDuplicated: 0.05 }
    for (this.step = 1; this.step <= this.steps; this.step++) {
      await this.randomOperation()
      const pumps = this.random.int(25)
      for (let i = 0; i < pumps; i++) if (!(await this.network.step())) break
      this.checkStepInvariants()
    }
    await this.quiesce()
    await this.checkFinalInvariants()
    if (this.failure !== undefined) throw this.failure
    this.stats.networkTasks = this.network.taskCount
    return {
      seed: this.seed,
      steps: this.steps,
      profile: this.profile,
      traceDigest: createHash('sha256').update(this.trace.join('\n')).digest('hex'),
      trace: this.trace,
      stats: { ...this.stats }
    }
  }

  // ---------------------------------------------------------------- setup

  private async setup(): Promise<void> {
    const count = this.profile === 'large' ? LARGE_CLIENTS : SMALL_CLIENTS
    for (let i = 0; i < count; i++) {
      const userId = `u${String(i).padStart(2, '0')}`
      const inner = memoryClientStore({ name: userId })
      const sim: SimClient = {
        userId,
        clientId: `${userId}/d`,
        disk: this.powerLoss ? powerLossStore(inner) : inner,
        incarnation: 0,
        faults: undefined,
        client: undefined,
        connected: false,
        online: true,
        memberships: new Map()
      }
      this.clients.push(sim)
      await this.open(sim)
      await this.settle([this.attempt(sim, 'start', (c) => c.start().then(() => this.markConnected(sim, c)))])
      await this.settle([this.attempt(sim, 'publish', (c) => c.publishKeyPackages({ count: 6 }).then(() => undefined))])
      if (!sim.connected) this.violation(`setup: ${sim.clientId} did not connect`)
    }
    // Four groups to start with: in the large profile the first has a few dozen members.
    for (let g = 0; g < 4; g++) {
      const creator = this.clients[g]!
      const others = this.clients.filter((c) => c !== creator)
      const size = this.profile === 'large' && g === 0 ? LARGE_GROUP - 1 : 1 + this.random.int(4)
      const members: SimClient[] = []
      while (members.length < size) {
        const c = this.random.pick(others)!
        if (!members.includes(c)) members.push(c)
      }
      await this.settle([
        this.attempt(creator, `create group with ${members.map((m) => m.userId).join(',')}`, async (c) => {
          const group = await c.createGroup(this.groupIdFor(g))
          this.noteCreated(creator, group)
          for (const m of members) this.groups.get(group.groupIdHex)!.everMembers.add(m.clientId)
          await c.addUsers(group, members.map((m) => m.userId))
        })
      ])
    }
    await this.quiesce()
    this.checkStepInvariants()
  }

  /** Open (or reopen after a crash) a client from its store, with the recorders attached before it starts. */
  private async open(sim: SimClient): Promise<void> {
    sim.incarnation++
    const store = faultyStore(sim.disk, { keepOpen: true })
    sim.faults = store.faults
    sim.connected = false
    let client: MlsClient
    try {
      client = await createMlsClient({
        userId: sim.userId,
        deviceId: 'd',
        crypto: this.crypto,
        store,
        transport: this.transport,
        start: false,
        retry: { initialDelayMs: 100, maxDelayMs: 3200 },
        timers: this.network.retryTimers,
        now: this.network.clock,
        keyPackages: { replenishBelow: 3, batchSize: 4 },
        maxCommitAttempts: 3
      })
    } catch (error) {
      sim.client = undefined
      this.log(`${sim.clientId} failed to open: ${describe(error)}`)
      if (!isOwnTrouble(error)) this.violation(`${sim.clientId} could not load its store: ${describe(error)}`)
      return
    }
    sim.client = client
    const incarnation = sim.incarnation
    const live = () => sim.incarnation === incarnation
    client.on('group:joined', ({ group }) => {
      if (!live()) return
      const existing = sim.memberships.get(group.groupIdHex)
      if (existing !== undefined) this.violation(`${sim.clientId} joined ${short(group.groupIdHex)} twice`)
      sim.memberships.set(group.groupIdHex, { groupHex: group.groupIdHex, joinSeq: group.cursor, joinEpoch: group.epoch, removedSeq: undefined, delivered: [] })
      this.log(`${sim.clientId} joined ${short(group.groupIdHex)} at seq ${group.cursor} epoch ${group.epoch}`)
    })
    client.on('message:received', ({ group, message }) => {
      if (!live()) return
      const m = sim.memberships.get(group.groupIdHex)
      if (m === undefined) return this.violation(`${sim.clientId} received a message in ${short(group.groupIdHex)} without being a member`)
      if (message.seq === undefined) return this.violation(`${sim.clientId} received a channel message without seq`)
      const last = m.delivered.at(-1) ?? m.joinSeq
      if (message.seq <= last) this.violation(`${sim.clientId} received seq ${message.seq} of ${short(group.groupIdHex)} after seq ${last} (duplicate or out of order)`)
      if (message.epoch < m.joinEpoch) this.violation(`${sim.clientId} decrypted a message of epoch ${message.epoch}, before it joined at epoch ${m.joinEpoch}`)
      if (m.removedSeq !== undefined) this.violation(`${sim.clientId} received a message after its removal`)
      m.delivered.push(message.seq)
      this.stats.messagesDelivered++
    })
    client.on('group:removed', ({ group }) => {
      if (!live()) return
      const m = sim.memberships.get(group.groupIdHex)
      if (m !== undefined) m.removedSeq = group.cursor
      this.log(`${sim.clientId} removed from ${short(group.groupIdHex)} at seq ${group.cursor}`)
    })
    client.on('status:changed', ({ group, to }) => {
      if (live() && to === 'failed') this.violation(`${sim.clientId}'s group ${short(group.groupIdHex)} entered failed`)
    })
    client.on('message:rejected', ({ group, error, seq }) => {
      if (live()) this.log(`${sim.clientId} rejected seq ${String(seq)} of ${short(group.groupIdHex)}: ${describe(error)}`)
    })
    client.on('sync:failed', ({ error }) => {
      if (live()) this.log(`${sim.clientId} background sync failed: ${describe(error)}`)
    })
    client.on('welcome:rejected', ({ error, seq }) => {
      if (live()) this.violation(`${sim.clientId} rejected Welcome ${seq}: ${describe(error)}`)
    })
  }

  private noteCreated(sim: SimClient, group: Group): void {
    this.groups.set(group.groupIdHex, { everMembers: new Set([sim.clientId]) })
    sim.memberships.set(group.groupIdHex, { groupHex: group.groupIdHex, joinSeq: 0, joinEpoch: 0n, removedSeq: undefined, delivered: [] })
    this.log(`${sim.clientId} created ${short(group.groupIdHex)}`)
  }

  // ---------------------------------------------------------------- operations

  private async randomOperation(): Promise<void> {
    const weights: Record<Operation, number> = {
      send: 30,
      update: 8,
      add: 10,
      remove: 6,
      createGroup: this.groups.size < MAX_GROUPS ? 4 : 0,
      restart: 2,
      crash: 2,
      powerLoss: this.powerLoss ? 2 : 0,
      offline: 3,
      online: 6,
      serverRestart: 0.5,
      storeFault: 6,
      sync: 4,
      reconnect: 4,
      publish: 2,
      settle: 3,
      leave: this.leave ? 2 : 0,
      serverRemove: this.serverRemovals ? 3 : 0
    }
    const operation = this.random.weighted(weights)!
    const sim = this.random.pick(this.clients)!
    switch (operation) {
      case 'send': {
        const group = this.pickGroupOf(sim)
        if (group === undefined) return
        const text = `m${this.step}`
        return this.launch(sim, `send ${text} in ${short(group.groupIdHex)}`, (c) => c.group(group.groupIdHex)!.send(text).then(() => undefined))
      }
      case 'update': {
        const group = this.pickGroupOf(sim)
        if (group === undefined) return
        return this.launch(sim, `update ${short(group.groupIdHex)}`, (c) => this.commitOutcome(c.group(group.groupIdHex)!.update()))
      }
      case 'add': {
        const group = this.pickGroupOf(sim)
        if (group === undefined) return
        const ever = this.groups.get(group.groupIdHex)!.everMembers
        const candidates = this.clients.filter((c) => !ever.has(c.clientId))
        const chosen = [...new Set([this.random.pick(candidates), this.random.chance(0.3) ? this.random.pick(candidates) : undefined])].filter(
          (c): c is SimClient => c !== undefined
        )
        if (chosen.length === 0) return
        for (const c of chosen) ever.add(c.clientId)
        const users = chosen.map((c) => c.userId)
        return this.launch(sim, `add ${users.join(',')} to ${short(group.groupIdHex)}`, (c) =>
          this.commitOutcome(c.addUsers(c.group(group.groupIdHex)!, users))
        )
      }
      case 'remove': {
        const group = this.pickGroupOf(sim)
        if (group === undefined) return
        const others = group.members().filter((m) => m.clientId !== sim.clientId)
        const target = this.random.pick(others)
        if (target === undefined) return
        return this.launch(sim, `remove ${target.clientId} from ${short(group.groupIdHex)}`, (c) =>
          this.commitOutcome(c.group(group.groupIdHex)!.removeMembers([target.clientId]))
        )
      }
      case 'leave': {
        // A self-Remove proposal; the next commit of any member includes it.
        const group = this.pickGroupOf(sim)
        if (group === undefined) return
        return this.launch(sim, `leave ${short(group.groupIdHex)}`, async (c) => {
          const left = await c.group(group.groupIdHex)!.leave()
          // Its removal was pending already (an earlier leave, or the server's proposal): nothing was posted.
          if (left.alreadyProposed) this.log(`${sim.clientId}'s removal from ${short(group.groupIdHex)} was already pending at seq ${left.seq}`)
        })
      }
      case 'serverRemove':
        return this.serverRemove()
      case 'createGroup':
        return this.launch(sim, 'create group', async (c) => this.noteCreated(sim, await c.createGroup(this.groupIdFor(this.groups.size))))
      case 'restart':
      case 'crash':
        return this.restart(sim, operation === 'crash')
      case 'powerLoss':
        return this.losePower(sim)
      case 'offline':
        if (sim.online) this.setOnline(sim, false)
        return
      case 'online':
        for (const c of this.clients) if (!c.online && this.random.chance(0.5)) this.setOnline(c, true)
        return
      case 'serverRestart':
        return this.restartServer()
      case 'storeFault': {
        if (sim.faults === undefined) return
        this.stats.storeFaults++
        if (this.random.chance(0.7)) sim.faults.failWrites += 1
        else sim.faults.failReads += 1
        this.log(`${sim.clientId} store will fail (writes ${sim.faults.failWrites}, reads ${sim.faults.failReads})`)
        return
      }
      case 'sync':
        if (!sim.connected) return
        return this.launch(sim, 'sync', (c) => c.sync())
      case 'reconnect':
        if (sim.client === undefined) return this.reopen(sim)
        if (sim.connected) return
        return this.launch(sim, 'connect', (c) => c.connect().then(() => this.markConnected(sim, c)))
      case 'publish':
        if (!sim.connected) return
        return this.launch(sim, 'publish', (c) => c.publishKeyPackages({ count: 2 }).then(() => undefined))
      case 'settle':
        await this.settle([...this.inflight])
        return
    }
  }

  /** Group ids are drawn from the seed so the trace does not depend on the crypto's randomness. */
  private groupIdFor(index: number): Uint8Array {
    const id = new Uint8Array(16)
    for (let i = 0; i < 16; i++) id[i] = this.random.int(256)
    id[0] = index
    return id
  }

  private pickGroupOf(sim: SimClient): Group | undefined {
    const client = sim.client
    if (client === undefined) return undefined
    const live = client.listGroups().filter((g) => g.status === 'active' || g.status === 'committing' || g.status === 'joining')
    return this.random.pick(live)
  }

  private async commitOutcome(outcome: Promise<{ kind: string }>): Promise<void> {
    const result = await outcome
    if (result.kind === 'committed') this.stats.commits++
  }

  /** Start an operation of `sim`'s current incarnation; it runs while the network is pumped. */
  /** A start or connect of `client` succeeded: the client is connected only if it is still `sim`'s current incarnation. */
  private markConnected(sim: SimClient, client: MlsClient): void {
    if (sim.client === client) sim.connected = true
  }

  private launch(sim: SimClient, what: string, fn: (client: MlsClient) => Promise<void>): void {
    this.inflight.add(this.attempt(sim, what, fn))
  }

  private attempt(sim: SimClient, what: string, fn: (client: MlsClient) => Promise<void>): Promise<void> {
    const client = sim.client
    const step = this.step
    if (client === undefined) return Promise.resolve()
    const incarnation = sim.incarnation
    const promise: Promise<void> = fn(client).then(
      () => this.log(`#${step} ${sim.clientId} ${what}: ok`),
      (error: unknown) => {
        const stale = sim.incarnation !== incarnation
        this.log(`#${step} ${sim.clientId} ${what}: ${stale ? '(crashed) ' : ''}${describe(error)}`)
        if (stale) return
        const code = MlsToolkitError.isInstance(error) ? error.code : undefined
        // A server restart during a handshake forgets the challenge: the connection attempt fails and is retried.
        const connecting = what === 'start' || what === 'connect' || what === 'reconnect'
        if (connecting && code === 'AUTHENTICATION_FAILED') return
        if (code === undefined || (!isOwnTrouble(error) && !EXPECTED_OPERATION_ERRORS.has(code))) {
          // Recorded, not thrown: this promise may be one nobody awaits yet; `settle` raises it.
          this.recordViolation(`${sim.clientId} ${what} failed unexpectedly: ${describe(error)}`)
        }
      }
    )
    const tracked = promise.finally(() => this.inflight.delete(tracked))
    return tracked
  }

  private setOnline(sim: SimClient, online: boolean): void {
    sim.online = online
    this.memory.setOnline(sim.clientId, online)
    this.log(`${sim.clientId} ${online ? 'online' : 'offline'}`)
  }

  private async restart(sim: SimClient, crash: boolean): Promise<void> {
    const client = sim.client
    if (client === undefined) return this.reopen(sim)
    this.log(`${sim.clientId} ${crash ? 'crashes' : 'restarts'}`)
    if (crash) this.stats.crashes++
    // Whatever the old process still has in flight can no longer touch the store (closed, or the process is gone).
    sim.faults!.fenced = true
    sim.incarnation++
    await client.close()
    await this.reopen(sim)
  }

  /**
   * A crash in which the store also loses some of its relaxed writes: the
   * client restarts behind what it had processed, and must fetch and process
   * it again (each message delivered once more, after the seq it restarts at).
   */
  private async losePower(sim: SimClient): Promise<void> {
    const disk = sim.disk
    if (!('losePower' in disk)) return
    const client = sim.client
    this.stats.powerLosses++
    sim.faults!.fenced = true
    sim.incarnation++
    await client?.close()
    const keep = this.random.int(disk.undoable + 1)
    this.log(`${sim.clientId} loses power: ${disk.undoable - keep} of ${disk.undoable} relaxed writes undone`)
    await disk.losePower(keep)
    await this.open(sim)
    // What the application had seen past each group's restored cursor is gone with the power; it is delivered again.
    for (const [groupHex, m] of sim.memberships) {
      const group = sim.client?.group(groupHex)
      if (group === undefined || m.removedSeq !== undefined) continue
      const kept = m.delivered.filter((seq) => seq <= group.cursor)
      if (kept.length < m.delivered.length) this.log(`${sim.clientId} in ${short(groupHex)} restarts at seq ${group.cursor}: ${m.delivered.length - kept.length} messages to deliver again`)
      m.delivered.splice(0, m.delivered.length, ...kept)
    }
    if (sim.client !== undefined) this.launch(sim, 'start', (c) => c.start().then(() => this.markConnected(sim, c)))
  }

  private async reopen(sim: SimClient): Promise<void> {
    await this.open(sim)
    if (sim.client !== undefined) this.launch(sim, 'start', (c) => c.start().then(() => this.markConnected(sim, c)))
  }

  /**
   * The server proposes removing one member of a random group with at least
   * two members (the proposal is ordered like any other entry, and pushed);
   * the next commit by another member includes it.
   */
  private async serverRemove(): Promise<void> {
    const [groupHex, group] = this.random.pick([...this.groups.entries()]) ?? []
    if (groupHex === undefined || group === undefined) return
    const target = this.random.pick([...group.everMembers].sort())
    if (target === undefined) return
    const groupId = Uint8Array.from(Buffer.from(groupHex, 'hex'))
    const roster = (await this.serverStore.getGroup(groupHex))?.roster ?? []
    if (roster.length < 2 || !roster.some((entry) => entry.clientId === target)) return
    try {
      const proposed = await this.services.channel.proposeRemoval(groupId, target)
      this.log(`server proposes removing ${target} from ${short(groupHex)}: ${proposed === undefined ? 'nothing to propose' : `seq ${proposed.seq}`}`)
    } catch (error) {
      this.violation(`the server's removal of ${target} from ${short(groupHex)} failed: ${describe(error)}`)
    }
  }

  private restartServer(): void {
    this.log('server restarts')
    this.services = this.startServices()
    // Every connection drops; clients reconnect (and resubscribe) when they are next started.
    for (const sim of this.clients) {
      if (sim.client === undefined) continue
      sim.connected = false
      this.launch(sim, 'reconnect', (c) => c.connect().then(() => this.markConnected(sim, c)))
    }
  }

  /** Pump the network (and, when idle, virtual time) until `promises` settle. */
  private async settle(promises: readonly Promise<void>[]): Promise<void> {
    let done = false
    void Promise.allSettled(promises).then(() => (done = true))
    await Promise.resolve()
    for (let guard = 0; !done; guard++) {
      if (this.failure !== undefined) throw this.failure
      if (guard > 20_000) this.violation('the simulation does not settle (livelock)')
      if (await this.network.step()) continue
      if (await this.network.fireTimer()) continue
      await new Promise((resolve) => setImmediate(resolve))
      if (!done && this.network.pendingTasks === 0 && this.network.pendingTimers === 0) {
        await new Promise((resolve) => setImmediate(resolve))
        if (!done && this.network.pendingTasks === 0 && this.network.pendingTimers === 0) this.violation('an operation hangs with nothing left to run')
      }
    }
    if (this.failure !== undefined) throw this.failure
  }

  /** No faults, everyone online and started; run until nothing is left to do, then sync every client twice. */
  private async quiesce(): Promise<void> {
    this.networkFaults = NO_NETWORK_FAULTS
    for (const sim of this.clients) {
      if (sim.faults !== undefined) {
        sim.faults.failReads = 0
        sim.faults.failWrites = 0
      }
      if (!sim.online) this.setOnline(sim, true)
    }
    await this.settle([...this.inflight])
    for (const sim of this.clients) if (sim.client === undefined) await this.reopen(sim)
    await this.settle([...this.inflight])
    for (let round = 0; round < 2; round++) {
      for (const sim of this.clients) {
        if (!sim.connected) this.launch(sim, 'connect', (c) => c.connect().then(() => this.markConnected(sim, c)))
      }
      await this.settle([...this.inflight])
      await this.settle(this.clients.map((sim) => this.attempt(sim, 'sync', (c) => c.sync())))
    }
    // Let background retries finish; they must stop once everything succeeded.
    for (let guard = 0; this.network.pendingTasks > 0 || this.network.pendingTimers > 0; guard++) {
      if (guard > 20_000) this.violation('background retries never stop after quiescence')
      if (!(await this.network.step())) await this.network.fireTimer()
    }
    this.log('quiescent')
  }

  // ---------------------------------------------------------------- invariants

  private checkStepInvariants(): void {
    if (this.failure !== undefined) throw this.failure
    for (const groupHex of this.groups.keys()) {
      const byEpoch = new Map<bigint, { clientId: string; authenticator: Uint8Array }>()
      let size = 0
      for (const sim of this.clients) {
        const group = sim.client?.group(groupHex)
        if (group === undefined || group.mlsState === undefined) continue
        if (group.status === 'failed') this.violation(`${sim.clientId}'s group ${short(groupHex)} is failed`)
        if (group.status === 'removed') continue
        // Leaves of the tree, not members() (which parses every credential): only the largest size is recorded.
        size = Math.max(size, leafCount(group.mlsState))
        const authenticator = group.epochAuthenticator()
        const seen = byEpoch.get(group.epoch)
        if (seen === undefined) byEpoch.set(group.epoch, { clientId: sim.clientId, authenticator })
        else if (!equalBytes(seen.authenticator, authenticator)) {
          this.violation(`${sim.clientId} and ${seen.clientId} disagree at epoch ${group.epoch} of ${short(groupHex)} (fork)`)
        }
      }
      this.stats.maxGroupSize = Math.max(this.stats.maxGroupSize, size)
    }
  }

  private async checkFinalInvariants(): Promise<void> {
    this.checkStepInvariants()
    for (const [groupHex] of this.groups) {
      const log = await this.serverStore.readLog(groupHex, 0, 1_000_000)
      const head = log.at(-1)?.seq ?? 0
      const applications = log.filter((e) => e.kind === 'application')
      for (const sim of this.clients) {
        const m = sim.memberships.get(groupHex)
        if (m === undefined) continue
        const group = sim.client?.group(groupHex)
        if (m.removedSeq === undefined) {
          if (group === undefined) this.violation(`${sim.clientId} lost group ${short(groupHex)}`)
          else {
            if (group.status !== 'active') this.violation(`${sim.clientId}'s group ${short(groupHex)} is ${group.status} at quiescence`)
            if (group.cursor !== head) this.violation(`${sim.clientId}'s cursor in ${short(groupHex)} is ${group.cursor}, the head is ${head}`)
          }
        }
        const expected = applications
          .filter((e) => e.seq > m.joinSeq && (m.removedSeq === undefined || e.seq < m.removedSeq) && e.epoch >= m.joinEpoch)
          .map((e) => e.seq)
        if (expected.join() !== m.delivered.join()) {
          const missing = expected.filter((s) => !m.delivered.includes(s))
          const extra = m.delivered.filter((s) => !expected.includes(s))
          this.violation(
            `${sim.clientId} in ${short(groupHex)}: delivered ${m.delivered.length} of ${expected.length} messages (missing seqs ${missing.join(',') || '-'}, unexpected ${extra.join(',') || '-'})`
          )
        }
      }
    }
  }

  private violation(message: string): never {
    throw this.recordViolation(message)
  }

  /** Log a violation and keep the first one, so it is raised even if the code that found it cannot throw it. */
  private recordViolation(message: string): SimulationViolation {
    this.log(`VIOLATION ${message}`)
    const flags = [...(this.leave ? ['--leave'] : []), ...(this.serverRemovals ? ['--server-removals'] : []), ...(this.powerLoss ? ['--power-loss'] : [])]
    const violation = new SimulationViolation(this.seed, this.steps, this.profile, message, this.trace, flags)
    this.failure ??= violation
    return this.failure
  }

  private log(line: string): void {
    this.trace.push(line)
    if (process.env.SIM_STREAM === '1') console.log(line)
  }
}

/** The non-blank leaves of a state's ratchet tree (its members). */
function leafCount(state: Group['mlsState']): number {
  let count = 0
  const tree = state?.ratchetTree ?? []
  for (let i = 0; i < tree.length; i += 2) if (tree[i]?.nodeType === 'leaf') count++
  return count
}

function short(groupHex: string): string {
  return `g${groupHex.slice(0, 2)}`
}

function describe(error: unknown): string {
  if (MlsToolkitError.isInstance(error)) return `${error.code} ${error.message}`
  return error instanceof Error ? `${error.name} ${error.message}` : String(error)
}

