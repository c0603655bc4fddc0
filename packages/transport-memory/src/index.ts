import type {
  AbortOptions,
  ChannelEvent,
  ClientId,
  Connection,
  DirectoryClient,
  GroupChannelClient,
  SessionCredentials,
  Transport
} from '@mls/contracts/interfaces'
import { TransportError } from '@mls/contracts'
import type { Services } from '@mls/server'

/** Decides when each message crossing the in-process "network" arrives. */
export interface Scheduler {
  /** Run `task` later, never synchronously. */
  schedule(task: () => void): void
}

/** Delivers every message on the next macrotask, in order. */
export function immediateScheduler(): Scheduler {
  return { schedule: (task) => setImmediate(task) }
}

/**
 * An adversarial but reproducible network: each message is delayed by a
 * pseudo-random 0..maxDelayMs, so requests, responses and pushes arrive out of
 * order. The same seed gives the same sequence of delays.
 */
export function seededScheduler(seed: number, options: { maxDelayMs?: number } = {}): Scheduler & {
  /** The scheduler's seeded pseudo-random source, in [0, 1): tests draw from it to stay reproducible. */
  random(): number
} {
  let s = seed >>> 0 || 1
  const random = (): number => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s / 0x100000000
  }
  const max = options.maxDelayMs ?? 5
  return {
    random,
    schedule: (task) => {
      const delay = Math.floor(random() * (max + 1))
      if (delay === 0) setImmediate(task)
      else setTimeout(task, delay)
    }
  }
}

/** Options of `memoryTransport()`. */
export interface MemoryTransportInit {
  /** The Directory and Group Channel services (from `@mls/server`). */
  services: Services
  /** Default: `immediateScheduler()`. */
  scheduler?: Scheduler
}

/** Test controls of the in-process network. */
export interface MemoryNetworkControls {
  /** Take a client offline (requests fail with TRANSPORT_UNAVAILABLE, pushes are dropped) or back online. */
  setOnline(clientId: ClientId, online: boolean): void
  /** Pushed events dropped so far (offline clients). */
  readonly droppedPushes: number
}

const copy = <T>(value: T): T => structuredClone(value)

class MemoryTransport implements Transport, MemoryNetworkControls {
  readonly specificationVersion = 'v1' as const
  readonly [Symbol.toStringTag] = 'MemoryTransport'
  private readonly services: Services
  private readonly scheduler: Scheduler
  private readonly offline = new Set<ClientId>()
  private readonly restoredListeners = new Map<ClientId, Set<() => void>>()
  droppedPushes = 0

  constructor(init: MemoryTransportInit) {
    this.services = init.services
    this.scheduler = init.scheduler ?? immediateScheduler()
  }

  setOnline(clientId: ClientId, online: boolean): void {
    if (online) {
      const was = this.offline.delete(clientId)
      if (was) for (const fn of this.restoredListeners.get(clientId) ?? []) this.scheduler.schedule(fn)
    } else {
      this.offline.add(clientId)
    }
  }

