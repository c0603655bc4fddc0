import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocket } from 'ws'
import { createMlsClient, toHex, wireCredentials, type Group, type MlsClient, type MlsClientInit } from '@mls/core'
import { getCiphersuiteFromName, type CiphersuiteImpl } from '@mls/core/mls'
import { nodeCrypto } from '@mls/crypto-node'
import { createServices } from '@mls/server'
import { memoryClientStore, memoryServerStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws'
import { webSocketServer, type WebSocketServerHandle } from '@mls/transport-ws/server'
import { loadOpenMls, OpenMlsDevice, OpenMlsPeer } from '../src/index.js'

// MlsClients and OpenMLS (core-crypto 10.3.0, WASM) in one group through the toolkit's server:
// the library services behind the real WebSocket server on loopback. The MlsClients are ordinary
// clients over WebSockets; the OpenMLS peer is driven in-process and `OpenMlsDevice` is its
// transport: it logs in as the peer's device with the peer's credential key and relays its
// commits, Welcomes and messages through the same server. Every id is a Wire id (core-crypto
// demands it of every member), so clients and services run with `wireCredentials`.

const DOMAIN = 'interop.example'
const crypto = nodeCrypto()
const empty = new Uint8Array()
let cs: CiphersuiteImpl
let server: WebSocketServerHandle
let peers = 0
let users = 0
let groups = 0
const open: { close(): Promise<void> }[] = []

beforeAll(async () => {
  expect(await loadOpenMls()).toBe('10.3.0')
  cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
  const services = createServices({ store: memoryServerStore(), crypto, credentials: wireCredentials })
  server = await webSocketServer({ services, publicUrls: (url) => url.startsWith('ws://127.0.0.1:') })
})

afterAll(async () => {
  for (const o of open.reverse()) await o.close().catch(() => undefined)
  await server?.close()
})

const transport = () => webSockets({ url: server.url, WebSocket, requestTimeoutMs: 15_000 })
const newGroupId = () => new TextEncoder().encode(`server-interop-${++groups}`)

/** An MlsClient with a Wire id: user `<uuid>@<domain>`, device in hex. */
async function client(extra: Partial<MlsClientInit> = {}): Promise<MlsClient> {
  const n = ++users
  const c = await createMlsClient({
    userId: `cccccccc-0000-4000-8000-${String(n).padStart(12, '0')}@${DOMAIN}`,
    deviceId: (0xc0 + n).toString(16),
    crypto,
    store: memoryClientStore({ name: `client-${n}` }),
    transport: transport(),
    credentials: wireCredentials,
    ...extra
  })
  open.push(c)
  return c
}

/** An OpenMLS peer, logged in to the server as its own device. */
async function openMls(): Promise<OpenMlsDevice> {
  const n = ++peers
  const peer = await OpenMlsPeer.create(`0000000${n}-0000-4000-8000-00000000000${n}`, BigInt(0xa0 + n), DOMAIN)
  const device = await OpenMlsDevice.connect(peer, transport(), cs)
  open.push(device)
  return device
}

/** Every member is at `epoch` and exports the same secret; the MlsClients also agree on the epoch authenticator. */
async function agree(groupId: Uint8Array, ours: Group[], theirs: OpenMlsDevice[], epoch: bigint): Promise<void> {
  const secrets: string[] = []
  for (const g of ours) {
    expect(g.epoch).toBe(epoch)
    secrets.push(toHex(await g.exportSecret('exporter', empty, 32)))
  }
  for (const d of theirs) {
    expect(await d.peer.epoch(groupId)).toBe(epoch)
    secrets.push(toHex(await d.peer.exporterSecret(groupId, 32)))
  }
  expect(new Set(secrets).size).toBe(1)
  expect(new Set(ours.map((g) => toHex(g.epochAuthenticator()))).size).toBe(1)
}

/** The next application message `group` receives. */
function nextMessage(group: Group): Promise<string> {
  return group.once('message:received').then((m) => new TextDecoder().decode(m.plaintext))
}

/** Catch `device` up and return the texts of the application messages it read. */
async function texts(device: OpenMlsDevice, groupId: Uint8Array): Promise<string[]> {
  const out: string[] = []
  for (const entry of await device.catchUp(groupId)) {
    if (entry.result.kind === 'application') out.push(new TextDecoder().decode(entry.result.plaintext))
  }
  return out
}

describe('MlsClient and OpenMLS in one group through the server (WebSockets on loopback)', () => {
  it('an MlsClient creates the group and adds OpenMLS from its vouched-for KeyPackage; messages, updates and a removal', async () => {
    const alice = await client()
    const peer = await openMls()
    const group = await alice.createGroup(newGroupId())
    const groupId = group.groupId

    // The peer's bare KeyPackage, obtained outside the Directory; alice's app vouches for it. Tampered, it is refused first.
    const keyPackage = await peer.keyPackage()
    const tampered = keyPackage.slice()
    tampered[tampered.length - 1]! ^= 1
    await expect(alice.addKeyPackages(group, [tampered])).rejects.toMatchObject({ code: 'KEY_PACKAGE_INVALID', details: { reason: 'signature' } })
    expect(group.epoch).toBe(0n)
    const added = await alice.addKeyPackages(group, [keyPackage])
    expect(added).toMatchObject({ kind: 'committed', added: [peer.clientId] })
    expect((await peer.joinFromMailbox()).map(toHex)).toEqual([toHex(groupId)])
    await agree(groupId, [group], [peer], 1n)
    expect(group.members().map((m) => m.clientId).sort()).toEqual([alice.clientId, peer.clientId].sort())
    expect(await peer.peer.members(groupId)).toEqual([alice.clientId, peer.clientId].sort())

    // Messages both ways.
    const fromPeer = nextMessage(group)
    await peer.send(groupId, 'hello from OpenMLS')
    expect(await fromPeer).toBe('hello from OpenMLS')
    await group.send('hello from the toolkit')
    expect(await texts(peer, groupId)).toEqual(['hello from the toolkit'])

    // Updates from each side.
    const peerUpdate = await peer.update(groupId)
    expect(peerUpdate.result.kind).toBe('accepted')
    await group.sync()
    await agree(groupId, [group], [peer], 2n)
    await group.update()
    await texts(peer, groupId)
    await agree(groupId, [group], [peer], 3n)

    // Removal by the toolkit: OpenMLS sees it, reads nothing sent afterwards, and the server no longer lets it post.
    const late = await peer.peer.send(groupId, 'made before the removal, posted after it')
    await group.removeMembers([peer.clientId])
    expect(await texts(peer, groupId)).toEqual([])
    await expect(peer.peer.members(groupId)).rejects.toThrow()
    expect(group.members().map((m) => m.clientId)).toEqual([alice.clientId])
    await group.send('after the removal')
    await expect(peer.catchUp(groupId)).resolves.toEqual([])
    await expect(peer.connection.channel.postMessage(groupId, late)).rejects.toMatchObject({ code: 'NOT_A_MEMBER' })
  })

  it('OpenMLS creates the group and adds an MlsClient, which joins from the Welcome handed over out of band; removal by OpenMLS', async () => {
    const peer = await openMls()
    // No autoSync: the Welcome reaches bob's mailbox too, but bob joins from the copy handed over.
    const bob = await client({ autoSync: false })
    const groupId = newGroupId()
    await peer.createGroup(groupId)

    // bob hands over a KeyPackage outside the Directory; OpenMLS adds him and hands back the Welcome.
    const commit = await peer.add(groupId, [await bob.createKeyPackage()])
    expect(commit.result.kind).toBe('accepted')
    if (commit.result.kind !== 'accepted' || commit.welcome === undefined) throw new Error('not accepted')

    // The group's creator is no device of a verified list: until bob's app vouches for it, the Welcome is refused and nothing changes.
    await expect(bob.joinWelcome(commit.welcome, { commitSeq: commit.result.seq })).rejects.toMatchObject({ code: 'WELCOME_INVALID' })
    expect(bob.listGroups()).toEqual([])
    await bob.vouchForDevice({ clientId: peer.clientId, signaturePublicKey: await peer.peer.signaturePublicKey() })
    const group = await bob.joinWelcome(commit.welcome, { commitSeq: commit.result.seq })
    await group.sync()
    expect(group.status).toBe('active')
    await agree(groupId, [group], [peer], 2n)

    const fromPeer = nextMessage(group)
    await peer.send(groupId, 'welcome, bob')
    await group.sync()
    expect(await fromPeer).toBe('welcome, bob')
    await group.send('thanks')
    expect(await texts(peer, groupId)).toEqual(['thanks'])

    await group.update()
    await texts(peer, groupId)
    await agree(groupId, [group], [peer], 3n)
    await peer.update(groupId)
    await group.sync()
    await agree(groupId, [group], [peer], 4n)

    // Removal by OpenMLS: bob sees himself removed.
    const removed = group.once('group:removed')
    await peer.remove(groupId, [bob.clientId])
    await group.sync()
    expect((await removed).epoch).toBe(5n)
    expect(group.status).toBe('removed')
    expect(await peer.peer.members(groupId)).toEqual([peer.clientId])
  })

  it('a three-party group: an MlsClient, OpenMLS, and a second MlsClient OpenMLS adds from the Directory', async () => {
    const alice = await client()
    const carol = await client()
    const peer = await openMls()
    const peerKey = await peer.peer.signaturePublicKey()
    // carol's app vouches for the OpenMLS device too (alice's app vouches by adding it).
    await carol.vouchForDevice({ clientId: peer.clientId, signaturePublicKey: peerKey })
    await carol.publishKeyPackages({ count: 1 })
    const group = await alice.createGroup(newGroupId())
    const groupId = group.groupId
    await alice.addKeyPackages(group, [await peer.keyPackage()])
    await peer.joinFromMailbox()

    // OpenMLS adds carol with the KeyPackage the Directory serves it; carol joins from her mailbox.
    const served = await peer.connection.directory.fetchKeyPackages(carol.userId)
    expect(served.map((s) => s.clientId)).toEqual([carol.clientId])
    const joined = carol.once('group:joined')
    expect((await peer.add(groupId, [served[0]!.keyPackage])).result.kind).toBe('accepted')
    const carolGroup = (await joined).group
    await carolGroup.sync()
    await group.sync()
    await agree(groupId, [group, carolGroup], [peer], 2n)

    // Messages from each.
    const atCarol = nextMessage(carolGroup)
    const atAlice = nextMessage(group)
    await peer.send(groupId, 'from OpenMLS')
    expect([await atAlice, await atCarol]).toEqual(['from OpenMLS', 'from OpenMLS'])
    const carolHears = nextMessage(carolGroup)
    await group.send('from alice')
    expect(await carolHears).toBe('from alice')
    const aliceHears = nextMessage(group)
    await carolGroup.send('from carol')
    expect(await aliceHears).toBe('from carol')
    expect(await texts(peer, groupId)).toEqual(['from alice', 'from carol'])

    // Updates from each side.
    await carolGroup.update()
    await group.sync()
    await texts(peer, groupId)
    await agree(groupId, [group, carolGroup], [peer], 3n)
    await peer.update(groupId)
    await group.sync()
    await carolGroup.sync()
    await agree(groupId, [group, carolGroup], [peer], 4n)

    // OpenMLS removes alice; carol and OpenMLS go on.
    const aliceRemoved = group.once('group:removed')
    await peer.remove(groupId, [alice.clientId])
    await group.sync()
    await carolGroup.sync()
    await aliceRemoved
    await agree(groupId, [carolGroup], [peer], 5n)
    const last = nextMessage(carolGroup)
    await peer.send(groupId, 'without alice')
    expect(await last).toBe('without alice')
    expect(carolGroup.members().map((m) => m.clientId).sort()).toEqual([carol.clientId, peer.clientId].sort())
  })
})
