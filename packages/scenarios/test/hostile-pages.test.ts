import { describe, expect, it } from 'vitest'
import { nodeCrypto } from '@mls/crypto-node'
import { errorCode, type MlsClient } from '@mls/core'
import type { ChannelEntry, Connection, GroupChannelClient, Transport, WelcomeEntry } from '@mls/core/interfaces'
import { createTestNetwork, groupWith, waitFor } from '../src/index.js'

// Issue 12, "spinning client": a server answering pages of the log or of the Welcome mailbox that never
// advance (entries seen before, a gap, seqs going backwards) must not make sync() or processWelcomes() loop
// forever. The client stops, rejects with SERVER_MISBEHAVING, emits `server:misbehaving`, changes nothing,
// and catches up once the server behaves. The hostile server here sits in process, in front of the real
// services; tests over a hostile WebSocket proxy are in packages/transport-ws/test/hostile-server.test.ts.

/** A page of the real answer rewritten by the hostile server; `undefined` passes it through. */
interface Hostility {
  welcomes?: (afterSeq: number, real: WelcomeEntry[]) => WelcomeEntry[]
  entries?: (afterSeq: number, real: ChannelEntry[]) => ChannelEntry[]
}

/** Before the fix the client fetched such pages forever: give up (failing the test) after this many. */
const SPIN_LIMIT = 200

function hostileTransport(inner: Transport) {
  const control = { hostility: {} as Hostility, fetches: 0 }
  const spinGuard = async (): Promise<void> => {
    control.fetches++
    if (control.fetches > SPIN_LIMIT) throw new Error(`spun: ${control.fetches} pages fetched`)
    // Let timers run between pages, as a network would.
    await new Promise((resolve) => setImmediate(resolve))
  }
  const wrap = (channel: GroupChannelClient): GroupChannelClient =>
    new Proxy(channel, {
      get(target, property) {
        if (property === 'fetchWelcomes') {
          return async (afterSeq: number, options?: { limit?: number }) => {
            const rewrite = control.hostility.welcomes
            const real = await target.fetchWelcomes(rewrite === undefined ? afterSeq : 0, options)
            if (rewrite === undefined) return real
            await spinGuard()
            return rewrite(afterSeq, real)
          }
        }
        if (property === 'fetchEntries') {
          return async (groupId: Uint8Array, afterSeq: number, options?: { limit?: number }) => {
            const rewrite = control.hostility.entries
            const real = await target.fetchEntries(groupId, rewrite === undefined ? afterSeq : 0, options)
            if (rewrite === undefined) return real
            await spinGuard()
            return rewrite(afterSeq, real)
          }
        }
        const value = Reflect.get(target, property) as unknown
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
      }
    })
  const transport: Transport = {
    specificationVersion: inner.specificationVersion,
    [Symbol.toStringTag]: 'HostileTransport',
    connect: async (credentials, options) => {
      const connection = await inner.connect(credentials, options)
      const channel = wrap(connection.channel)
      const hostile: Connection = { clientId: connection.clientId, directory: connection.directory, channel, close: () => connection.close() }
      return hostile
    }
  }
  return { transport, control }
}

async function setup() {
  const net = await createTestNetwork({ crypto: nodeCrypto() })
  const hostile = hostileTransport(net.transport)
  const alice = await net.client('alice')
  // Retries after a failure come quickly here, so the test sees the catch-up after the server behaves again.
  const bob = await net.client('bob', { transport: hostile.transport, retry: { initialDelayMs: 10, maxDelayMs: 50 } })
  await bob.publishKeyPackages({ count: 3 })
  const [a, b] = await groupWith(alice, [bob])
  const misbehaving: string[] = []
  bob.on('server:misbehaving', (e) => misbehaving.push(`${e.error.code}/${String(e.error.details?.['reason'])}`))
  return { net, alice, bob, a, b, control: hostile.control, misbehaving }
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise
    return 'resolved'
  } catch (error) {
    return errorCode(error) ?? String(error)
  }
}

async function closeAll(...clients: MlsClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close()))
}

