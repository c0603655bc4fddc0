/**
 * Overlapping `start()` and `connect()` calls on a real `MlsClient`, over a
 * fake transport whose every response goes through the seeded scheduler (so
 * the interleaving differs by seed and replays from it). Simulator seeds
 * 1276 and 1530 found that overlapping connects could close each other's
 * sessions; the client now opens, replaces and tears down its session under
 * one lock. Every test awaits the calls' outcomes, never a delay.
 */
import { describe, expect, it } from 'vitest'
import { createMlsClient, type MlsClient, type RetryTimers } from '../src/client.js'
import { tsMlsDefaultCrypto } from '../src/crypto.js'
import { TransportError } from '../src/errors.js'
import type { ChannelEvent, GroupChannelClient } from '../src/interfaces/channel.js'
import type { DirectoryClient } from '../src/interfaces/directory.js'
import { TRANSPORT_SPECIFICATION_VERSION, type Connection, type Transport } from '../src/interfaces/transport.js'
import { MemoryStore, SeededScheduler } from './group-harness.js'

/** What goes wrong in the n-th session (counting from 0). */
interface SessionFaults {
  /** Its device-list fetch fails (the claim fails). */
  readonly failClaim?: boolean
  /** Its Welcome fetch fails (the catch-up after connecting fails). */
  readonly failWelcomes?: boolean
  /** The transport fails to open it. */
  readonly failConnect?: boolean
}

/** One session the fake transport opened. */
class FakeSession implements Connection {
  readonly clientId: string
  readonly directory: DirectoryClient
  readonly channel: GroupChannelClient
  closed = false
  /** From `transport.connect` until it subscribed or closed: the client is establishing it. */
  establishing = true
  private readonly pending = new Set<(error: Error) => void>()

  constructor(
    private readonly transport: FakeTransport,
    readonly index: number,
    clientId: string,
    faults: SessionFaults
  ) {
    this.clientId = clientId
    const notImplemented = (): Promise<never> => Promise.reject(new Error('not used by this test'))
    this.directory = {
      uploadKeyPackages: notImplemented,
      fetchKeyPackages: notImplemented,
      lookupIdentity: notImplemented,
      countKeyPackages: notImplemented,
      fetchDeviceList: (userId) =>
        this.answer(() => {
          if (faults.failClaim === true) throw new TransportError('TRANSPORT_UNAVAILABLE', `device list of session ${index} lost (injected)`)
          return transport.deviceLists.get(userId) ?? []
        }),
      publishDeviceListEntry: (entry) =>
        this.answer(() => {
          const list = [...(transport.deviceLists.get(clientId.split('/')[0] ?? '') ?? []), entry]
          transport.deviceLists.set(clientId.split('/')[0] ?? '', list)
          return { version: list.length }
        })
    }
    this.channel = {
      createGroup: notImplemented,
      postCommit: notImplemented,
      postProposal: notImplemented,
      postMessage: notImplemented,
      fetchEntries: notImplemented,
      fetchGroupInfo: notImplemented,
      fetchWelcomes: () =>
        this.answer(() => {
          if (faults.failWelcomes === true) throw new TransportError('TRANSPORT_UNAVAILABLE', `welcomes of session ${index} lost (injected)`)
          return []
        }),
      subscribe: (listener: (event: ChannelEvent) => void) => {
        void listener
        this.establishing = false
        this.transport.settle()
        return () => undefined
      }
    }
  }

  /** Answer a request later, in the scheduler's order; a session closed meanwhile fails it with TRANSPORT_CLOSED. */
  private answer<T>(compute: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new TransportError('TRANSPORT_CLOSED', `session ${this.index} is closed`))
    return new Promise<T>((resolve, reject) => {
      const fail = (error: Error) => reject(error)
      this.pending.add(fail)
      this.transport.scheduler.schedule(() => {
        if (!this.pending.delete(fail)) return
        try {
          resolve(compute())
        } catch (error) {
          reject(error as Error)
        }
      })
    })
  }

  close(): Promise<void> {
    this.closed = true
    this.establishing = false
    this.transport.settle()
    for (const fail of this.pending) fail(new TransportError('TRANSPORT_CLOSED', `session ${this.index} is closed`))
    this.pending.clear()
    return Promise.resolve()
  }
}

class FakeTransport implements Transport {
  readonly specificationVersion = TRANSPORT_SPECIFICATION_VERSION
  readonly [Symbol.toStringTag] = 'FakeTransport'
  readonly sessions: FakeSession[] = []
  readonly deviceLists = new Map<string, Uint8Array[]>()
  /** The most sessions being established at once. */
  maxEstablishing = 0
  private connectCalled: (() => void) | undefined

  constructor(
    readonly scheduler: SeededScheduler,
    private readonly faults: (index: number) => SessionFaults
  ) {}

