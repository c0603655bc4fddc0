import { describe, expect, it } from 'vitest'
import { credentialFor, signChallenge, toHex, type MlsClient, type WelcomeDecision } from '@mls/core'
import {
  defaultCapabilities,
  defaultLifetime,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  type CiphersuiteImpl,
  type KeyPackage
} from '@mls/core/mls'
import { nodeCrypto } from '@mls/crypto-node'
import { converged, createTestNetwork, joined, waitFor } from '../src/index.js'

// Adding a member from a KeyPackage obtained outside the Directory (MlsClient.addKeyPackages) and
// joining from a Welcome handed over out of band (MlsClient.joinWelcome), against the real
// services: a bad KeyPackage is refused with KEY_PACKAGE_INVALID and changes nothing; a bad or
// declined Welcome is refused with WELCOME_INVALID and consumes nothing.

const crypto = nodeCrypto()
const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'

async function suite(name: Parameters<typeof getCiphersuiteFromName>[0]): Promise<CiphersuiteImpl> {
  return crypto.getCiphersuiteImpl(getCiphersuiteFromName(name))
}

const frame = (keyPackage: KeyPackage): Uint8Array => encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage })
const flip = (bytes: Uint8Array): Uint8Array => {
  const copy = bytes.slice()
  copy[copy.length - 1]! ^= 1
  return copy
}

/** The group and the client's view of it are unchanged: same epoch, same members, no vouch for `clientId`. */
async function unchanged(alice: MlsClient, groupId: Uint8Array, epoch: bigint, members: string[], probe: { clientId: string; keyPackage: KeyPackage }) {
  const group = alice.group(groupId)!
  expect(group.epoch).toBe(epoch)
  expect(group.members().map((m) => m.clientId)).toEqual(members)
  expect(await alice.authenticationService.validateCredential(probe.keyPackage.leafNode.credential, probe.keyPackage.leafNode.signaturePublicKey)).toBe(false)
}

