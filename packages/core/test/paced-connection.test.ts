/**
 * `pacedConnection` paces the requests of a connection and keeps everything
 * else of it. It once rebuilt the connection field by field and dropped
 * `externalSender`; these tests give it a connection with fields and methods
 * it does not know, and check they survive, called on the original.
 */
import { describe, expect, it } from 'vitest'
import { pacedConnection, resolvePacing } from '../src/pacing.js'
import { ServiceError } from '../src/errors.js'
import type { GroupChannelClient } from '../src/interfaces/channel.js'
import type { DirectoryClient } from '../src/interfaces/directory.js'
import type { Connection, ServerExternalSender } from '../src/interfaces/transport.js'

/** A channel client as a class (methods on the prototype, state on the instance), with a method no interface names. */
class FakeChannel {
  fetched = 0
  readonly inFlight = { now: 0, most: 0 }
  private readonly gates: (() => void)[] = []
  private refusals = 0
  private arrivedListener: (() => void) | undefined

  constructor(refusals: number) {
    this.refusals = refusals
  }

  fetchWelcomes(): Promise<[]> {
    this.fetched++
    if (this.refusals > 0) {
      this.refusals--
      return Promise.reject(new ServiceError('RATE_LIMITED', 'slow down (injected)', { details: { retryAfterMs: 1 } }))
    }
    this.inFlight.now++
    this.inFlight.most = Math.max(this.inFlight.most, this.inFlight.now)
    const answered = new Promise<[]>((resolve) =>
      this.gates.push(() => {
        this.inFlight.now--
        resolve([])
      })
    )
    this.arrivedListener?.()
    return answered
  }

  /** Resolves once a request is waiting for its answer. */
  arrived(): Promise<void> {
    if (this.gates.length > 0) return Promise.resolve()
    return new Promise((resolve) => {
      this.arrivedListener = resolve
    })
  }

  /** Let every request waiting so far answer. */
  release(): number {
    const gates = this.gates.splice(0)
    for (const open of gates) open()
    return gates.length
  }

  subscribe(): () => void {
    return () => undefined
  }

  /** Not in `GroupChannelClient`: a transport's own extra. */
  transportStatistics(): { fetched: number } {
    return { fetched: this.fetched }
  }
}

class FakeConnection {
  readonly clientId = 'alice/laptop'
  readonly externalSender: ServerExternalSender
  readonly directory: DirectoryClient
  readonly channel: FakeChannel
  /** Not in `Connection`: a field a newer transport adds. */
  readonly protocolVersion = 7
  closed = 0

  constructor(channel: FakeChannel) {
    this.channel = channel
    this.externalSender = { credential: new Uint8Array([1, 2]), signaturePublicKey: new Uint8Array([3, 4]) } as unknown as ServerExternalSender
    this.directory = { countKeyPackages: () => Promise.resolve({ oneTime: 3, lastResort: true }) } as unknown as DirectoryClient
  }

  close(): Promise<void> {
    this.closed++
    return Promise.resolve()
  }

  /** Not in `Connection`. */
  describe(): string {
    return `${this.clientId} v${this.protocolVersion}`
  }
}

const timers = { setTimeout: (callback: () => void) => setTimeout(callback, 0) }

describe('pacedConnection', () => {
  it('keeps every field and method it does not pace, including ones no interface names', async () => {
    const original = new FakeConnection(new FakeChannel(0))
    const paced = pacedConnection(original as unknown as Connection, resolvePacing({}), timers) as unknown as FakeConnection
    expect(paced.clientId).toBe('alice/laptop')
    expect(paced.externalSender).toBe(original.externalSender)
    expect(paced.protocolVersion).toBe(7)
    expect('protocolVersion' in paced).toBe(true)
    expect(paced.describe()).toBe('alice/laptop v7')
    expect(paced.channel.transportStatistics()).toEqual({ fetched: 0 })
    await expect(paced.directory.countKeyPackages()).resolves.toEqual({ oneTime: 3, lastResort: true })
    await paced.close()
    expect(original.closed).toBe(1)
    // A field the transport changes later is read through, not copied.
    original.closed = 5
    expect(paced.closed).toBe(5)
  })

  it('still paces the requests: at most maxRequestsInFlight at once, RATE_LIMITED retried', async () => {
    const channel = new FakeChannel(2)
    const original = new FakeConnection(channel)
    const paced = pacedConnection(original as unknown as Connection, resolvePacing({ maxRequestsInFlight: 1 }), timers)
    const first = paced.channel.fetchWelcomes(0)
    const second = paced.channel.fetchWelcomes(0)
    // The first is refused twice and retried; the second waits for its slot.
    await channel.arrived()
    expect(channel.release()).toBe(1)
    await first
    await channel.arrived()
    expect(channel.release()).toBe(1)
    await second
    expect(channel.inFlight.most).toBe(1)
    expect(channel.fetched).toBe(4)
  })

  it('passes subscriptions straight through', () => {
    const original = new FakeConnection(new FakeChannel(0))
    const paced = pacedConnection(original as unknown as Connection, resolvePacing({}), timers)
    const unsubscribe = (paced.channel as GroupChannelClient).subscribe(() => undefined)
    expect(typeof unsubscribe).toBe('function')
  })

  it('a method replaced on the view or on the original afterwards is the one called (tests and apps swap them)', async () => {
    const original = new FakeConnection(new FakeChannel(0))
    const paced = pacedConnection(original as unknown as Connection, resolvePacing({}), timers)
    await expect(paced.directory.countKeyPackages()).resolves.toEqual({ oneTime: 3, lastResort: true })
    // Assigned through the view: written to the original, and used from then on.
    paced.directory.countKeyPackages = () => Promise.resolve({ oneTime: 9, lastResort: false })
    await expect(paced.directory.countKeyPackages()).resolves.toEqual({ oneTime: 9, lastResort: false })
    await expect(original.directory.countKeyPackages()).resolves.toEqual({ oneTime: 9, lastResort: false })
    // Assigned on the original: read through as well.
    original.directory.countKeyPackages = () => Promise.resolve({ oneTime: 1, lastResort: true })
    await expect(paced.directory.countKeyPackages()).resolves.toEqual({ oneTime: 1, lastResort: true })
  })

  it("waits out RATE_LIMITED on a timer that keeps the process alive, and closing the connection ends the wait", async () => {
    const channel = new FakeChannel(1)
    const original = new FakeConnection(channel)
    const handles: { unrefCalls: number; cleared: boolean }[] = []
    let fire: (() => void) | undefined
    const recording = {
      setTimeout: (callback: () => void) => {
        const handle = { unrefCalls: 0, cleared: false, unref: () => void handle.unrefCalls++ }
        handles.push(handle)
        fire = callback
        return handle
      },
      clearTimeout: (handle: unknown) => {
        ;(handle as { cleared: boolean }).cleared = true
      }
    }
    const paced = pacedConnection(original as unknown as Connection, resolvePacing({}), recording)
    const request = paced.channel.fetchWelcomes(0)
    await expect.poll(() => handles.length).toBe(1)
    // Not unref'd: a script awaiting only this request must not exit in the middle of the wait.
    expect(handles[0]!.unrefCalls).toBe(0)
    expect(fire).toBeDefined()
    await paced.close()
    // The wait ended at close: the timer is cleared and the request fails with the refusal, not retried.
    expect(handles[0]!.cleared).toBe(true)
    await expect(request).rejects.toMatchObject({ code: 'RATE_LIMITED' })
    expect(channel.fetched).toBe(1)
    expect(original.closed).toBe(1)
  })
})