  connect(credentials: { clientId: string }): Promise<Connection> {
    const faults = this.faults(this.sessions.length)
    const session = new FakeSession(this, this.sessions.length, credentials.clientId, faults)
    this.sessions.push(session)
    this.settle()
    this.connectCalled?.()
    return new Promise((resolve, reject) =>
      this.scheduler.schedule(() => {
        if (faults.failConnect !== true) return resolve(session)
        void session.close()
        reject(new TransportError('TRANSPORT_UNAVAILABLE', `session ${session.index} could not connect (injected)`))
      })
    )
  }

  /** Resolves when the client next calls `connect`. */
  nextConnect(): Promise<void> {
    return new Promise((resolve) => {
      this.connectCalled = resolve
    })
  }

  settle(): void {
    this.maxEstablishing = Math.max(this.maxEstablishing, this.sessions.filter((s) => s.establishing).length)
  }

  open(): FakeSession[] {
    return this.sessions.filter((s) => !s.closed)
  }
}

/** Timers that never fire by themselves: a retry the client schedules is only recorded. */
function recordingTimers(): RetryTimers & { scheduled: number } {
  const timers = {
    scheduled: 0,
    setTimeout: () => {
      timers.scheduled++
      return timers.scheduled
    },
    clearTimeout: () => undefined
  }
  return timers
}

async function clientOver(transport: FakeTransport): Promise<MlsClient> {
  return createMlsClient({
    userId: 'alice',
    deviceId: 'laptop',
    crypto: tsMlsDefaultCrypto(),
    store: new MemoryStore(),
    transport,
    start: false,
    timers: recordingTimers()
  })
}

const SEEDS = [1, 2, 3, 4, 5]

describe('overlapping connects (one connect lock)', () => {
  it.each(SEEDS)('seed %i: start() failing its claim while connect() overlaps: one session at a time, the later one stays online', async (seed) => {
    const transport = new FakeTransport(new SeededScheduler(seed), (index) => ({ failClaim: index === 0 }))
    const client = await clientOver(transport)
    const [started, connected] = await Promise.allSettled([client.start(), client.connect()])
    expect(started.status).toBe('rejected')
    expect(connected.status).toBe('fulfilled')
    expect(transport.maxEstablishing).toBe(1)
    expect(transport.sessions).toHaveLength(2)
    expect(transport.open().map((s) => s.index)).toEqual([1])
    expect(client.connectionState).toBe('online')
    expect(client.channel).toBeDefined()
    await client.close()
    expect(transport.open()).toEqual([])
  })

  it.each(SEEDS)('seed %i: a start() whose catch-up fails leaves alone the session an overlapping connect() opened', async (seed) => {
    const transport = new FakeTransport(new SeededScheduler(seed), (index) => ({ failWelcomes: index === 0 }))
    const client = await clientOver(transport)
    const starting = client.start()
    // The connect is called while start() is under way (its session is opening or catching up).
    const connecting = client.connect()
    const [started, connected] = await Promise.allSettled([starting, connecting])
    expect(started.status).toBe('rejected')
    expect(connected.status).toBe('fulfilled')
    expect(transport.maxEstablishing).toBe(1)
    expect(transport.open().map((s) => s.index)).toEqual([1])
    expect(client.connectionState).toBe('online')
    await client.close()
    expect(transport.open()).toEqual([])
  })

  it.each(SEEDS)('seed %i: a connect() that fails after start() connected goes offline with no session open and a retry scheduled', async (seed) => {
    const timers = recordingTimers()
    const transport = new FakeTransport(new SeededScheduler(seed), (index) => ({ failConnect: index === 1 }))
    const client = await createMlsClient({
      userId: 'alice',
      deviceId: 'laptop',
      crypto: tsMlsDefaultCrypto(),
      store: new MemoryStore(),
      transport,
      start: false,
      timers
    })
    // start() connects first; its catch-up may fail when the connect() replaces its session (either is fine).
    const [, connected] = await Promise.allSettled([client.start(), client.connect()])
    expect(connected.status).toBe('rejected')
    expect(transport.maxEstablishing).toBe(1)
    expect(transport.open()).toEqual([])
    expect(client.connectionState).toBe('offline')
    expect(timers.scheduled).toBeGreaterThan(0)
    await client.close()
  })

  it('a session that connects after close() is closed at once', async () => {
    const transport = new FakeTransport(new SeededScheduler(7), () => ({}))
    const client = await clientOver(transport)
    const called = transport.nextConnect()
    const connecting = client.connect()
    await called
    await client.close()
    await expect(connecting).rejects.toMatchObject({ code: 'INVALID_STATE' })
    expect(transport.sessions).toHaveLength(1)
    expect(transport.open()).toEqual([])
  })
})
