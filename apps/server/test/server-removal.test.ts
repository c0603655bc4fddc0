import { mkdtempSync, readFileSync, rmSync, unlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createMlsClient, externalSendersOf, utf8, type Group, type MlsClient, type ServerExternalSender } from '@mls/core'
import {
  createCommit,
  encodeExternalSender,
  encodeMlsMessage,
  getCiphersuiteFromName,
  type CiphersuiteImpl,
  type ClientState,
  type Extension
} from '@mls/core/mls'
import { protectExternalProposalPublic } from '@mls/core/mls-internals'
import type { ClientStore } from '@mls/core/interfaces'
import { nodeCrypto } from '@mls/crypto-node'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws'
import { converged, joined, waitFor } from '@mls/scenarios'
import { startServerProcess, type ServerProcess } from './harness.js'
import type { Cleanups } from './fixtures.js'

const crypto = nodeCrypto()
const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' as const
const cleanups: Cleanups = []

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** A real `apps/server` process on a fresh data dir (kept, so the test can read its key file or restart on it). */
async function serverOn(dir?: string): Promise<{ dir: string; proc: ServerProcess }> {
  const dataDir = dir ?? mkdtempSync(join(tmpdir(), 'mls-server-removal-'))
  const proc = await startServerProcess(dataDir)
  cleanups.push(async () => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) await proc.kill('SIGKILL')
  })
  if (dir === undefined) cleanups.unshift(() => rmSync(dataDir, { recursive: true, force: true }))
  return { dir: dataDir, proc }
}

async function device(userId: string, deviceId: string, url: string, store: ClientStore = memoryClientStore({ name: `${userId}/${deviceId}` })): Promise<MlsClient> {
  const client = await createMlsClient({
    userId,
    deviceId,
    crypto,
    store,
    transport: webSockets({ url, WebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } })
  })
  cleanups.push(() => client.close())
  return client
}

function serverKeyFile(dir: string): { signaturePublicKey: Uint8Array; signaturePrivateKey: Uint8Array } {
  const file = JSON.parse(readFileSync(join(dir, 'server-key.json'), 'utf8')) as { signaturePublicKey: string; signaturePrivateKey: string }
  return { signaturePublicKey: new Uint8Array(Buffer.from(file.signaturePublicKey, 'base64')), signaturePrivateKey: new Uint8Array(Buffer.from(file.signaturePrivateKey, 'base64')) }
}

/** The store across client restarts within a test: `MlsClient.close()` closes its store. */
function keepOpen(store: ClientStore): ClientStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      if (property === 'close') return async () => undefined
      const value = Reflect.get(target, property, receiver) as unknown
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value
    }
  })
}

const ids = (g: Group) => g.members().map((m) => m.clientId).sort()

/** alice/laptop, bob/laptop and bob/phone (linked by bob/laptop), each with KeyPackages. */
async function aliceAndBob(url: string): Promise<{ alice: MlsClient; bobLaptop: MlsClient; bobPhone: MlsClient }> {
  const alice = await device('alice', 'laptop', url)
  const bobLaptop = await device('bob', 'laptop', url)
  const bobPhone = await device('bob', 'phone', url)
  await bobLaptop.linkDevice(await bobPhone.linkRequest())
  for (const c of [alice, bobLaptop, bobPhone]) await c.publishKeyPackages({ count: 4 })
  return { alice, bobLaptop, bobPhone }
}

/** A group of alice with every device of bob. */
async function groupOfAliceAndBob(alice: MlsClient, bobLaptop: MlsClient, bobPhone: MlsClient): Promise<[Group, Group, Group]> {
  const group = await alice.createGroup()
  await alice.addUsers(group, ['bob'])
  return [group, await joined(bobLaptop, group.groupId), await joined(bobPhone, group.groupId)]
}

async function cipherSuite(): Promise<CiphersuiteImpl> {
  return crypto.getCiphersuiteImpl(getCiphersuiteFromName(SUITE))
}

