import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createClaimEntry, credentialFor, signChallenge, type Group, type GroupEvents, type MlsClient } from '@mls/core'
import type { ClientStore, Connection } from '@mls/core/interfaces'
import {
  createCommit,
  createGroupInfoWithExternalPubAndRatchetTree,
  decodeMlsMessage,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  joinGroup,
  type CiphersuiteImpl,
  type ClientState
} from '@mls/core/mls'
import { nodeCrypto } from '@mls/crypto-node'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws'
import { converged, groupWith, joined, keepOpen } from '@mls/scenarios'
import { serverUrl, webSocketClient, type Cleanups } from './fixtures.js'

const crypto = nodeCrypto()
const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' as const
const cleanups: Cleanups = []

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const server = (): Promise<string> => serverUrl('mls-resync-', cleanups)

const client = (userId: string, url: string, store?: ClientStore): Promise<MlsClient> =>
  webSocketClient(userId, url, cleanups, store)

/** Collect every event of one type a group emits. */
function record<K extends keyof GroupEvents>(group: Group, type: K): GroupEvents[K][] {
  const seen: GroupEvents[K][] = []
  group.on(type, (event) => seen.push(event))
  return seen
}

/** Mallory: a member outside MlsClient, added by alice from a KeyPackage the Directory served. Returns her MLS state at epoch 2. */
async function mallory(url: string, alice: MlsClient, a: Group): Promise<{ connection: Connection; cs: CiphersuiteImpl; state: ClientState }> {
  const clientId = 'mallory/phone'
  const cs: CiphersuiteImpl = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(SUITE))
  const keys = await cs.signature.keygen()
  const connection: Connection = await webSockets({ url, WebSocket }).connect({
    clientId,
    signaturePublicKey: keys.publicKey,
    ciphersuite: SUITE,
    register: true,
    signChallenge: (challenge, binding) => signChallenge(challenge, clientId, keys.signKey, cs, binding)
  })
  cleanups.push(() => connection.close())
  await connection.directory.publishDeviceListEntry(
    await createClaimEntry('mallory', { device: { clientId, signaturePublicKey: keys.publicKey, ciphersuite: SUITE }, signaturePrivateKey: keys.signKey, cs })
  )
  const keyPackage = await generateKeyPackageWithKey(credentialFor(clientId), defaultCapabilities(), defaultLifetime, [], keys, cs)
  await connection.directory.uploadKeyPackages({ keyPackages: [encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: keyPackage.publicPackage })] })
  await alice.addUsers(a, ['mallory'])
  const [welcome] = await connection.channel.fetchWelcomes(0)
  const decoded = decodeMlsMessage(welcome!.welcome, 0)?.[0]
  if (decoded?.wireformat !== 'mls_welcome') throw new Error('expected a Welcome')
  const state = await joinGroup(decoded.welcome, keyPackage.publicPackage, keyPackage.privatePackage, emptyPskIndex, cs)
  return { connection, cs, state }
}

/**
 * A fully valid, correctly signed commit whose UpdatePath encrypts a random
 * path secret to the leaf next to mallory's (her sibling in the tree: the
 * path secret goes to that leaf's own key, so only that member is hit).
 * Returns the commit, the signed GroupInfo of the epoch it leads to, and the victim.
 */
async function badPathSecretCommit(m: { cs: CiphersuiteImpl; state: ClientState }) {
  const own = m.state.privatePath.leafIndex
  const victimNode = m.state.ratchetTree[(own ^ 1) * 2]
  if (victimNode?.nodeType !== 'leaf') throw new Error('expected a sibling leaf')
  const victimKey = victimNode.leaf.hpkePublicKey
  let sealedToVictim = 0
  const same = (x: Uint8Array, y: Uint8Array) => x.length === y.length && x.every((b, i) => b === y[i])
  const hostile: CiphersuiteImpl = {
    ...m.cs,
    hpke: {
      ...m.cs.hpke,
      seal: async (publicKey, plaintext, info, aad) => {
        const hit = same(await m.cs.hpke.exportPublicKey(publicKey), victimKey)
        if (hit) sealedToVictim++
        return m.cs.hpke.seal(publicKey, hit ? globalThis.crypto.getRandomValues(new Uint8Array(plaintext.length)) : plaintext, info, aad)
      }
    }
  }
  const result = await createCommit({ state: m.state, cipherSuite: hostile }, { wireAsPublicMessage: true })
  if (sealedToVictim !== 1) throw new Error(`expected one path secret sealed to the victim, not ${sealedToVictim}`)
  const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(result.newState, [], m.cs)
  const victim = new TextDecoder().decode((victimNode.leaf.credential as { identity: Uint8Array }).identity)
  return {
    commit: encodeMlsMessage(result.commit),
    groupInfo: encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo }),
    victim
  }
}