describe('a server whose pages never advance', () => {
  it('the Welcome mailbox repeating a Welcome already processed: processWelcomes stops with SERVER_MISBEHAVING', async () => {
    const { alice, bob, control, misbehaving } = await setup()
    // The server answers every page with the first Welcome (seq 1), which bob processed already.
    control.hostility.welcomes = (_after, real) => real.slice(0, 1)
    expect(await codeOf(bob.processWelcomes())).toBe('SERVER_MISBEHAVING')
    expect(control.fetches).toBe(1)
    // Through sync() (as start and every push run it) the client reports the server, once per failure.
    expect(await codeOf(bob.sync())).toBe('SERVER_MISBEHAVING')
    expect(misbehaving).toEqual(['SERVER_MISBEHAVING/no-progress'])
    expect(bob.listGroups()).toHaveLength(1)
    await closeAll(alice, bob)
  })

  it('the Welcome mailbox going backwards: seqs below the cursor are not fetched again forever', async () => {
    const { alice, bob, control } = await setup()
    // Seqs 0 and -1: before the cursor (1).
    control.hostility.welcomes = (_after, real) => real.slice(0, 1).flatMap((w) => [{ ...w, seq: 0 }, { ...w, seq: -1 }])
    expect(await codeOf(bob.processWelcomes())).toBe('SERVER_MISBEHAVING')
    expect(control.fetches).toBe(1)
    await closeAll(alice, bob)
  })

  it('the log repeating entries already read: group sync and client sync stop with SERVER_MISBEHAVING, nothing changes', async () => {
    const { alice, bob, a, b, control, misbehaving } = await setup()
    await a.send('one')
    await waitFor(() => b.cursor >= 2, 'bob to read the first message')
    const before = { cursor: b.cursor, epoch: b.epoch, status: b.status }
    // Every page is the log from its start: entries bob has read.
    control.hostility.entries = (_after, real) => real
    expect(await codeOf(b.sync())).toBe('SERVER_MISBEHAVING')
    expect(control.fetches).toBe(1)
    expect(await codeOf(bob.sync())).toBe('SERVER_MISBEHAVING')
    expect(misbehaving).toEqual(['SERVER_MISBEHAVING/no-progress'])
    expect({ cursor: b.cursor, epoch: b.epoch, status: b.status }).toEqual(before)
    await closeAll(alice, bob)
  })

  it('the log skipping ahead (a gap): the page is refused, not fetched again forever', async () => {
    const { net, alice, bob, a, b, control } = await setup()
    await a.send('one')
    await a.send('two')
    await a.send('three')
    await waitFor(() => b.cursor >= 4, 'bob to read three messages')
    // The server drops the entry bob needs next and serves the ones after it, so the page never fits.
    // Bob is offline while they are sent, so only a fetch can bring them.
    net.transport.setOnline(bob.clientId, false)
    await a.send('four')
    await a.send('five')
    control.hostility.entries = (after, real) => real.filter((e) => e.seq > after + 1)
    net.transport.setOnline(bob.clientId, true)
    expect(await codeOf(b.sync())).toBe('SERVER_MISBEHAVING')
    expect(control.fetches).toBe(1)
    expect(b.cursor).toBe(4)
    await closeAll(alice, bob)
  })

  it('in the background: a pushed entry meets a misbehaving server, the client reports it, backs off, and catches up once the server behaves', async () => {
    const { net, alice, bob, a, b, control, misbehaving } = await setup()
    const texts: string[] = []
    b.on('message:received', (m) => texts.push(new TextDecoder().decode(m.plaintext)))
    const failures: string[] = []
    bob.on('sync:failed', (e) => failures.push(errorCode(e.error) ?? 'unknown'))
    control.hostility.entries = (_after, real) => real.slice(0, 1)
    // Bob misses two pushes while offline; back online, his client syncs in the background and meets the hostile page.
    net.transport.setOnline(bob.clientId, false)
    await a.send('while hostile 1')
    await a.send('while hostile 2')
    net.transport.setOnline(bob.clientId, true)
    await waitFor(() => misbehaving.length > 0 && failures.includes('SERVER_MISBEHAVING'), 'the client to report the server')
    const fetchesWhenReported = control.fetches
    expect(fetchesWhenReported).toBeLessThan(SPIN_LIMIT)
    control.hostility.entries = undefined
    // The positive signal: once the server behaves, the retry (with backoff) catches bob up.
    await waitFor(() => texts.includes('while hostile 2'), 'bob to catch up after the server behaves')
    expect(texts).toEqual(['while hostile 1', 'while hostile 2'])
    expect(b.status).toBe('active')
    await closeAll(alice, bob)
  })
})
