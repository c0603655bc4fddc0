import { describe, expect, it } from 'vitest'
import { createClaimEntry, type ContactChange, type DeviceSigner, type MlsClient, type SkippedDevice } from '@mls/core'
import { getCiphersuiteFromName } from '@mls/core/mls'
import { nodeCrypto } from '@mls/crypto-node'
import { createTestNetwork, joined } from '../src/index.js'

const crypto = nodeCrypto()
const ciphersuite = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' as const

function recorded<T>(c: MlsClient, type: 'contact:changed' | 'device:skipped'): T[] {
  const out: T[] = []
  c.on(type, (e) => out.push(e as T))
  return out
}

describe('device lists as clients see them', () => {
  it('addUsers adds what it can: a listed device in another ciphersuite is skipped and reported, the user’s valid device is added', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const bobPhone = await net.client('bob')
    const bobOld = await net.client('bob', { deviceId: 'old', ciphersuite: 'MLS_128_DHKEMP256_AES128GCM_SHA256_P256' })
    await bobPhone.linkDevice(await bobOld.linkRequest())
    for (const c of [bobPhone, bobOld]) await c.publishKeyPackages({ count: 2 })
    const skippedEvents = recorded<SkippedDevice>(alice, 'device:skipped')

    const group = await alice.createGroup()
    const outcome = await alice.addUsers(group, ['bob'])
    expect(outcome).toMatchObject({
      kind: 'committed',
      added: ['bob/phone'],
      skipped: [{ userId: 'bob', clientId: 'bob/old', reason: 'ciphersuite' }]
    })
    expect(skippedEvents).toEqual(outcome.skipped)
    await joined(bobPhone, group.groupId)
    // Each device's pool lost exactly the one KeyPackage it was served.
    expect(await bobPhone.directory.countKeyPackages()).toEqual({ oneTime: 1, lastResort: true })
  })

  it('a Directory that swaps a pinned device list is caught: contact:changed "replaced", DEVICE_LIST_CHANGED, nothing added until trusted again', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const bob = await net.client('bob')
    await bob.publishKeyPackages({ count: 3 })
    const pinned = await alice.fingerprint('bob')
    const changes = recorded<ContactChange>(alice, 'contact:changed')

    // A malicious Directory serves a list in which the server's own key claimed bob.
    const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(ciphersuite))
    const keys = await cs.signature.keygen()
    const signer: DeviceSigner = { device: { clientId: 'bob/server', signaturePublicKey: keys.publicKey, ciphersuite }, signaturePrivateKey: keys.signKey, cs }
    const forged = await createClaimEntry('bob', signer)
    const directory = alice.directory
    const honest = directory.fetchDeviceList.bind(directory)
    directory.fetchDeviceList = async (userId) => (userId === 'bob' ? [forged] : honest(userId))

    const group = await alice.createGroup()
    await expect(alice.addUsers(group, ['bob'])).rejects.toMatchObject({ code: 'DEVICE_LIST_CHANGED' })
    expect(group.epoch).toBe(0n)
    expect(changes).toMatchObject([{ userId: 'bob', kind: 'replaced', added: ['bob/server'], removed: ['bob/phone'], previousFingerprint: pinned }])
    expect(changes[0]!.fingerprint).not.toBe(pinned)

    // Rolled back to the honest Directory, the pinned list verifies again.
    directory.fetchDeviceList = honest
    expect(await alice.addUsers(group, ['bob'])).toMatchObject({ kind: 'committed', added: ['bob/phone'] })

    // After an out-of-band check the app may accept a new list explicitly.
    directory.fetchDeviceList = async (userId) => (userId === 'bob' ? [forged] : honest(userId))
    expect((await alice.trustDeviceList('bob')).devices.map((d) => d.clientId)).toEqual(['bob/server'])
    expect(await alice.fingerprint('bob')).toBe(changes[0]!.fingerprint)
  })

  it('a tampered entry fails verification: the client refuses the list (DEVICE_LIST_INVALID)', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const bob = await net.client('bob')
    const tablet = await net.client('bob', { deviceId: 'tablet' })
    await bob.linkDevice(await tablet.linkRequest())
    const directory = alice.directory
    const honest = directory.fetchDeviceList.bind(directory)
    directory.fetchDeviceList = async (userId) => {
      const entries = await honest(userId)
      if (userId !== 'bob') return entries
      const last = entries[1]!.slice()
      last[last.length - 1]! ^= 1
      return [entries[0]!, last]
    }
    await expect(alice.deviceList('bob')).rejects.toMatchObject({ code: 'DEVICE_LIST_INVALID', details: { index: 1 } })
  })

  it("a joiner fetches its members' device lists a few at a time, and still refuses a Welcome whose member's list was swapped", async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const members: MlsClient[] = []
    for (let i = 0; i < 12; i++) {
      const member = await net.client(`member${i}`)
      await member.publishKeyPackages({ count: 1 })
      members.push(member)
    }
    const zed = await net.client('zed', { autoSync: false })
    const yan = await net.client('yan', { autoSync: false })
    for (const c of [zed, yan]) await c.publishKeyPackages({ count: 1 })
    const group = await alice.createGroup()
    await alice.addUsers(group, members.map((m) => m.userId))

    // Every device-list fetch of zed's takes 5 ms at the Directory: a join that fetched one list after the other would
    // never have two outstanding.
    let inFlight = 0
    let most = 0
    const directory = net.services.directory
    const honest = directory.fetchDeviceList.bind(directory)
    directory.fetchDeviceList = async (caller, userId, options) => {
      if (caller !== 'zed/phone') return honest(caller, userId, options)
      most = Math.max(most, ++inFlight)
      try {
        await new Promise((resolve) => setTimeout(resolve, 5))
        return await honest(caller, userId, options)
      } finally {
        inFlight--
      }
    }
    await alice.addUsers(group, ['zed'])
    const [zeds] = await zed.processWelcomes()
    expect(zeds?.epoch).toBe(group.epoch)
    expect(zeds!.epochAuthenticator()).toEqual(group.epochAuthenticator())
    expect(zeds!.members().length).toBe(14)
    expect(most).toBeGreaterThan(1)
    expect(most).toBeLessThanOrEqual(4)

    // yan's Directory serves, for member3, a list the server's key claimed (member3/phone is not on it): the join
    // refuses the Welcome, as it did when the lists were fetched one by one during the check.
    const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(ciphersuite))
    const keys = await cs.signature.keygen()
    const forged = await createClaimEntry('member3', {
      device: { clientId: 'member3/server', signaturePublicKey: keys.publicKey, ciphersuite },
      signaturePrivateKey: keys.signKey,
      cs
    })
    directory.fetchDeviceList = async (caller, userId, options) => (caller === 'yan/phone' && userId === 'member3' ? [forged] : honest(caller, userId, options))
    const rejected: string[] = []
    yan.on('welcome:rejected', ({ error }) => rejected.push(error.code))
    await alice.addUsers(group, ['yan'])
    expect(await yan.processWelcomes()).toEqual([])
    expect(rejected).toEqual(['WELCOME_INVALID'])
    expect(yan.group(group.groupId)).toBeUndefined()
  })
})
