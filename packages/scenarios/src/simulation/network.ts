import { TransportError } from '@mls/core'
import type { ChannelEvent, Connection, DirectoryClient, GroupChannelClient, Transport } from '@mls/core/interfaces'
import type { RetryTimers } from '@mls/core'
import type { Scheduler } from '@mls/transport-memory'

/** A small seeded PRNG (mulberry32): the only source of randomness of a simulation. */
export class Random {
  private state: number

  constructor(seed: number) {
    this.state = seed >>> 0
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let t = this.state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n)
  }

  chance(p: number): boolean {
    return this.next() < p
  }

  pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[this.int(items.length)]
  }

  /** Pick by weight; `undefined` when every weight is 0. */
  weighted<T extends string>(weights: Readonly<Record<T, number>>): T | undefined {
    const entries = (Object.entries(weights) as [T, number][]).filter(([, w]) => w > 0)
    const total = entries.reduce((sum, [, w]) => sum + w, 0)
    let r = this.next() * total
    for (const [key, w] of entries) {
      r -= w
      if (r < 0) return key
    }
    return entries.at(-1)?.[0]
  }
}

/**
 * Where a simulation's clock starts: midnight UTC of the day it runs. Only
 * differences of the clock decide anything in a run (rate limits, challenge
 * expiry); the start is near the real time because ts-mls checks lifetimes
 * against the real clock.
 */
export function simulationEpochMs(): number {
  const day = 24 * 3600 * 1000
  return Math.floor(Date.now() / day) * day
}

/**
 * The network and the clock of a simulation. Every message the memory
 * transport carries becomes a task here, and the simulator runs the tasks one
 * at a time in an order drawn from the seed (so requests, responses and pushes
 * are reordered reproducibly); timers run on virtual time, only when no task
 * is left.
 */
export class SimulatedNetwork implements Scheduler {
  private tasks: (() => void)[] = []
  private timers: { at: number; id: number; callback: () => void }[] = []
  private nextTimerId = 1
  private now = 0
  /** Tasks run so far. */
  taskCount = 0

  /** @param epochMs where the clock starts (not the moment the run started: nothing may depend on that). */
  constructor(
    private readonly random: Random,
    private readonly epochMs: number = simulationEpochMs()
  ) {}

  schedule(task: () => void): void {
    this.tasks.push(task)
  }

  /** Virtual-time timers for the clients' retry backoff. */
  readonly retryTimers: RetryTimers = {
    setTimeout: (callback, delayMs) => {
      const id = this.nextTimerId++
      this.timers.push({ at: this.now + delayMs, id, callback })
      return id
    },
    clearTimeout: (handle) => {
      this.timers = this.timers.filter((t) => t.id !== handle)
    }
  }

  /**
   * The simulation's clock in ms: virtual time (advanced by timers) plus one ms per
   * task run. Services and clients read it instead of `Date.now()`, so rate limits
   * and validity windows depend on the seed, never on how fast the machine ran.
   */
  readonly clock = (): number => this.epochMs + this.now + this.taskCount

  get pendingTasks(): number {
    return this.tasks.length
  }

  get pendingTimers(): number {
    return this.timers.length
  }

  /** Run one randomly chosen task, then let its promise continuations settle. False when none was pending. */
  async step(): Promise<boolean> {
    if (this.tasks.length === 0) return false
    const [task] = this.tasks.splice(this.random.int(this.tasks.length), 1)
    this.taskCount++
    task!()
    await settleMicrotasks()
    return true
  }

  /** Advance virtual time to the earliest timer and run it. False when none is pending. */
  async fireTimer(): Promise<boolean> {
    if (this.timers.length === 0) return false
    this.timers.sort((a, b) => a.at - b.at || a.id - b.id)
    const timer = this.timers.shift()!
    this.now = Math.max(this.now, timer.at)
    timer.callback()
    await settleMicrotasks()
    return true
  }
}

/** Wait until every pending promise continuation has run (one macrotask turn). */
export function settleMicrotasks(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/** Fault rates of the simulated network (0 = never). */
export interface NetworkFaults {
  /** A request fails before reaching the services. */
  requestLost: number
  /** A request is carried out by the services but its response is lost. */
  responseLost: number
  /** A pushed event is dropped. */
  pushDropped: number
  /** A pushed event is delivered twice. */
  pushDuplicated: number
}

export const NO_NETWORK_FAULTS: NetworkFaults = { requestLost: 0, responseLost: 0, pushDropped: 0, pushDuplicated: 0 }

/**
 * Wrap a transport so its connections fail as a network does: requests lost
 * before or after the services handled them, pushes dropped or duplicated.
 * Decisions come from `random`, at call time, so a run is reproducible.
 */
export function faultyTransport(inner: Transport, random: Random, faults: () => NetworkFaults): Transport {
  const request = <A extends unknown[], T>(fn: (...args: A) => Promise<T>) =>
    async (...args: A): Promise<T> => {
      const f = faults()
      if (random.chance(f.requestLost)) throw new TransportError('TRANSPORT_UNAVAILABLE', 'Simulated: request lost')
      const loseResponse = random.chance(f.responseLost)
      const result = await fn(...args)
      if (loseResponse) throw new TransportError('TRANSPORT_UNAVAILABLE', 'Simulated: response lost')
      return result
    }
  return {
    specificationVersion: inner.specificationVersion,
    [Symbol.toStringTag]: `Faulty${inner[Symbol.toStringTag]}`,
    async connect(credentials, options): Promise<Connection> {
      const connection = await inner.connect(credentials, options)
      const d = connection.directory
      const c = connection.channel
      const directory: DirectoryClient = {
        uploadKeyPackages: request(d.uploadKeyPackages.bind(d)),
        fetchKeyPackages: request(d.fetchKeyPackages.bind(d)),
        lookupIdentity: request(d.lookupIdentity.bind(d)),
        countKeyPackages: request(d.countKeyPackages.bind(d)),
        fetchDeviceList: request(d.fetchDeviceList.bind(d)),
        publishDeviceListEntry: request(d.publishDeviceListEntry.bind(d))
      }
      const channel: GroupChannelClient = {
        createGroup: request(c.createGroup.bind(c)),
        postCommit: request(c.postCommit.bind(c)),
        postMessage: request(c.postMessage.bind(c)),
        postProposal: request(c.postProposal.bind(c)),
        fetchGroupInfo: request(c.fetchGroupInfo.bind(c)),
        fetchEntries: request(c.fetchEntries.bind(c)),
        fetchWelcomes: request(c.fetchWelcomes.bind(c)),
        subscribe: (listener: (event: ChannelEvent) => void) =>
          c.subscribe((event) => {
            const f = faults()
            if (random.chance(f.pushDropped)) return
            listener(event)
            if (random.chance(f.pushDuplicated)) listener(event)
          })
      }
      // Everything else of the connection (its clientId, the server's externalSender if it advertises one, close) is kept.
      return { ...connection, directory, channel, close: () => connection.close() }
    }
  }
}
