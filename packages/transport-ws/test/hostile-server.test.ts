import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { createMlsClient, errorCode, type MlsClient } from '@mls/core'
import { memoryClientStore } from '@mls/storage-memory'
import { keepOpen } from '@mls/scenarios'
import { encodeClientFrame, encodeError, encodeResponse } from '../src/codec.js'
import { webSockets } from '../src/index.js'
import { createWsNetwork, crypto, groupWith, waitFor, type WsNetwork } from './helpers.js'
import { hostileProxy, type HostileProxy } from './hostile-proxy.js'

// Issue 12, client side, over real sockets: a hostile WebSocket proxy on loopback in front of the real
// server plays a misbehaving server against a real client.
// - Pages of Welcomes that never advance make the client stop with SERVER_MISBEHAVING, not loop.
// - A start that fails leaves no session open at the server.
// - A login that fails for a transient reason (the connection dropped mid-login, the challenge evicted by
//   a flood of other connections) is retried; a real refusal is not.

let net: WsNetwork | undefined
let proxy: HostileProxy | undefined
const opened: MlsClient[] = []

afterEach(async () => {
  await Promise.allSettled(opened.splice(0).map((c) => c.close()))
  await proxy?.close()
  proxy = undefined
  await net?.close()
  net = undefined
})

function clientThrough(url: string, userId: string, store = keepOpen(memoryClientStore({ name: userId })), extra: { start?: boolean } = {}) {
  return createMlsClient({
    userId,
    deviceId: 'phone',
    crypto,
    store,
    transport: webSockets({ url, WebSocket, reconnect: { initialDelayMs: 20, maxDelayMs: 100, jitter: 0.5 }, requestTimeoutMs: 10_000 }),
    ...extra
  })
}

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise
    return 'resolved'
  } catch (error) {
    return errorCode(error) ?? String(error)
  }
}

/** Resolves when the proxy has carried more than `limit` requests of `type`: the client is spinning. */
function spun(p: HostileProxy, type: string, limit: number): Promise<string> {
  return waitFor(() => (p.requests.get(type) ?? 0) > limit, `more than ${limit} ${type} requests`, 60_000).then(() => `spun: more than ${limit} ${type} requests`)
}