describe('adding a member from a vouched-for KeyPackage', () => {
  it('refuses a forged, expired, wrong-suite, malformed, foreign-credential or incapable KeyPackage with KEY_PACKAGE_INVALID, changing nothing', async () => {
    const net = await createTestNetwork({ crypto })
    const alice = await net.client('alice')
    const group = await alice.createGroup()
    const cs = await suite(SUITE)
    const keys = await cs.signature.keygen()
    const credential = credentialFor('mallory/laptop')
    const good = await generateKeyPackageWithKey(credential, defaultCapabilities(), defaultLifetime, [], keys, cs)
    const expired = await generateKeyPackageWithKey(credential, defaultCapabilities(), { notBefore: 0n, notAfter: 1000n }, [], keys, cs)
    const p256 = await suite('MLS_128_DHKEMP256_AES128GCM_SHA256_P256')
    const otherSuite = await generateKeyPackageWithKey(credential, defaultCapabilities(), defaultLifetime, [], await p256.signature.keygen(), p256)
    const notAnId = await generateKeyPackageWithKey({ credentialType: 'basic', identity: new TextEncoder().encode('no-device-part') }, defaultCapabilities(), defaultLifetime, [], keys, cs)
    const caps = defaultCapabilities()
    const incapable = await generateKeyPackageWithKey(credential, { ...caps, ciphersuites: caps.ciphersuites.filter((s) => s !== SUITE) }, defaultLifetime, [], keys, cs)
    const goodBytes = frame(good.publicPackage)
    const cases: [string, Uint8Array, string][] = [
      ['a forged signature', frame({ ...good.publicPackage, signature: flip(good.publicPackage.signature) }), 'signature'],
      ['a leaf signed by another key', frame({ ...good.publicPackage, leafNode: { ...good.publicPackage.leafNode, signaturePublicKey: (await cs.signature.keygen()).publicKey } }), 'signature'],
      ['an expired lifetime', frame(expired.publicPackage), 'lifetime'],
      ['another ciphersuite', frame(otherSuite.publicPackage), 'ciphersuite'],
      ['bytes that are no KeyPackage', new Uint8Array(64).fill(7), 'malformed'],
      ['trailing bytes', Uint8Array.from([...goodBytes, 0]), 'malformed'],
      ['a credential the validator does not read as a client id', frame(notAnId.publicPackage), 'credential'],
      ['capabilities without its own ciphersuite', frame(incapable.publicPackage), 'capabilities']
    ]
    for (const [what, bytes, reason] of cases) {
      await expect(alice.addKeyPackages(group, [bytes]), what).rejects.toMatchObject({ code: 'KEY_PACKAGE_INVALID', details: { reason } })
      // One bad KeyPackage among good ones: nothing is vouched or committed.
      await expect(alice.addKeyPackages(group, [goodBytes, bytes]), what).rejects.toMatchObject({ code: 'KEY_PACKAGE_INVALID' })
      await unchanged(alice, group.groupId, 0n, [alice.clientId], { clientId: 'mallory/laptop', keyPackage: good.publicPackage })
    }
    await expect(alice.addKeyPackages(group, [])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await expect(alice.vouchForDevice({ clientId: 'not an id', signaturePublicKey: keys.publicKey })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await alice.close()
  })

  it("adds a device from a KeyPackage handed over in either framing; the server takes it as the device's registered key, and the device joins", async () => {
    const net = await createTestNetwork({ crypto })
    const alice = await net.client('alice')
    const bob = await net.client('bob')
    const carol = await net.client('carol')
    const group = await alice.createGroup()
    // Never published: the Directory has served neither.
    const framed = await bob.createKeyPackage()
    const bare = (await carol.createKeyPackage()).slice(4)
    expect((await alice.validateKeyPackage(bare)).clientId).toBe(carol.clientId)
    const outcome = await alice.addKeyPackages(group, [framed, bare])
    expect(outcome).toMatchObject({ kind: 'committed', epoch: 1n })
    expect([...(outcome.kind === 'committed' ? outcome.added : [])].sort()).toEqual([bob.clientId, carol.clientId].sort())
    const b = await joined(bob, group.groupId)
    const c = await joined(carol, group.groupId)
    await b.sync()
    await c.sync()
    await converged([group, b, c], 1n)
    await Promise.all([alice.close(), bob.close(), carol.close()])
  })

  it("refuses a KeyPackage of a device whose registered key is another (the server's check), changing nothing", async () => {
    const net = await createTestNetwork({ crypto })
    const alice = await net.client('alice')
    const bob = await net.client('bob')
    const group = await alice.createGroup()
    // A KeyPackage naming bob under a key bob never registered, vouched for by alice's app.
    const cs = await suite(SUITE)
    const impostor = await generateKeyPackageWithKey(credentialFor(bob.clientId), defaultCapabilities(), defaultLifetime, [], await cs.signature.keygen(), cs)
    await expect(alice.addKeyPackages(group, [frame(impostor.publicPackage)])).rejects.toMatchObject({ code: 'INVALID_MESSAGE' })
    expect(group.epoch).toBe(0n)
    expect(group.status).toBe('active')
    expect(group.members().map((m) => m.clientId)).toEqual([alice.clientId])
    // The refused commit was dropped, not left pending: the next commit goes through.
    expect(await alice.addKeyPackages(group, [await bob.createKeyPackage()])).toMatchObject({ kind: 'committed', epoch: 1n, added: [bob.clientId] })
    await Promise.all([alice.close(), bob.close()])
  })
})

describe('a device outside every device list (registered, never listed), as a foreign client is', () => {
  it('is added when its KeyPackage carries its registered key; a member that did not vouch refuses the commit, then rejoins once it vouches', async () => {
    const net = await createTestNetwork({ crypto })
    const alice = await net.client('alice')
    const carol = await net.client('carol')
    await carol.publishKeyPackages({ count: 1 })
    const group = await alice.createGroup()
    await alice.addUsers(group, ['carol'])
    const c = await joined(carol, group.groupId)
    await converged([group, c], 1n)

    // dave logs in (registering his key) but claims no device list: no verified list will ever name him.
    const cs = await suite(SUITE)
    const keys = await cs.signature.keygen()
    const dave = await net.transport.connect({
      clientId: 'dave/laptop',
      signaturePublicKey: keys.publicKey,
      ciphersuite: SUITE,
      register: true,
      signChallenge: (challenge, binding) => signChallenge(challenge, 'dave/laptop', keys.signKey, cs, binding)
    })
    const daveKeyPackage = await generateKeyPackageWithKey(credentialFor('dave/laptop'), defaultCapabilities(), defaultLifetime, [], keys, cs)
    const rejected: string[] = []
    c.on('message:rejected', (event) => rejected.push(event.error.code))

    // alice's app vouches by adding; carol's app has not vouched: carol cannot follow the commit (`failed`), and her
    // rejoin by external commit is refused too while the tree holds a device she does not accept.
    expect(await alice.addKeyPackages(group, [frame(daveKeyPackage.publicPackage)])).toMatchObject({ kind: 'committed', epoch: 2n, added: ['dave/laptop'] })
    expect(await dave.channel.fetchWelcomes(0)).toHaveLength(1)
    await c.sync().catch(() => undefined)
    await waitFor(() => rejected.length > 0 && c.status === 'failed', 'carol to refuse the commit')
    expect(rejected[0]).toBe('MESSAGE_REJECTED')
    expect(c.epoch).toBe(1n)

    // Once carol's app vouches, her next sync rejoins (an external commit that replaces her leaf), and the group converges.
    await carol.vouchForDevice({ clientId: 'dave/laptop', signaturePublicKey: keys.publicKey })
    await c.sync()
    await waitFor(() => c.status === 'active', 'carol to rejoin')
    expect(c.members().map((m) => m.clientId).sort()).toEqual(['alice/phone', 'carol/phone', 'dave/laptop'])
    await group.sync()
    await converged([group, c], group.epoch)
    await dave.close()
    await Promise.all([alice.close(), carol.close()])
  })
})

describe('joining from a Welcome handed over out of band, checked as from the mailbox', () => {
  it('refuses a tampered Welcome and one the welcome policy declines, consuming nothing; then joins', async () => {
    const net = await createTestNetwork({ crypto })
    let decision: WelcomeDecision = 'decline'
    const alice = await net.client('alice')
    const bob = await net.client('bob', { autoSync: false, welcomePolicy: () => decision })
    await bob.deviceList('alice')
    const group = await alice.createGroup()
    await alice.addKeyPackages(group, [await bob.createKeyPackage()])
    const [entry] = await net.services.channel.fetchWelcomes(bob.clientId, 0)
    if (entry === undefined) throw new Error('no Welcome')
    await expect(bob.joinWelcome(flip(entry.welcome), { commitSeq: entry.commitSeq })).rejects.toMatchObject({ code: 'WELCOME_INVALID' })
    await expect(bob.joinWelcome(entry.welcome, { commitSeq: entry.commitSeq })).rejects.toMatchObject({ code: 'WELCOME_INVALID', details: { reason: 'policy', decision: 'decline' } })
    decision = 'ask'
    await expect(bob.joinWelcome(entry.welcome, { commitSeq: entry.commitSeq })).rejects.toMatchObject({ code: 'WELCOME_INVALID', details: { reason: 'policy', decision: 'ask' } })
    expect(bob.listGroups()).toEqual([])
    expect(await bob.invitations()).toEqual([])
    // Nothing was consumed: the same Welcome joins once the policy accepts.
    decision = 'accept'
    const b = await bob.joinWelcome(entry.welcome, { commitSeq: entry.commitSeq })
    await b.sync()
    await converged([group, b], 1n)
    expect(toHex(b.groupId)).toBe(toHex(group.groupId))
    await Promise.all([alice.close(), bob.close()])
  })
})
