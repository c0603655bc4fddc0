import { describe, expect, it } from 'vitest'
import {
  createAddEntry,
  createClaimEntry,
  createDeviceLinkRequest,
  createRemoveEntry,
  decodeDeviceLinkRequest,
  decodeDeviceListEntry,
  deviceListFingerprint,
  encodeDeviceListEntry,
  identifierProblem,
  parseClientId,
  tsMlsDefaultCrypto,
  verifyDeviceList,
  type DeviceSigner,
  type SuiteResolver
} from '../src/index.js'
import { getCiphersuiteFromName } from '../src/mls.js'

const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'
const crypto = tsMlsDefaultCrypto()
const suites: SuiteResolver = async (name) => (name === SUITE ? crypto.getCiphersuiteImpl(getCiphersuiteFromName(SUITE)) : undefined)

async function device(clientId: string): Promise<DeviceSigner> {
  const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(SUITE))
  const keys = await cs.signature.keygen()
  return { device: { clientId, signaturePublicKey: keys.publicKey, ciphersuite: SUITE }, signaturePrivateKey: keys.signKey, cs }
}

const verify = (entries: Uint8Array[], userId = 'bob') => verifyDeviceList(entries, { userId, suites })

/** bob/phone claims bob, links bob/tablet, then removes it. */
async function chain() {
  const phone = await device('bob/phone')
  const tablet = await device('bob/tablet')
  const claim = await createClaimEntry('bob', phone)
  const one = await verify([claim])
  const add = await createAddEntry(one, await createDeviceLinkRequest('bob', tablet), phone, suites)
  const two = await verify([claim, add])
  const remove = await createRemoveEntry(two, 'bob/tablet', tablet)
  return { phone, tablet, claim, add, remove, one, two }
}

describe('signed device lists', () => {
  it('verifies a claim, a link and a removal, and keeps removed devices in the history', async () => {
    const { claim, add, remove, two } = await chain()
    expect(two.devices.map((d) => d.clientId)).toEqual(['bob/phone', 'bob/tablet'])
    const three = await verify([claim, add, remove])
    expect(three.version).toBe(3)
    expect(three.devices.map((d) => d.clientId)).toEqual(['bob/phone'])
    expect(three.history.map((d) => d.clientId)).toEqual(['bob/phone', 'bob/tablet'])
    expect(await verify([])).toMatchObject({ version: 0, devices: [] })
    expect(decodeDeviceListEntry(add)).toMatchObject({ action: 'add', signer: 'bob/phone', version: 2 })
    expect(encodeDeviceListEntry(decodeDeviceListEntry(add))).toEqual(add)
  })

  it('refuses every broken chain with DEVICE_LIST_INVALID and the index of the bad entry', async () => {
    const { tablet, claim, add, remove, one } = await chain()
    const mallory = await device('bob/mallory')
    const flipped = add.slice()
    flipped[flipped.length - 3]! ^= 1
    const cases: [Uint8Array[], number, RegExp][] = [
      [[add], 0, /version|chain|claim/],
      [[claim, remove], 1, /version|chain/],
      [[claim, claim], 1, /version|chain|claim/],
      [[claim, flipped], 1, /signature/],
      [[claim, add, await createClaimEntry('bob', tablet)], 2, /version|chain|claim/],
      // mallory signs an add of herself: she is not a listed device
      [[claim, await createAddEntry(one, await createDeviceLinkRequest('bob', mallory), mallory, suites)], 1, /not a listed device/]
    ]
    for (const [entries, index, reason] of cases) {
      await expect(verify(entries)).rejects.toMatchObject({ code: 'DEVICE_LIST_INVALID', details: { index } })
      await expect(verify(entries)).rejects.toThrow(reason)
    }
    // The claim of one user does not verify as another user's list.
    await expect(verify([claim], 'alice')).rejects.toMatchObject({ code: 'DEVICE_LIST_INVALID', details: { index: 0 } })
    // A device of another user cannot claim bob.
    await expect(verify([await createClaimEntry('bob', await device('alice/phone'))])).rejects.toThrow(/another user/)
  })

  it('refuses a forged link request, a device id used twice, and removing the last device', async () => {
    const { phone, tablet, claim, add, remove } = await chain()
    const mallory = await device('bob/mallory')
    const one = await verify([claim])
    const forgedLink = { ...(await linkOf(mallory)), signature: (await linkOf(tablet)).signature }
    await expect(createAddEntry(one, forgedLink, phone, suites)).rejects.toMatchObject({ code: 'DEVICE_LIST_INVALID' })
    const three = await verify([claim, add, remove])
    await expect(createAddEntry(three, await createDeviceLinkRequest('bob', tablet), phone, suites)).rejects.toThrow(/listed before/)
    await expect(createAddEntry(three, await createDeviceLinkRequest('alice', tablet), phone, suites)).rejects.toThrow(/for user/)
    await expect(createRemoveEntry(three, 'bob/phone', phone)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })

  it('gives a 30-digit safety number that depends on the devices and their keys only', async () => {
    const { claim, add, two } = await chain()
    const again = await verify([claim, add])
    const number = await deviceListFingerprint(two, suites)
    expect(number).toMatch(/^\d{5}( \d{5}){5}$/)
    expect(await deviceListFingerprint(again, suites)).toBe(number)
    expect(await deviceListFingerprint(await verify([claim]), suites)).not.toBe(number)
  })
})

async function linkOf(signer: DeviceSigner) {
  return decodeDeviceLinkRequest(await createDeviceLinkRequest('bob', signer))
}

describe('identifiers', () => {
  it('accepts NFC text and refuses controls, invisible, format, bidi and white-space characters, non-NFC and a leading mark', () => {
    for (const ok of ['alice', 'Zoë', '李雷', 'o’brien', 'a.b-c_d', '😀']) expect(identifierProblem(ok)).toBeUndefined()
    const bad = ['', 'a/b', 'alice\u200b', 'alice\u200d', 'alice\u202e', 'alice\u2066', 'ali\u0000ce', 'alice\u00ad', '\ufeffalice', 'a b', 'a\u00a0b', 'cafe\u0301', '\u0301x', 'x\u3164', 'a\u2028b', 'x'.repeat(129)]
    for (const value of bad) expect(identifierProblem(value), JSON.stringify(value)).toBeDefined()
    expect(() => parseClientId('alice\u200b/laptop')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })
})
