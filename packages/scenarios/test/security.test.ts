import { describe, expect, it } from 'vitest'
import {
  createCommit,
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  defaultCapabilities,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName
} from '@mls/core/mls'
import { credentialFor, signChallenge, toHex, type Connection } from '@mls/core'
import { createTestNetwork, groupWith, providerCases, waitFor, type TestNetwork } from '../src/index.js'

const [defaultCase] = providerCases()
const { crypto, ciphersuite } = defaultCase!

/** A raw session for an attacker who holds their own registered key, outside MlsClient. */
async function rawSession(net: TestNetwork, clientId: string, register = true, keys?: { publicKey: Uint8Array; signKey: Uint8Array }) {
  const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(ciphersuite))
  const k = keys ?? (await cs.signature.keygen())
  const connection: Connection = await net.transport.connect({
    clientId,
    signaturePublicKey: k.publicKey,
    ciphersuite,
    register,
    signChallenge: (challenge, binding) => signChallenge(challenge, clientId, k.signKey, cs, binding)
  })
  return { cs, keys: k, connection }
}

/** A KeyPackage whose credential names `clientId` but is signed with the attacker's own key. */
function forgedKeyPackage(attacker: Awaited<ReturnType<typeof rawSession>>, clientId: string) {
  return generateKeyPackageWithKey(
    credentialFor(clientId),
    defaultCapabilities(),
    { notBefore: 0n, notAfter: BigInt(Math.floor(Date.now() / 1000) + 86400) },
    [],
    attacker.keys,
    attacker.cs
  )
}

async function groupOfThree(net: TestNetwork) {
  const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((u) => net.client(u)))
  for (const c of [alice!, bob!, carol!]) await c.publishKeyPackages({ count: 3 })
  const [a, b, c] = await groupWith(alice!, [bob!, carol!])
  return { alice: alice!, bob: bob!, carol: carol!, a, b, c }
}

