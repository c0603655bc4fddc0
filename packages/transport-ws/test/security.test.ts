import { afterEach, describe, expect, it } from 'vitest'
import { toHex } from '@mls/core'
import type { ChannelEvent, Connection } from '@mls/core/interfaces'
import { memoryServerStore } from '@mls/storage-memory'
import { decodeServerFrame, encodeClientFrame, type Request, type ServerFrame } from '../src/codec.js'
import { authenticateRequest, converged, createWsNetwork, credentialsFor, groupWith, inbox, occursIn, rawSocket, recordingStore, waitFor, type RawSocket, type WsNetwork } from './helpers.js'

let net: WsNetwork | undefined
afterEach(async () => {
  await net?.close()
  net = undefined
})

async function nextFrame(socket: RawSocket): Promise<ServerFrame | undefined> {
  const bytes = await socket.next()
  return bytes === undefined ? undefined : decodeServerFrame(bytes)
}

async function challengeOf(socket: RawSocket): Promise<Extract<ServerFrame, { kind: 'challenge' }>> {
  const frame = await nextFrame(socket)
  if (frame?.kind !== 'challenge') throw new Error('expected a challenge')
  return frame
}

const everyRequestButAuthenticate: Request[] = [
  { type: 'uploadKeyPackages', keyPackages: [new Uint8Array([1, 2, 3])] },
  { type: 'fetchKeyPackages', userId: 'alice' },
  { type: 'lookupIdentity', clientId: 'alice/phone' },
  { type: 'countKeyPackages' },
  { type: 'createGroup', groupId: new Uint8Array([9, 9, 9]), groupInfo: new Uint8Array([0, 1]) },
  { type: 'postCommit', groupId: new Uint8Array([9]), epoch: 0n, commit: new Uint8Array([0, 1]) },
  { type: 'postMessage', groupId: new Uint8Array([9]), message: new Uint8Array([0, 1]) },
  { type: 'fetchEntries', groupId: new Uint8Array([9]), afterSeq: 0, limit: 10 },
  { type: 'fetchWelcomes', afterSeq: 0, limit: 10 },
  { type: 'ping' }
]