describe('server-initiated removal, against a real server process', () => {
  it('a device its user deletes is removed from every group it is in: it cannot read what is sent afterwards, the others converge', async () => {
    const { dir, proc } = await serverOn()
    const { alice, bobLaptop, bobPhone } = await aliceAndBob(proc.url)
    // Every client pinned the key the server generated in its data dir and advertises in the handshake.
    const key = serverKeyFile(dir)
    for (const c of [alice, bobLaptop, bobPhone]) expect(c.serverExternalSender?.signaturePublicKey).toEqual(key.signaturePublicKey)
    const [a1, bl1, bp1] = await groupOfAliceAndBob(alice, bobLaptop, bobPhone)
    const [a2, bl2, bp2] = await groupOfAliceAndBob(alice, bobLaptop, bobPhone)
    // The groups list the server (and only it) as their external sender.
    for (const g of [a1, a2]) expect(externalSendersOf(g.mlsState!.groupContext.extensions)?.map((s) => s.signaturePublicKey)).toEqual([key.signaturePublicKey])

    const proposed = [a1, bl1, a2, bl2].map((g) => g.once('proposal:received'))
    const phoneRemoved = [bp1, bp2].map((g) => g.once('group:removed'))
    await bobLaptop.removeDevice('bob/phone')
    // The server proposed the phone's removal in both groups; every member kept the proposal.
    for (const proposal of await Promise.all(proposed)) expect(proposal).toMatchObject({ sender: undefined, removes: ['bob/phone'] })

    // Group 1: alice's next message commits the pending removal first.
    const heard = bl1.once('message:received')
    await a1.send('after the phone was deleted')
    expect(new TextDecoder().decode((await heard).plaintext)).toBe('after the phone was deleted')
    // Group 2: bob's laptop commits it with an update.
    expect(await bl2.update()).toMatchObject({ kind: 'committed' })
    const removals = await Promise.all(phoneRemoved)
    expect(removals.map((r) => r.epoch)).toEqual([2n, 2n])
    await converged([a1, bl1], 2n)
    await converged([a2, bl2], 2n)
    for (const g of [a1, bl1, a2, bl2]) expect(ids(g)).toEqual(['alice/laptop', 'bob/laptop'])

    // The phone reads nothing past the commit that removed it, and cannot post.
    const after = await a2.send('phone, can you read this?')
    const phoneReads = await bobPhone.channel.fetchEntries(a2.groupId, 0)
    expect(phoneReads.every((e) => e.seq < after.seq)).toBe(true)
    expect(bp1.status).toBe('removed')
    expect(bp2.status).toBe('removed')
  })

  it('the key is stable across restarts (no report), and a changed key is reported and its proposals are not accepted', async () => {
    const first = await serverOn()
    const store = keepOpen(memoryClientStore({ name: 'alice/laptop' }))
    const alice = await device('alice', 'laptop', first.proc.url, store)
    const pinned = alice.serverExternalSender
    expect(pinned).toBeDefined()
    await alice.close()
    await first.proc.kill('SIGTERM')

    // Same data dir: the same key, so the pin holds without a report.
    const second = await serverOn(first.dir)
    const again = await device('alice', 'laptop', second.proc.url, store)
    expect(again.serverExternalSender).toEqual(pinned)
    await again.close()
    await second.proc.kill('SIGTERM')

    // The key file replaced: the server advertises another key; the client reports it and keeps its pin.
    unlinkSync(join(first.dir, 'server-key.json'))
    const third = await serverOn(first.dir)
    const changed: { advertised: ServerExternalSender | undefined; code: string }[] = []
    const alice3 = await createMlsClient({
      userId: 'alice',
      deviceId: 'laptop',
      crypto,
      store,
      start: false,
      transport: webSockets({ url: third.proc.url, WebSocket })
    })
    cleanups.push(() => alice3.close())
    alice3.on('server:key-changed', (event) => changed.push({ advertised: event.advertised, code: event.error.code }))
    await alice3.start()
    expect(changed).toHaveLength(1)
    expect(changed[0]?.code).toBe('SERVER_KEY_CHANGED')
    expect(changed[0]?.advertised?.signaturePublicKey).toEqual(serverKeyFile(first.dir).signaturePublicKey)
    expect(alice3.serverExternalSender).toEqual(pinned)
    // A group created now lists no external sender: the advertised key is not the pinned one.
    const group = await alice3.createGroup()
    expect(externalSendersOf(group.mlsState!.groupContext.extensions)).toEqual([])

    // dave pins the new key and creates a group with it; alice joins. The server's proposal there is refused by alice
    // (not her pinned key) and reported, while dave, who pinned it, keeps it.
    const dave = await device('dave', 'laptop', third.proc.url)
    const daveOther = await device('dave', 'tablet', third.proc.url)
    await dave.linkDevice(await daveOther.linkRequest())
    for (const c of [alice3, daveOther]) await c.publishKeyPackages({ count: 2 })
    const d = await dave.createGroup()
    await dave.addUsers(d, ['alice', 'dave'])
    const a = await joined(alice3, d.groupId)
    await waitFor(() => a.epoch === d.epoch, 'alice to catch up')
    const refused = a.once('message:rejected')
    const kept = d.once('proposal:received')
    await dave.removeDevice('dave/tablet')
    expect(await kept).toMatchObject({ removes: ['dave/tablet'] })
    expect((await refused).error).toMatchObject({ code: 'EXTERNAL_SENDER_REFUSED', details: { reason: 'external-sender-not-pinned' } })
  })

  it('refuses forged external proposals, proposals for blank leaves, and members changing external_senders', async () => {
    const { dir, proc } = await serverOn()
    const { alice, bobLaptop, bobPhone } = await aliceAndBob(proc.url)
    const [a, bl] = await groupOfAliceAndBob(alice, bobLaptop, bobPhone)
    const cs = await cipherSuite()
    const state = a.mlsState as ClientState
    const key = serverKeyFile(dir)
    const external = async (removed: number, signKey: Uint8Array, senderIndex = 0): Promise<Uint8Array> => {
      const proposal = { proposalType: 'remove' as const, remove: { removed } }
      const { publicMessage } = await protectExternalProposalPublic(signKey, state.groupContext, new Uint8Array(), proposal, { senderType: 'external', senderIndex }, cs)
      return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_public_message', publicMessage })
    }
    // A Remove signed with another key than the server's (a forged external-sender proposal): the signature fails.
    const stranger = await cs.signature.keygen()
    await expect(bl.receive(await external(2, stranger.signKey))).rejects.toMatchObject({ code: 'MESSAGE_REJECTED' })
    // An external sender the group does not list.
    await expect(bl.receive(await external(2, key.signaturePrivateKey, 3))).rejects.toMatchObject({
      code: 'EXTERNAL_SENDER_REFUSED',
      details: { reason: 'unknown-external-sender' }
    })
    // The server's genuine key, but for a blank leaf.
    await expect(bl.receive(await external(7, key.signaturePrivateKey))).rejects.toMatchObject({ code: 'INVALID_MESSAGE' })
    // A client cannot post an external proposal through the channel, even one signed with the server's key.
    await expect(bobLaptop.channel.postProposal(a.groupId, await external(2, key.signaturePrivateKey))).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      details: { reason: 'unknown-sender' }
    })
    expect(ids(bl)).toEqual(['alice/laptop', 'bob/laptop', 'bob/phone'])

    // A member replaces external_senders with its own key, or drops it: the channel refuses both commits.
    const own = { signaturePublicKey: alice.signaturePublicKey, credential: { credentialType: 'basic' as const, identity: utf8.encode('alice/laptop') } }
    const replaced: Extension = { extensionType: 'external_senders', extensionData: new Uint8Array([encodeExternalSender(own).length, ...encodeExternalSender(own)]) }
    const lenient = { ...state, clientConfig: { ...state.clientConfig, authService: { validateCredential: async () => true } } }
    for (const extensions of [[replaced], []]) {
      const result = await createCommit(
        { state: lenient, cipherSuite: cs },
        { extraProposals: [{ proposalType: 'group_context_extensions', groupContextExtensions: { extensions } }], wireAsPublicMessage: true, ratchetTreeExtension: true }
      )
      await expect(alice.channel.postCommit(a.groupId, { epoch: state.groupContext.epoch, commit: encodeMlsMessage(result.commit) })).rejects.toMatchObject({
        code: 'INVALID_MESSAGE',
        details: { reason: 'external-senders-change' }
      })
    }
    // Nothing moved: the group carries on.
    const heard = bl.once('message:received')
    await a.send('still one group')
    expect(new TextDecoder().decode((await heard).plaintext)).toBe('still one group')
    expect(a.epoch).toBe(1n)
  })
})