describe('security properties', () => {
  it('a non-member can neither read nor post, through the client API or the services', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const { a } = await groupOfThree(net)
    await a.send('members only')
    const eve = await net.client('eve')
    const eveSession = await rawSession(net, 'eve/laptop')
    await expect(eveSession.connection.channel.fetchEntries(a.groupId, 0)).rejects.toMatchObject({ code: 'NOT_A_MEMBER' })
    const entries = await net.services.channel.fetchEntries('alice/phone', a.groupId, 0)
    const appMessage = entries.find((e) => e.kind === 'application')!
    await expect(eveSession.connection.channel.postMessage(a.groupId, appMessage.message)).rejects.toMatchObject({ code: 'NOT_A_MEMBER' })
    await expect(net.services.channel.postMessage('eve/phone', a.groupId, appMessage.message)).rejects.toMatchObject({ code: 'NOT_A_MEMBER' })
    expect(eve.group(a.groupId)).toBeUndefined()
  })

  it('no one can register, authenticate as, or upload KeyPackages for another identity', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    await alice.publishKeyPackages({ count: 1 })
    // Registering alice's identity with another key is refused.
    await expect(rawSession(net, 'alice/phone', true)).rejects.toMatchObject({ code: 'IDENTITY_CONFLICT' })
    // Logging in as alice without her key is refused.
    await expect(rawSession(net, 'alice/phone', false)).rejects.toMatchObject({ code: 'AUTHENTICATION_FAILED' })
    // Mallory uploads a KeyPackage naming alice, signed with mallory's key.
    const mallory = await rawSession(net, 'mallory/phone')
    const forged = await forgedKeyPackage(mallory, 'alice/phone')
    const bytes = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: forged.publicPackage })
    await expect(mallory.connection.directory.uploadKeyPackages({ keyPackages: [bytes] })).rejects.toMatchObject({ code: 'KEY_PACKAGE_INVALID' })
    expect(await alice.directory.countKeyPackages()).toEqual({ oneTime: 1, lastResort: true })
  })

  it('a KeyPackage is never served twice, even under concurrent fetches; the last resort only when the pool is empty', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const bob = await net.client('bob')
    await bob.publishKeyPackages({ count: 5 })
    const fetchers = await Promise.all(Array.from({ length: 12 }, (_, i) => net.client(`fetcher${i}`)))
    const results = (await Promise.all(fetchers.map((f) => f.directory.fetchKeyPackages('bob')))).flat()
    expect(results).toHaveLength(12)
    const oneTime = results.filter((r) => !r.lastResort).map((r) => toHex(r.keyPackage))
    const lastResort = results.filter((r) => r.lastResort).map((r) => toHex(r.keyPackage))
    expect(oneTime).toHaveLength(5)
    expect(new Set(oneTime).size).toBe(5)
    expect(lastResort).toHaveLength(7)
    expect(new Set(lastResort).size).toBe(1)
    expect(oneTime).not.toContain(lastResort[0])
  })

  it('tampered, replayed and wrong-group messages are rejected with a typed error and change nothing', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const { alice, a, b } = await groupOfThree(net)
    const { seq } = await a.send('original')
    await waitFor(() => b.cursor === seq, 'bob to process')
    const entries = await net.services.channel.fetchEntries('bob/phone', a.groupId, 0)
    const original = entries.at(-1)!.message
    const authBefore = b.epochAuthenticator()
    const cursorBefore = b.cursor

    const tampered = original.slice()
    tampered[tampered.length - 5]! ^= 0x01
    await expect(b.receive(tampered)).rejects.toMatchObject({ code: 'MESSAGE_REJECTED' })
    await expect(b.receive(original.slice(0, original.length - 3))).rejects.toMatchObject({ code: 'INVALID_MESSAGE' })
    // Replays: out of band, and through the channel.
    await expect(b.receive(original)).resolves.toEqual({ kind: 'duplicate' })
    await expect(net.services.channel.postMessage('alice/phone', a.groupId, original)).rejects.toMatchObject({ code: 'REPLAYED_MESSAGE' })
    // Wrong group: a message of another group.
    const other = await alice.createGroup()
    await other.send('elsewhere')
    const otherEntry = (await net.services.channel.fetchEntries('alice/phone', other.groupId, 0)).at(-1)!
    await expect(b.receive(otherEntry.message)).rejects.toMatchObject({ code: 'WRONG_GROUP' })
    // A replayed commit (old epoch) is a conflict at the channel and a typed error at the client.
    const commit = (await net.services.channel.fetchEntries('alice/phone', a.groupId, 0)).find((e) => e.kind === 'commit')!
    await expect(net.services.channel.postCommit('alice/phone', a.groupId, { epoch: 0n, commit: commit.message })).resolves.toMatchObject({ kind: 'conflict' })
    await expect(b.receive(commit.message)).rejects.toMatchObject({ code: 'WRONG_EPOCH' })

    expect(b.epochAuthenticator()).toEqual(authBefore)
    expect(b.cursor).toBe(cursorBefore)
    expect(b.status).toBe('active')
    const got: string[] = []
    b.on('message:received', (m) => got.push(new TextDecoder().decode(m.plaintext)))
    await a.send('still works')
    await waitFor(() => got.includes('still works'), 'bob reads after bad input')
  })

  it('a forged credential is refused when adding: a KeyPackage whose key is not the registered one', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const carol = await net.client('carol')
    await carol.publishKeyPackages({ count: 1 })
    const mallory = await rawSession(net, 'mallory/phone')
    const forged = await forgedKeyPackage(mallory, 'carol/phone')
    const forgedBytes = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: forged.publicPackage })
    // A compromised Directory serves the forged KeyPackage for carol.
    const directory = alice.directory
    const honestFetch = directory.fetchKeyPackages.bind(directory)
    directory.fetchKeyPackages = async () => [{ clientId: 'carol/phone', keyPackage: forgedBytes, lastResort: false }]
    const a = await alice.createGroup()
    const skipped = alice.once('device:skipped')
    // carol's only device is skipped (its key is not the one carol's signed device list holds), so nothing is added.
    await expect(alice.addUsers(a, ['carol'])).rejects.toMatchObject({
      code: 'NO_KEY_PACKAGE',
      details: { userId: 'carol', skipped: [{ clientId: 'carol/phone', reason: 'key-mismatch' }] }
    })
    expect(await skipped).toMatchObject({ userId: 'carol', clientId: 'carol/phone', reason: 'key-mismatch' })
    expect(a.epoch).toBe(0n)
    expect(a.status).toBe('active')
    directory.fetchKeyPackages = honestFetch
    await expect(alice.addUsers(a, ['carol'])).resolves.toMatchObject({ kind: 'committed' })
  })

  it('a forged credential is refused by the channel: a group whose tree claims an identity with the wrong key is never created', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const bob = await net.client('bob')
    await net.client('alice')
    await bob.publishKeyPackages({ count: 1 })
    // Mallory builds a group in which her own leaf claims to be alice.
    const mallory = await rawSession(net, 'mallory/phone')
    const own = await forgedKeyPackage(mallory, 'alice/phone')
    const groupId = new TextEncoder().encode('forged-group')
    const state = await createGroup(groupId, own.publicPackage, own.privatePackage, [], mallory.cs)
    const groupInfo = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo: await createGroupInfoWithExternalPubAndRatchetTree(state, [], mallory.cs) })
    await expect(mallory.connection.channel.createGroup(groupId, { groupInfo })).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      details: { reason: 'invalid-group-info' }
    })
    // Nor can she post commits to it: the group does not exist.
    const result = await createCommit({ state, cipherSuite: mallory.cs }, { wireAsPublicMessage: true })
    await expect(mallory.connection.channel.postCommit(groupId, { epoch: 0n, commit: encodeMlsMessage(result.commit) })).rejects.toMatchObject({ code: 'UNKNOWN_GROUP' })
    expect(bob.group(groupId)).toBeUndefined()
  })
})
