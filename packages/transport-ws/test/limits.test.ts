import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { createMlsClient, errorCode } from '@mls/core'
import { memoryClientStore } from '@mls/storage-memory'
import { decodeServerFrame, encodeClientFrame, type ServerFrame } from '../src/codec.js'
import { webSockets } from '../src/index.js'
import { authenticateRequest, converged, createWsNetwork, credentialsFor, crypto, inbox, joined, rawSocket, waitFor, type RawSocket, type WsNetwork } from './helpers.js'

let net: WsNetwork | undefined
afterEach(async () => {
  await net?.close()
  net = undefined
})

async function nextFrame(socket: RawSocket): Promise<ServerFrame | undefined> {
  const bytes = await socket.next()
  return bytes === undefined ? undefined : decodeServerFrame(bytes)
}

async function authenticatedRaw(url: string, clientId: string): Promise<RawSocket> {
  const socket = await rawSocket(url)
  const challenge = await nextFrame(socket)
  if (challenge?.kind !== 'challenge') throw new Error('no challenge')
  const creds = await credentialsFor(clientId)
  socket.send(encodeClientFrame(1, await authenticateRequest(creds, challenge, url)))
  const answer = await nextFrame(socket)
  if (answer?.kind !== 'response') throw new Error(`authentication failed: ${JSON.stringify(answer)}`)
  return socket
}

