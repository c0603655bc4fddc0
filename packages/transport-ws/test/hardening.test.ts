import { connect as connectTcp, type Socket as TcpSocket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocket, WebSocketServer } from 'ws'
import type { Connection } from '@mls/core/interfaces'
import { decodeMlsMessage } from '@mls/core/mls'
import { createMlsClient } from '@mls/core'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '../src/index.js'
import { decodeClientFrame, decodeServerFrame, encodeClientFrame, type ServerFrame } from '../src/codec.js'
import { authenticateRequest, converged, createWsNetwork, credentialsFor, crypto, groupWith, inbox, joined, rawSocket, waitFor, type RawSocket, type WsNetwork } from './helpers.js'

let net: WsNetwork | undefined
const cleanups: (() => void | Promise<void>)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup()
  await net?.close()
  net = undefined
})

async function nextFrame(socket: RawSocket): Promise<ServerFrame | undefined> {
  const bytes = await socket.next()
  return bytes === undefined ? undefined : decodeServerFrame(bytes)
}

async function challengeOf(socket: RawSocket): Promise<Extract<ServerFrame, { kind: 'challenge' }>> {
  const frame = await nextFrame(socket)
  if (frame?.kind !== 'challenge') throw new Error(`expected a challenge, got ${JSON.stringify(frame)}`)
  return frame
}

/**
 * A malicious server: every client that connects to it gets the real server's
 * CHALLENGE, passed through untouched (key and proof included), and its
 * AUTHENTICATE is forwarded to the real server (`rewrite` may alter it first).
 * Reports what the real server answered.
 */
async function relayTo(target: string, rewrite: (frame: Uint8Array) => Uint8Array = (frame) => frame) {
  const answers: ServerFrame[] = []
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
  wss.on('connection', (victim) => {
    const upstream = new WebSocket(target)
    upstream.binaryType = 'nodebuffer'
    upstream.on('message', (data: Buffer) => {
      const frame = decodeServerFrame(new Uint8Array(data))
      if (frame.kind !== 'challenge') answers.push(frame)
      victim.send(data)
    })
    victim.on('message', (data: Buffer) => upstream.send(rewrite(new Uint8Array(data))))
    victim.on('close', () => upstream.close())
    upstream.on('close', () => victim.close())
    upstream.on('error', () => undefined)
  })
  const port = (wss.address() as { port: number }).port
  cleanups.push(() => new Promise<void>((resolve) => wss.close(() => resolve())))
  return { url: `ws://127.0.0.1:${port}/`, answers }
}