describe('a hostile server in front of a real client', () => {
  it('Welcome pages that repeat a processed Welcome with more: true: processWelcomes stops with SERVER_MISBEHAVING', async () => {
    net = await createWsNetwork()
    proxy = await hostileProxy(net.server.url)
    const alice = await net.client('alice')
    const bob = await clientThrough(proxy.url, 'bob')
    opened.push(bob)
    await bob.publishKeyPackages({ count: 2 })
    await groupWith(alice, [bob])
    const misbehaving: string[] = []
    bob.on('server:misbehaving', (e) => misbehaving.push(e.error.code))
    // From now on every page of Welcomes is the first Welcome again (seq 1, already processed), "with more to come".
    proxy.hooks = {
      fromServer: (frame, bytes) => {
        if (frame.kind !== 'response' || frame.response.type !== 'fetchWelcomes' || frame.response.welcomes.length === 0) return bytes
        return encodeResponse(frame.requestId, { type: 'fetchWelcomes', welcomes: frame.response.welcomes.slice(0, 1), more: true })
      }
    }
    const before = proxy.requests.get('fetchWelcomes') ?? 0
    // The real server would answer an empty page after seq 1: make it answer from 0.
    proxy.hooks.fromClient = (frame, bytes) =>
      frame.request.type === 'fetchWelcomes' ? encodeClientFrame(frame.requestId, { ...frame.request, afterSeq: 0 }) : bytes
    const outcome = await Promise.race([codeOf(bob.sync()), spun(proxy, 'fetchWelcomes', before + 300)])
    expect(outcome).toBe('SERVER_MISBEHAVING')
    expect((proxy.requests.get('fetchWelcomes') ?? 0) - before).toBe(1)
    expect(misbehaving).toEqual(['SERVER_MISBEHAVING'])
  })

  it('a start that fails leaves no session open at the server, and a later start succeeds', async () => {
    net = await createWsNetwork()
    proxy = await hostileProxy(net.server.url)
    const alice = await net.client('alice')
    await waitFor(() => net!.server.stats().authenticated === 1, 'alice to be the only session')
    // Every fetch of the Welcome mailbox is refused as rate limited, so bob's start cannot catch up.
    proxy.hooks = {
      fromServer: (frame, bytes) =>
        frame.kind === 'response' && frame.response.type === 'fetchWelcomes'
          ? encodeError(frame.requestId, 'RATE_LIMITED', 'Too many requests (hostile proxy)', { retryAfterMs: 1 })
          : bytes
    }
    const store = keepOpen(memoryClientStore({ name: 'bob' }))
    expect(await codeOf(clientThrough(proxy.url, 'bob', store))).toBe('RATE_LIMITED')
    // The failed start closed its session: only alice's is left at the server.
    await waitFor(() => net!.server.stats().authenticated === 1 && net!.server.stats().connections === 1, 'bob’s session to be closed')
    // The same with start: false and client.start(): the client stays usable and starts once the server behaves.
    const bob = await clientThrough(proxy.url, 'bob', store, { start: false })
    opened.push(bob)
    expect(await codeOf(bob.start())).toBe('RATE_LIMITED')
    await waitFor(() => net!.server.stats().authenticated === 1 && net!.server.stats().connections === 1, 'bob’s second session to be closed')
    expect(bob.connectionState).toBe('offline')
    proxy.hooks = {}
    await bob.start()
    expect(bob.connectionState).toBe('online')
    expect(net.server.stats().authenticated).toBe(2)
    await alice.close()
  })

  it('a connection dropped mid-login is retried, not fatal', async () => {
    net = await createWsNetwork()
    proxy = await hostileProxy(net.server.url, {
      // The first login's AUTHENTICATE never arrives: the connection drops right after the challenge.
      fromClient: (frame, bytes, connection) => {
        if (frame.request.type === 'authenticate' && connection.index === 0) {
          connection.dropClient()
          return undefined
        }
        return bytes
      }
    })
    const bob = await clientThrough(proxy.url, 'bob')
    opened.push(bob)
    expect(bob.connectionState).toBe('online')
    expect(proxy.connections).toBe(2)
  })

  it('a challenge that expired before the login reached the server is retried on a new connection, and the login succeeds', async () => {
    // Challenges are stateless (a flood cannot evict one), but one still expires: a server with short-lived
    // challenges, and a path that holds the first AUTHENTICATE back until its challenge is stale.
    net = await createWsNetwork({ serviceLimits: { challengeTtlMs: 1_000 } })
    proxy = await hostileProxy(net.server.url, {
      fromClient: async (frame, bytes, connection) => {
        if (frame.request.type === 'authenticate' && connection.index === 0) await new Promise((resolve) => setTimeout(resolve, 1_500))
        return bytes
      }
    })
    const refusals: string[] = []
    proxy.hooks.fromServer = (frame, bytes) => {
      if (frame.kind === 'error') refusals.push(`${frame.code}/${String(frame.details?.['reason'])}`)
      return bytes
    }
    const bob = await clientThrough(proxy.url, 'bob')
    opened.push(bob)
    expect(refusals).toEqual(['AUTHENTICATION_FAILED/challenge-expired'])
    expect(proxy.connections).toBe(2)
    expect(bob.connectionState).toBe('online')
  })

  it('a real refusal stays fatal: a tampered signature and an identity registered with another key are not retried', async () => {
    net = await createWsNetwork()
    proxy = await hostileProxy(net.server.url, {
      fromClient: (frame, bytes) => {
        if (frame.request.type !== 'authenticate') return bytes
        const signature = frame.request.signature.slice()
        signature[0]! ^= 0x01
        return encodeClientFrame(frame.requestId, { ...frame.request, signature })
      }
    })
    expect(await codeOf(clientThrough(proxy.url, 'bob'))).toBe('AUTHENTICATION_FAILED')
    expect(proxy.connections).toBe(1)
    await proxy.close()
    proxy = await hostileProxy(net.server.url)
    const first = await clientThrough(proxy.url, 'carol')
    await first.close()
    // A second device store claiming the same client id registers another key: IDENTITY_CONFLICT, once.
    expect(await codeOf(clientThrough(proxy.url, 'carol'))).toBe('IDENTITY_CONFLICT')
    expect(proxy.connections).toBe(2)
  })
})