describe('recovery by external rejoin, against a real server process', () => {
  it('a member sent a bad path secret rejoins at once, and every other member is told who and why', async () => {
    const url = await server()
    const [alice, bob, carol] = [await client('alice', url), await client('bob', url), await client('carol', url)]
    for (const c of [alice, bob, carol]) await c.publishKeyPackages({ count: 3 })
    const groups = await groupWith(alice, [bob, carol])
    const m = await mallory(url, alice, groups[0])
    await converged(groups, 2n)
    const attack = await badPathSecretCommit(m)
    const victim = groups.find((g) => g.members().find((x) => x.leafIndex === g.ownLeafIndex)?.clientId === attack.victim)!
    expect(victim).toBeDefined()
    const others = groups.filter((g) => g !== victim)
    const told = others.map((g) => record(g, 'member:resynced'))
    const ownResync = record(victim, 'group:resynced')
    const statuses = record(victim, 'status:changed')

    const posted = await m.connection.channel.postCommit(groups[0].groupId, { epoch: 2n, commit: attack.commit, groupInfo: attack.groupInfo })
    expect(posted.kind).toBe('accepted')

    // Epoch 3 is mallory's commit, epoch 4 the victim's resync: everyone agrees again.
    await converged(groups, 4n)
    expect(statuses.map((s) => s.to)).toEqual(['failed', 'active'])
    expect(ownResync).toEqual([expect.objectContaining({ epoch: 4n, reason: expect.stringContaining('path') })])
    for (const seen of told) {
      expect(seen).toEqual([expect.objectContaining({ epoch: 4n, member: attack.victim, reason: expect.stringContaining('path') })])
    }
    // The victim's old leaf was replaced, not duplicated: one leaf per device.
    for (const g of groups) expect(g.members().map((x) => x.clientId).sort()).toEqual(['alice/laptop', 'bob/laptop', 'carol/laptop', 'mallory/phone'])
    // And the group works: the victim sends, everyone reads it.
    const heard = others.map((g) => g.once('message:received'))
    await victim.send('back again')
    for (const message of await Promise.all(heard)) expect(new TextDecoder().decode(message.plaintext)).toBe('back again')
  })

  it('a group left failed and persisted recovers after a restart, once a GroupInfo is available', async () => {
    const url = await server()
    const stores = new Map(['alice', 'bob', 'carol'].map((u) => [u, keepOpen(memoryClientStore({ name: u }))]))
    const [alice, bob, carol] = [await client('alice', url, stores.get('alice')), await client('bob', url, stores.get('bob')), await client('carol', url, stores.get('carol'))]
    for (const c of [alice, bob, carol]) await c.publishKeyPackages({ count: 3 })
    const groups = await groupWith(alice, [bob, carol])
    const m = await mallory(url, alice, groups[0])
    await converged(groups, 2n)
    const attack = await badPathSecretCommit(m)
    const clients = [alice, bob, carol]
    const index = groups.findIndex((g) => g.members().find((x) => x.leafIndex === g.ownLeafIndex)?.clientId === attack.victim)
    const victim = groups[index]!
    const failed = new Promise<void>((resolve) => victim.on('status:changed', (s) => s.to === 'failed' && resolve()))

    // Mallory uploads no GroupInfo: nobody can rejoin until an honest commit publishes one.
    await m.connection.channel.postCommit(groups[0].groupId, { epoch: 2n, commit: attack.commit })
    await failed
    const survivors = groups.filter((g) => g !== victim)
    await converged(survivors, 3n)
    expect(victim.status).toBe('failed')

    // The victim's device restarts later; meanwhile an honest member commits (and uploads a GroupInfo).
    await clients[index]!.close()
    const told = survivors.map((g) => record(g, 'member:resynced'))
    expect((await survivors[0]!.update()).kind).toBe('committed')
    const restarted = await client(clients[index]!.userId, url, stores.get(clients[index]!.userId))
    const again = await joined(restarted, groups[0].groupId)
    await converged([...survivors, again], 5n)
    for (const seen of told) expect(seen).toEqual([expect.objectContaining({ epoch: 5n, member: attack.victim })])
  })
})