describe('limits with clear errors', () => {
  it('an oversized frame gets PAYLOAD_TOO_LARGE and close 1009; the client end refuses it locally; others are unaffected', async () => {
    net = await createWsNetwork({ limits: { maxFrameBytes: 64 * 1024 } })
    const bystander = await net.transport().connect(await credentialsFor('bystander/phone'))
    const socket = await authenticatedRaw(net.server.url, 'big/phone')
    socket.send(encodeClientFrame(2, { type: 'postMessage', groupId: new Uint8Array([1]), message: new Uint8Array(100 * 1024) }))
    expect(await nextFrame(socket)).toMatchObject({ kind: 'error', requestId: 0, code: 'PAYLOAD_TOO_LARGE' })
    await waitFor(() => socket.closeCode !== undefined, 'close')
    expect(socket.closeCode).toBe(1009)

    const client = await net.transport().connect(await credentialsFor('polite/phone'))
    await expect(client.channel.postMessage(new Uint8Array([1]), new Uint8Array(100 * 1024))).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' })
    await expect(client.directory.countKeyPackages()).resolves.toEqual({ oneTime: 0, lastResort: false })
    await expect(bystander.directory.countKeyPackages()).resolves.toEqual({ oneTime: 0, lastResort: false })
    await client.close()
    await bystander.close()
  })

  it('requests per second, per connection and per identity, answer RATE_LIMITED with retryAfterMs', async () => {
    net = await createWsNetwork({ limits: { requestsPerSecond: 5, requestBurst: 10, identityRequestsPerSecond: 1000, identityRequestBurst: 1000 } })
    const socket = await authenticatedRaw(net.server.url, 'flood/phone')
    for (let i = 0; i < 30; i++) socket.send(encodeClientFrame(100 + i, { type: 'ping' }))
    const answers: ServerFrame[] = []
    for (let i = 0; i < 30; i++) answers.push((await nextFrame(socket))!)
    const limited = answers.filter((f) => f.kind === 'error' && f.code === 'RATE_LIMITED')
    expect(answers.filter((f) => f.kind === 'response').length).toBeGreaterThanOrEqual(9)
    expect(limited.length).toBeGreaterThanOrEqual(15)
    expect(limited[0]).toMatchObject({ details: { retryAfterMs: expect.any(Number) } })
    await new Promise((r) => setTimeout(r, 400))
    socket.send(encodeClientFrame(999, { type: 'ping' }))
    expect(await nextFrame(socket)).toMatchObject({ kind: 'response', requestId: 999 })
    socket.close()
    await net.close()

    net = await createWsNetwork({ limits: { requestsPerSecond: 1000, requestBurst: 1000, identityRequestsPerSecond: 5, identityRequestBurst: 10 } })
    const creds = await credentialsFor('twice/phone')
    const first = await net.transport().connect(creds)
    const second = await net.transport().connect({ ...creds, register: false })
    const results = await Promise.allSettled([...Array(10)].flatMap(() => [first.directory.countKeyPackages(), second.directory.countKeyPackages()]))
    const codes = results.map((r) => (r.status === 'fulfilled' ? 'ok' : errorCode(r.reason)))
    expect(codes.filter((c) => c === 'RATE_LIMITED').length).toBeGreaterThanOrEqual(8)
    expect(codes.filter((c) => c === 'ok').length).toBeGreaterThanOrEqual(9)
    await first.close()
    await second.close()
  })

  it('connections per identity: one more is refused with TOO_MANY_CONNECTIONS until one closes', async () => {
    net = await createWsNetwork({ limits: { maxConnectionsPerIdentity: 2 } })
    const creds = await credentialsFor('busy/phone')
    const one = await net.transport().connect(creds)
    const two = await net.transport().connect({ ...creds, register: false })
    await expect(net.transport().connect({ ...creds, register: false })).rejects.toMatchObject({ code: 'TOO_MANY_CONNECTIONS' })
    await expect(one.directory.countKeyPackages()).resolves.toBeDefined()
    await one.close()
    await waitFor(() => net!.server.stats().authenticated === 1, 'the server to see the close')
    const three = await net.transport().connect({ ...creds, register: false })
    await expect(three.directory.countKeyPackages()).resolves.toBeDefined()
    await two.close()
    await three.close()
  })

  it('KeyPackage fetches per requester are limited by the services and reported over the wire', async () => {
    net = await createWsNetwork({ serviceLimits: { fetchBurst: 2, fetchesPerMinute: 1 } })
    const target = await net.client('target')
    await target.publishKeyPackages({ count: 5 })
    const fetcher = await net.transport().connect(await credentialsFor('fetcher/phone'))
    await expect(fetcher.directory.fetchKeyPackages('target')).resolves.toHaveLength(1)
    await expect(fetcher.directory.fetchKeyPackages('target')).resolves.toHaveLength(1)
    const refused = fetcher.directory.fetchKeyPackages('target')
    await expect(refused).rejects.toMatchObject({ code: 'RATE_LIMITED', name: 'ServiceError', details: { retryAfterMs: expect.any(Number) } })
    await fetcher.close()
  })

  it('unknown version, text frames, missing authentication and repeated garbage are answered and closed', async () => {
    net = await createWsNetwork({ limits: { authenticationTimeoutMs: 200, maxProtocolErrors: 5 } })
    const v9 = await rawSocket(net.server.url)
    await nextFrame(v9)
    const frame = encodeClientFrame(7, { type: 'ping' })
    frame[0] = 9
    v9.send(frame)
    expect(await nextFrame(v9)).toMatchObject({ kind: 'error', requestId: 7, code: 'UNSUPPORTED_PROTOCOL_VERSION', details: { supported: [2] } })
    await waitFor(() => v9.closeCode !== undefined, 'close')
    expect(v9.closeCode).toBe(4000)

    const text = await rawSocket(net.server.url)
    await nextFrame(text)
    text.ws.send('hello')
    expect(await nextFrame(text)).toMatchObject({ kind: 'error', code: 'TRANSPORT_PROTOCOL' })
    await waitFor(() => text.closeCode !== undefined, 'close')
    expect(text.closeCode).toBe(1003)

    const idle = await rawSocket(net.server.url)
    await nextFrame(idle)
    expect(await nextFrame(idle)).toMatchObject({ kind: 'error', code: 'NOT_AUTHENTICATED' })
    await waitFor(() => idle.closeCode !== undefined, 'close')
    expect(idle.closeCode).toBe(4002)

    const garbage = await rawSocket(net.server.url)
    await nextFrame(garbage)
    for (let i = 0; i < 5; i++) garbage.send(new Uint8Array([2, 0x55, 0, 0, 0, i]))
    for (let i = 0; i < 5; i++) expect(await nextFrame(garbage)).toMatchObject({ kind: 'error', code: 'TRANSPORT_PROTOCOL' })
    await waitFor(() => garbage.closeCode !== undefined, 'close')
    expect(garbage.closeCode).toBe(4005)
    expect(net.server.stats().internalErrors).toBe(0)
  })

  it('a slow consumer is dropped instead of buffering without bound, then catches up from its cursor', async () => {
    net = await createWsNetwork({ limits: { maxBufferedBytes: 256 * 1024 } })
    const sockets: WebSocket[] = []
    class CapturingWebSocket extends WebSocket {
      constructor(url: string) {
        super(url)
        sockets.push(this)
      }
    }
    const alice = await net.client('alice')
    const slow = await createMlsClient({
      userId: 'slow',
      deviceId: 'phone',
      crypto,
      store: memoryClientStore(),
      transport: webSockets({ url: net.server.url, WebSocket: CapturingWebSocket, reconnect: { initialDelayMs: 20, maxDelayMs: 200 } })
    })
    for (const c of [alice, slow]) await c.publishKeyPackages({ count: 1 })
    const a = await alice.createGroup()
    await alice.addUsers(a, ['slow'])
    const s = await joined(slow, a.groupId)
    await converged([a, s], 1n)
    const box = inbox(s)

    const stalled = sockets.at(-1)!
    stalled.pause()
    const payload = new Uint8Array(64 * 1024).fill(7)
    const count = 120
    for (let i = 0; i < count; i++) {
      payload[0] = i
      await a.send(payload)
      if (net.server.stats().slowConsumersDropped > 0 && i >= 20) break
    }
    expect(net.server.stats().slowConsumersDropped).toBeGreaterThanOrEqual(1)
    const sent = await a.send('last')
    stalled.resume()
    await waitFor(() => s.cursor >= sent.seq, 'the slow consumer to reconnect and catch up', 30_000)
    expect(box.texts.at(-1)).toBe('last')
    const firstBytes = box.texts.slice(0, -1).map((t) => t.charCodeAt(0))
    expect(firstBytes).toEqual([...firstBytes.keys()])
    await slow.close()
  })
})