  /** Carry a request to the services and its outcome back, each leg through the scheduler. */
  private call<T>(clientId: ClientId, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (signal?.aborted === true) {
        reject(new TransportError('ABORTED', 'The request was aborted'))
        return
      }
      if (this.offline.has(clientId)) {
        this.scheduler.schedule(() => reject(new TransportError('TRANSPORT_UNAVAILABLE', `${clientId} is offline`)))
        return
      }
      this.scheduler.schedule(() => {
        fn().then(
          (value) => this.scheduler.schedule(() => resolve(copy(value))),
          (error: unknown) => this.scheduler.schedule(() => reject(error))
        )
      })
    })
  }

  async connect(credentials: SessionCredentials, options?: AbortOptions): Promise<Connection> {
    const claimed = credentials.clientId
    const challenge = await this.call(claimed, async () => this.services.auth.challenge(), options?.signal)
    const signature = await credentials.signChallenge(challenge)
    const clientId = await this.call(
      claimed,
      () =>
        this.services.auth.authenticate(
          {
            clientId: claimed,
            signaturePublicKey: copy(credentials.signaturePublicKey),
            ciphersuite: credentials.ciphersuite,
            register: credentials.register
          },
          challenge,
          copy(signature)
        ),
      options?.signal
    )
    let closed = false
    const unsubscribers = new Set<() => void>()
    const guard = <T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> => {
      if (closed) return Promise.reject(new TransportError('TRANSPORT_CLOSED', 'The connection is closed'))
      return this.call(clientId, fn, signal)
    }
    const { directory: dir, channel: ch } = this.services
    const directory: DirectoryClient = {
      uploadKeyPackages: (req, o) => guard(() => dir.uploadKeyPackages(clientId, copy(req)), o?.signal),
      fetchKeyPackages: (userId, o) => guard(() => dir.fetchKeyPackages(clientId, userId), o?.signal),
      lookupIdentity: (id, o) => guard(() => dir.lookupIdentity(clientId, id), o?.signal),
      countKeyPackages: (o) => guard(() => dir.countKeyPackages(clientId), o?.signal),
      fetchDeviceList: (userId, o) => guard(() => dir.fetchDeviceList(clientId, userId), o?.signal),
      publishDeviceListEntry: (entry, o) => guard(() => dir.publishDeviceListEntry(clientId, copy(entry)), o?.signal)
    }
    const channel: GroupChannelClient = {
      createGroup: (groupId, req, o) => guard(() => ch.createGroup(clientId, copy(groupId), copy(req)), o?.signal),
      postCommit: (groupId, req, o) => guard(() => ch.postCommit(clientId, copy(groupId), copy(req)), o?.signal),
      postMessage: (groupId, message, o) => guard(() => ch.postMessage(clientId, copy(groupId), copy(message)), o?.signal),
      postProposal: (groupId, proposal, o) => guard(() => ch.postProposal(clientId, copy(groupId), copy(proposal)), o?.signal),
      fetchEntries: (groupId, afterSeq, o) => guard(() => ch.fetchEntries(clientId, copy(groupId), afterSeq, o?.limit), o?.signal),
      fetchWelcomes: (afterSeq, o) => guard(() => ch.fetchWelcomes(clientId, afterSeq, o?.limit), o?.signal),
      fetchGroupInfo: (groupId, o) => guard(() => ch.fetchGroupInfo(clientId, copy(groupId)), o?.signal),
      subscribe: (listener: (event: ChannelEvent) => void) => {
        const unsubscribe = this.services.subscribe(clientId, (event) => {
          if (closed) return
          if (this.offline.has(clientId)) {
            this.droppedPushes++
            return
          }
          const delivered = copy(event)
          this.scheduler.schedule(() => {
            if (!closed) listener(delivered)
          })
        })
        const restored = () => {
          if (!closed) listener({ type: 'connection:restored' })
        }
        let set = this.restoredListeners.get(clientId)
        if (set === undefined) this.restoredListeners.set(clientId, (set = new Set()))
        set.add(restored)
        const off = () => {
          unsubscribe()
          set.delete(restored)
        }
        unsubscribers.add(off)
        return off
      }
    }
    const advertised = this.services.externalSender
    return {
      clientId,
      ...(advertised === undefined
        ? {}
        : { externalSender: { ciphersuite: advertised.ciphersuite, signaturePublicKey: advertised.signaturePublicKey.slice(), credential: advertised.credential.slice() } }),
      directory,
      channel,
      close: async () => {
        closed = true
        for (const off of unsubscribers) off()
        unsubscribers.clear()
      }
    }
  }
}

/** An in-process transport to `services`, with network controls for tests. */
export function memoryTransport(init: MemoryTransportInit): Transport & MemoryNetworkControls {
  return new MemoryTransport(init)
}