describe('security over the wire', () => {
  it('an unauthenticated socket can do nothing but authenticate', async () => {
    net = await createWsNetwork()
    const socket = await rawSocket(net.server.url)
    const challenge = await challengeOf(socket)
    let id = 10
    for (const request of everyRequestButAuthenticate) {
      socket.send(encodeClientFrame(++id, request))
      const answer = await nextFrame(socket)
      expect(answer).toMatchObject({ kind: 'error', requestId: id, code: 'NOT_AUTHENTICATED' })
    }
    expect(await net.store.getGroup(toHex(new Uint8Array([9, 9, 9])))).toBeUndefined()
    expect(net.server.stats().authenticated).toBe(0)

    // The same socket may still authenticate, and then act.
    const creds = await credentialsFor('alice/phone')
    const login = await authenticateRequest(creds, challenge, net.server.url)
    socket.send(encodeClientFrame(1, login))
    expect(await nextFrame(socket)).toMatchObject({ kind: 'response', requestId: 1, response: { type: 'authenticate', clientId: 'alice/phone' } })
    socket.send(encodeClientFrame(2, { type: 'countKeyPackages' }))
    expect(await nextFrame(socket)).toMatchObject({ kind: 'response', requestId: 2, response: { type: 'countKeyPackages', oneTime: 0 } })
    // A second AUTHENTICATE (here a replay of the first) is refused.
    socket.send(encodeClientFrame(3, login))
    expect(await nextFrame(socket)).toMatchObject({ kind: 'error', requestId: 3, code: 'INVALID_STATE' })
    socket.close()
  })

  it('a client cannot act as another identity: wrong key, forged signature, or a challenge response replayed from another connection', async () => {
    const captured: Uint8Array[] = []
    net = await createWsNetwork({ tap: (e) => e.direction === 'in' && e.bytes[1] === 0x01 && captured.push(e.bytes.slice()) })
    const alice = await credentialsFor('alice/phone')
    const session = await net.transport().connect(alice)
    const aliceAuthFrame = captured[0]!

    // Replay alice's AUTHENTICATE (signed over another connection's challenge).
    const replay = await rawSocket(net.server.url)
    await challengeOf(replay)
    replay.send(aliceAuthFrame)
    expect(await nextFrame(replay)).toMatchObject({ kind: 'error', code: 'AUTHENTICATION_FAILED' })
    await waitFor(() => replay.closeCode !== undefined, 'the replaying socket to be closed')
    expect(replay.closeCode).toBe(4001)

    // Another key for alice's identity: refused whether registering or logging in.
    const mallory = await credentialsFor('alice/phone')
    await expect(net.transport().connect(mallory)).rejects.toMatchObject({ code: 'IDENTITY_CONFLICT' })
    await expect(net.transport().connect({ ...mallory, register: false })).rejects.toMatchObject({ code: 'AUTHENTICATION_FAILED' })
    // Alice's public key, signed with mallory's private key.
    await expect(
      net.transport().connect({ ...alice, register: false, signChallenge: mallory.signChallenge })
    ).rejects.toMatchObject({ code: 'AUTHENTICATION_FAILED' })
    // Alice's key, claimed for another client id.
    await expect(
      net.transport().connect({ ...alice, clientId: 'bob/phone', signChallenge: (c, binding) => alice.signChallenge(c, binding) })
    ).rejects.toMatchObject({ code: 'AUTHENTICATION_FAILED' })
    expect(net.server.stats().authenticated).toBe(1)
    await session.close()
  })

  it('a non-member cannot subscribe to, read from or post to a group; a removed member is cut off; the server never sees a plaintext', async () => {
    const storedCapture: Uint8Array[] = []
    const receivedCapture: Uint8Array[] = []
    net = await createWsNetwork({
      store: recordingStore(memoryServerStore(), storedCapture),
      tap: (e) => e.direction === 'in' && receivedCapture.push(e.bytes.slice())
    })
    const connections = new Map<string, Connection>()
    const observe = (name: string) => (c: Connection) => connections.set(name, c)
    const alice = await net.client('alice', { onConnection: observe('alice') })
    const bob = await net.client('bob', { onConnection: observe('bob') })
    const carol = await net.client('carol', { onConnection: observe('carol') })
    const mallory = await net.client('mallory', { onConnection: observe('mallory') })
    for (const c of [alice, bob, carol, mallory]) await c.publishKeyPackages({ count: 2 })
    const plaintexts: string[] = []
    const secret = (label: string) => {
      const text = `${label} ${toHex(globalThis.crypto.getRandomValues(new Uint8Array(12)))}`
      plaintexts.push(text)
      return text
    }

    const [a, b, c] = await groupWith(alice, [bob, carol])
    const carolInbox = inbox(c)
    const bobInbox = inbox(b)

    const malloryPushes: ChannelEvent[] = []
    connections.get('mallory')!.channel.subscribe((e) => e.type === 'entry:appended' && malloryPushes.push(e))
    const bobPushes: ChannelEvent[] = []
    connections.get('bob')!.channel.subscribe((e) => e.type === 'entry:appended' && bobPushes.push(e))

    const sent = await a.send(secret('alice to all'))
    await b.send(secret('bob to all'))
    await waitFor(() => carolInbox.texts.length === 2, 'carol to read both')

    // Mallory, authenticated but not a member: no reads, no posts, no pushes.
    const m = connections.get('mallory')!.channel
    await expect(m.fetchEntries(a.groupId, 0)).rejects.toMatchObject({ code: 'NOT_A_MEMBER' })
    const [entry] = await connections.get('carol')!.channel.fetchEntries(a.groupId, sent.seq - 1, { limit: 1 })
    await expect(m.postMessage(a.groupId, entry!.message)).rejects.toMatchObject({ code: 'NOT_A_MEMBER' })
    const [firstCommit] = await connections.get('alice')!.channel.fetchEntries(a.groupId, 0, { limit: 1 })
    expect(firstCommit?.kind).toBe('commit')
    await expect(m.postCommit(a.groupId, { epoch: 0n, commit: firstCommit!.message })).rejects.toMatchObject({ code: 'NOT_A_MEMBER' })
    expect(malloryPushes).toEqual([])

    // A removes B: B is cut off at the commit that removed it.
    const removal = await a.removeMembers(['bob'])
    expect(removal).toMatchObject({ kind: 'committed', epoch: 2n })
    await converged([a, c], 2n)
    await waitFor(() => b.status === 'removed', 'bob removed')
    const pushesAtRemoval = bobPushes.length
    const bobTexts = bobInbox.texts.length
    const after = await a.send(secret('after bob left'))
    await waitFor(() => carolInbox.texts.length === 3, 'carol reads after removal')
    const bobChannel = connections.get('bob')!.channel
    const visible = await bobChannel.fetchEntries(a.groupId, 0)
    expect(visible.at(-1)?.seq).toBe(removal.kind === 'committed' ? removal.seq : -1)
    await expect(bobChannel.fetchEntries(a.groupId, after.seq - 1)).resolves.toEqual([])
    await expect(bobChannel.postMessage(a.groupId, entry!.message)).rejects.toMatchObject({ code: 'NOT_A_MEMBER' })
    await new Promise((r) => setTimeout(r, 50))
    expect(bobPushes.length).toBe(pushesAtRemoval)
    expect(bobInbox.texts.length).toBe(bobTexts)
    expect(malloryPushes).toEqual([])

    // Everything the server received and stored: MLS bytes, never a plaintext.
    await c.send(secret('carol closes'))
    await waitFor(() => carolInbox.texts.length === 4, 'carol own message')
    expect(occursIn(receivedCapture, entry!.message)).toBe(true)
    expect(occursIn(storedCapture, entry!.message)).toBe(true)
    for (const text of plaintexts) {
      const bytes = new TextEncoder().encode(text)
      expect(occursIn(receivedCapture, bytes)).toBe(false)
      expect(occursIn(storedCapture, bytes)).toBe(false)
      const distinctive = new TextEncoder().encode(text.split(' ').at(-1)!)
      expect(occursIn(receivedCapture, distinctive)).toBe(false)
      expect(occursIn(storedCapture, distinctive)).toBe(false)
    }
    expect(receivedCapture.length).toBeGreaterThan(20)
    expect(net.server.stats().internalErrors).toBe(0)
  })
})