/** A raw TCP socket that completes the WebSocket upgrade, to write frames by hand. */
async function upgradedTcp(port: number): Promise<{ socket: TcpSocket; closed: Promise<void> }> {
  const socket = connectTcp(port, '127.0.0.1')
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
  socket.on('error', () => undefined)
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  socket.write(
    ['GET / HTTP/1.1', 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', ''].join('\r\n')
  )
  await new Promise<void>((resolve) => socket.once('data', () => resolve()))
  return { socket, closed }
}

/** The header of a masked binary frame announcing `length` payload bytes (the payload is left unfinished). */
function largeFrameHeader(length: number): Buffer {
  const header = Buffer.alloc(14)
  header[0] = 0x82
  header[1] = 0x80 | 127
  header.writeBigUInt64BE(BigInt(length), 2)
  return header
}

describe('hardening against relays and strangers before login', () => {
  it('a relay passing the real server’s challenge through cannot log in as the client it relays', async () => {
    // The default public URLs: the server's own loopback URLs; the relay's port is not among them.
    net = await createWsNetwork({ publicUrls: [] })
    const relay = await relayTo(net.server.url)
    const victim = await credentialsFor('victim/phone')
    await expect(net.transport(relay.url).connect(victim)).rejects.toMatchObject({ code: 'AUTHENTICATION_FAILED' })
    expect(relay.answers[0]).toMatchObject({ kind: 'error', code: 'AUTHENTICATION_FAILED', details: { reason: 'server-binding' } })

    // A relay that rewrites the signed URL into the real server's: the signature no longer verifies.
    const rewriting = await relayTo(net.server.url, (bytes) => {
      const frame = decodeClientFrame(bytes)
      if (frame.request.type !== 'authenticate') return bytes
      return encodeClientFrame(frame.requestId, { ...frame.request, serverUrl: net!.server.url })
    })
    await expect(net.transport(rewriting.url).connect(victim)).rejects.toMatchObject({ code: 'AUTHENTICATION_FAILED' })
    expect(rewriting.answers[0]).toMatchObject({ kind: 'error', code: 'AUTHENTICATION_FAILED' })
    expect(net.server.stats().authenticated).toBe(0)

    // The same client dialling the server itself logs in.
    const session = await net.transport().connect(victim)
    expect(session.clientId).toBe('victim/phone')
    await session.close()
  })

  it('a client refuses a server that does not prove its key, or presents another than the pinned one', async () => {
    net = await createWsNetwork({ publicUrls: [] })
    const creds = await credentialsFor('pinning/phone')
    const forged = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise<void>((resolve) => forged.once('listening', () => resolve()))
    cleanups.push(() => new Promise<void>((resolve) => forged.close(() => resolve())))
    // A server replaying a real CHALLENGE frame with its key and proof but a different challenge cannot pass.
    const real = await rawSocket(net.server.url)
    const genuine = await challengeOf(real)
    real.close()
    // The handle gives the key every challenge proves, for apps that pin it out of band.
    expect(net.server.serverKey).toEqual(genuine.serverKey)
    const { encodeChallenge } = await import('../src/codec.js')
    forged.on('connection', (ws) => ws.send(encodeChallenge(new Uint8Array(56).fill(7), 16384, genuine.serverKey, genuine.serverSignature)))
    const forgedUrl = `ws://127.0.0.1:${(forged.address() as { port: number }).port}/`
    await expect(net.transport(forgedUrl).connect(creds)).rejects.toMatchObject({ code: 'AUTHENTICATION_FAILED', details: { reason: 'server-key' } })
    await expect(net.transport(net.server.url, { serverKey: new Uint8Array(32).fill(1) }).connect(creds)).rejects.toMatchObject({
      code: 'AUTHENTICATION_FAILED',
      details: { reason: 'server-key' }
    })
    const session = await net.transport(net.server.url, { serverKey: genuine.serverKey }).connect(creds)
    await session.close()
  })

  it('20 sockets sending unfinished 9 MiB frames before login are cut off at the header (1009), without buffering them', async () => {
    net = await createWsNetwork({ publicUrls: [], limits: { maxUnauthenticatedPerAddress: 32 } })
    global.gc?.()
    const before = process.memoryUsage().rss
    const sockets = await Promise.all(Array.from({ length: 20 }, () => upgradedTcp(net!.server.port)))
    for (const { socket } of sockets) {
      socket.write(largeFrameHeader(9 << 20))
      socket.write(Buffer.alloc(64 << 10, 0x41))
    }
    await Promise.all(sockets.map(({ closed }) => closed))
    const peak = process.memoryUsage().rss
    console.log(`pre-login large frames: 20 sockets, rss before ${(before / 2 ** 20).toFixed(1)} MiB, after ${(peak / 2 ** 20).toFixed(1)} MiB`)
    // Each was answered PAYLOAD_TOO_LARGE and closed (1009) at its header; the peer never finished the close handshake.
    await waitFor(() => net!.server.stats().connections === 0, 'every socket gone')
    expect(net.server.stats().protocolErrors).toBe(20)
    expect(net.server.stats().errorFramesSent).toBe(20)
  })

  it('after login the normal frame limit applies; before it, a frame above 16 KiB gets PAYLOAD_TOO_LARGE', async () => {
    net = await createWsNetwork({ publicUrls: [] })
    const stranger = await rawSocket(net.server.url)
    await challengeOf(stranger)
    stranger.send(new Uint8Array(17 << 10))
    expect(await nextFrame(stranger)).toMatchObject({ kind: 'error', code: 'PAYLOAD_TOO_LARGE', details: { limit: 16 << 10 } })
    await waitFor(() => stranger.closeCode !== undefined, 'close')
    expect(stranger.closeCode).toBe(1009)

    const member = await rawSocket(net.server.url)
    const challenge = await challengeOf(member)
    member.send(encodeClientFrame(1, await authenticateRequest(await credentialsFor('member/phone'), challenge, net.server.url)))
    expect(await nextFrame(member)).toMatchObject({ kind: 'response', response: { type: 'authenticate', maxFrameBytes: net.server.limits.maxFrameBytes } })
    // A 64 KiB frame is now read (and refused by the services for what it is, not for its size).
    member.send(encodeClientFrame(2, { type: 'postMessage', groupId: new Uint8Array(16), message: new Uint8Array(64 << 10) }))
    const answer = await nextFrame(member)
    expect(answer).toMatchObject({ kind: 'error', requestId: 2 })
    expect(answer?.kind === 'error' && answer.code).not.toBe('PAYLOAD_TOO_LARGE')
    member.close()
  })

  it('idle strangers from one address cannot fill the connection limit: an honest client from another address still logs in', async () => {
    net = await createWsNetwork({ publicUrls: [], limits: { maxConnections: 40, maxUnauthenticatedPerAddress: 8 } })
    const idle: RawSocket[] = []
    for (let i = 0; i < 40; i++) idle.push(await rawSocket(net.server.url))
    const refused = (await Promise.all(idle.map((socket) => nextFrame(socket)))).filter((frame) => frame?.kind === 'error' && frame.code === 'TOO_MANY_CONNECTIONS')
    expect(refused).toHaveLength(32)
    class FromAnotherAddress extends WebSocket {
      constructor(url: string) {
        super(url, { localAddress: '127.0.0.2' })
      }
    }
    const honest = await net.transport(net.server.url, { WebSocket: FromAnotherAddress }).connect(await credentialsFor('honest/phone'))
    expect(net.server.stats().authenticated).toBe(1)
    await honest.close()
    for (const socket of idle) socket.close()
  })

  it('a flood of short-lived sockets does not break a slow client’s login', async () => {
    // Before stateless challenges, 200 newer challenges evicted the slow client's one (maxPendingChallenges 50).
    net = await createWsNetwork({ publicUrls: [], serviceLimits: { maxPendingChallenges: 50 } })
    const slow = await rawSocket(net.server.url)
    const challenge = await challengeOf(slow)
    for (let batch = 0; batch < 20; batch++) {
      const flood = await Promise.all(Array.from({ length: 10 }, () => rawSocket(net!.server.url)))
      await Promise.all(flood.map((socket) => challengeOf(socket)))
      for (const socket of flood) socket.close()
    }
    slow.send(encodeClientFrame(1, await authenticateRequest(await credentialsFor('slow/phone'), challenge, net.server.url)))
    expect(await nextFrame(slow)).toMatchObject({ kind: 'response', response: { type: 'authenticate', clientId: 'slow/phone' } })
    slow.close()
  })

  it('a message re-encoded with a long-form varint length is refused, not ordered as a new message', async () => {
    net = await createWsNetwork({ publicUrls: [] })
    let aliceConnection: Connection | undefined
    const alice = await net.client('alice', { onConnection: (c) => (aliceConnection = c) })
    const bob = await net.client('bob')
    await bob.publishKeyPackages({ count: 1 })
    const [a, b] = await groupWith(alice, [bob])
    const bobInbox = inbox(b!)
    await a!.send('once')
    await waitFor(() => bobInbox.texts.length === 1, 'bob to read it')
    const entries = await aliceConnection!.channel.fetchEntries(a!.groupId, 0)
    const sent = entries.find((e) => e.kind === 'application')!.message
    // version (2), wire format (2), then group_id<V>: its one-byte length at offset 4, written in the two-byte form.
    expect(sent[4]).toBeLessThan(64)
    const long = new Uint8Array(sent.length + 1)
    long.set(sent.subarray(0, 4))
    long.set([0x40, sent[4]!], 4)
    long.set(sent.subarray(5), 6)
    expect(decodeMlsMessage(long, 0)?.[1]).toBe(long.length) // ts-mls alone accepts the long form
    await expect(aliceConnection!.channel.postMessage(a!.groupId, long)).rejects.toMatchObject({ code: 'INVALID_MESSAGE' })
    await expect(aliceConnection!.channel.postMessage(a!.groupId, sent)).rejects.toMatchObject({ code: 'REPLAYED_MESSAGE' })
    await a!.send('twice')
    await waitFor(() => bobInbox.texts.length === 2, 'bob to read the next one')
    expect(bobInbox.texts).toEqual(['once', 'twice'])
  })

  it('quotas per identity: groups created and the KeyPackage pool, each refused with QUOTA_EXCEEDED', async () => {
    net = await createWsNetwork({ publicUrls: [], serviceLimits: { groupBurst: 3, groupsPerHour: 1, maxKeyPackagesPerClient: 5 } })
    const spammer = await net.client('spammer')
    for (let i = 0; i < 3; i++) await spammer.createGroup()
    await expect(spammer.createGroup()).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED', details: { quota: 'groups' } })
    // Another identity has its own quota.
    const other = await net.client('other')
    await other.createGroup()

    await spammer.publishKeyPackages({ count: 4 })
    await expect(spammer.publishKeyPackages({ count: 4 })).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED', details: { quota: 'key-packages', limit: 5, stored: 4 } })
  })

  it('bytes buffered for one identity are capped across its connections (maxBufferedBytesPerIdentity): the slow reader is dropped and catches up', async () => {
    net = await createWsNetwork({ publicUrls: [], limits: { maxBufferedBytesPerIdentity: 256 * 1024 } })
    expect(net.server.limits.maxBufferedBytes).toBe(32 << 20)
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
    cleanups.push(() => slow.close())
    for (const c of [alice, slow]) await c.publishKeyPackages({ count: 1 })
    const a = await alice.createGroup()
    await alice.addUsers(a, ['slow'])
    const s = await joined(slow, a.groupId)
    await converged([a, s], 1n)
    const stalled = sockets.at(-1)!
    stalled.pause()
    const payload = new Uint8Array(64 * 1024).fill(7)
    for (let i = 0; i < 200 && net.server.stats().slowConsumersDropped === 0; i++) await a.send(payload)
    expect(net.server.stats().slowConsumersDropped).toBe(1)
    const sent = await a.send('last')
    stalled.resume()
    await waitFor(() => s.cursor >= sent.seq, 'the slow reader to reconnect and catch up', 30_000)
  })
})
