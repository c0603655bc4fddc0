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
})
