import { describe, expect, it } from 'vitest'
import { UsageError, basicCredentials, createAddEntry, createClaimEntry, createDeviceLinkRequest, createRemoveEntry, verifyDeviceList, type CredentialValidator } from '@mls/core'
import type { ClaimRequest, RegistrationRequest } from '../src/index.js'
import { TestClient, authenticate, expectCode, harness } from './helpers.js'

describe('authentication hook and abuse limits', () => {
  it('asks the app hook before a new registration and refuses what it refuses, registering nothing', async () => {
    const asked: RegistrationRequest[] = []
    const h = await harness({
      authentication: {
        authorizeRegistration: (request) => {
          asked.push(request)
          return request.userId !== 'mallory'
        }
      }
    })
    const keys = await h.cs.signature.keygen()
    expect(await authenticate(h, 'alice/phone', keys, true, { source: '10.0.0.1' })).toBe('alice/phone')
    expect(asked).toMatchObject([{ clientId: 'alice/phone', userId: 'alice', deviceId: 'phone', source: '10.0.0.1' }])
    // Logging in again, or re-registering the same key, does not ask again.
    expect(await authenticate(h, 'alice/phone', keys, true)).toBe('alice/phone')
    expect(await authenticate(h, 'alice/phone', keys, false)).toBe('alice/phone')
    expect(asked).toHaveLength(1)
    await expectCode(authenticate(h, 'mallory/phone', await h.cs.signature.keygen(), true), 'AUTHENTICATION_FAILED')
    expect(await h.store.getIdentity('mallory/phone')).toBeUndefined()
  })

  it('limits new registrations per source address, not logins and not other sources', async () => {
    const h = await harness({ limits: { registrationBurst: 3, registrationsPerHour: 60 } })
    const keys = await Promise.all([0, 1, 2, 3, 4].map(() => h.cs.signature.keygen()))
    for (let i = 0; i < 3; i++) await authenticate(h, `u${i}/d`, keys[i]!, true, { source: '10.0.0.1' })
    await expectCode(authenticate(h, 'u3/d', keys[3]!, true, { source: '10.0.0.1' }), 'RATE_LIMITED')
    expect(await h.store.getIdentity('u3/d')).toBeUndefined()
    expect(await authenticate(h, 'u0/d', keys[0]!, false, { source: '10.0.0.1' })).toBe('u0/d')
    expect(await authenticate(h, 'u4/d', keys[4]!, true, { source: '10.0.0.2' })).toBe('u4/d')
    h.clock.now += 60_000
    expect(await authenticate(h, 'u3/d', keys[3]!, true, { source: '10.0.0.1' })).toBe('u3/d')
  })

  it('asks the hook for a claim with the proof, and refuses a claim it refuses with CLAIM_REFUSED', async () => {
    const claims: ClaimRequest[] = []
    const h = await harness({
      authentication: {
        authorizeClaim: (request) => {
          claims.push(request)
          return new TextDecoder().decode(request.proof) === `token-for-${request.userId}`
        }
      }
    })
    const alice = await TestClient.register(h, 'alice/phone', { listed: false })
    await expectCode(h.services.directory.publishDeviceListEntry(alice.clientId, await createClaimEntry('alice', alice.signer())), 'CLAIM_REFUSED')
    const wrong = new TextEncoder().encode('token-for-bob')
    await expectCode(h.services.directory.publishDeviceListEntry(alice.clientId, await createClaimEntry('alice', alice.signer(), { proof: wrong })), 'CLAIM_REFUSED')
    expect(await h.services.directory.fetchDeviceList(alice.clientId, 'alice')).toEqual([])
    const proof = new TextEncoder().encode('token-for-alice')
    expect(await h.services.directory.publishDeviceListEntry(alice.clientId, await createClaimEntry('alice', alice.signer(), { proof }))).toEqual({ version: 1 })
    expect(claims.map((c) => [c.userId, c.clientId])).toEqual([
      ['alice', 'alice/phone'],
      ['alice', 'alice/phone'],
      ['alice', 'alice/phone']
    ])
  })

  it('checks device-list entries: published by their signer, naming registered keys, for the next version', async () => {
    const h = await harness()
    const phone = await TestClient.register(h, 'bob/phone')
    const tablet = await TestClient.register(h, 'bob/tablet', { listed: false })
    const list = await verifyDeviceList(await h.services.directory.fetchDeviceList(phone.clientId, 'bob'), { userId: 'bob', suites: h.suites })
    const add = await createAddEntry(list, await createDeviceLinkRequest('bob', tablet.signer()), phone.signer(), h.suites)
    // Uploaded by someone else than its signer.
    await expectCode(h.services.directory.publishDeviceListEntry(tablet.clientId, add), 'DEVICE_LIST_INVALID')
    // A device that is not registered with the key its request names.
    const stranger = { ...tablet.signer(), device: { ...tablet.signer().device, clientId: 'bob/unregistered' } }
    const ghost = await createAddEntry(list, await createDeviceLinkRequest('bob', stranger), phone.signer(), h.suites)
    await expectCode(h.services.directory.publishDeviceListEntry(phone.clientId, ghost), 'DEVICE_LIST_INVALID')
    await expectCode(h.services.directory.publishDeviceListEntry(phone.clientId, new Uint8Array([1, 2, 3])), 'DEVICE_LIST_INVALID')
    expect(await h.services.directory.publishDeviceListEntry(phone.clientId, add)).toEqual({ version: 2 })
    // The same entry again is not for the next version.
    await expectCode(h.services.directory.publishDeviceListEntry(phone.clientId, add), 'DEVICE_LIST_CONFLICT')
    const two = await verifyDeviceList(await h.services.directory.fetchDeviceList(phone.clientId, 'bob'), { userId: 'bob', suites: h.suites })
    expect(two.devices.map((d) => d.clientId)).toEqual(['bob/phone', 'bob/tablet'])
    // The tablet, now listed, may remove the phone.
    expect(await h.services.directory.publishDeviceListEntry(tablet.clientId, await createRemoveEntry(two, 'bob/phone', tablet.signer()))).toEqual({ version: 3 })
  })

  it('serves only listed devices, and rations one-time KeyPackages per target user, falling back to the last-resort one', async () => {
    const h = await harness({ limits: { oneTimeKeyPackageBurst: 2, oneTimeKeyPackagesPerMinute: 1 } })
    const bob = await TestClient.register(h, 'bob/phone')
    const evil = await TestClient.register(h, 'bob/evil', { listed: false })
    const [, , , , last] = await bob.upload(4, true)
    await evil.upload(2, true)
    const requesters = await Promise.all(['r1/x', 'r2/x', 'r3/x'].map((id) => TestClient.register(h, id)))
    const served = []
    for (const r of requesters) served.push(...(await h.services.directory.fetchKeyPackages(r.clientId, 'bob')))
    expect(served.map((s) => s.clientId)).toEqual(['bob/phone', 'bob/phone', 'bob/phone'])
    expect(served.map((s) => s.lastResort)).toEqual([false, false, true])
    expect(served[2]!.keyPackage).toEqual(last!.bytes)
    expect(await h.services.directory.countKeyPackages(bob.clientId)).toEqual({ oneTime: 2, lastResort: true })
    h.clock.now += 60_000
    expect((await h.services.directory.fetchKeyPackages(requesters[0]!.clientId, 'bob'))[0]?.lastResort).toBe(false)
  })

  it('follows the installed credential validator for every id check: registration, device lists and KeyPackages', async () => {
    // An app whose ids are lower-case ASCII only (a stricter scheme than the default).
    const asciiOnly = (id: string): void => {
      if (!/^[a-z0-9.-]+$/.test(id)) throw new UsageError('INVALID_ARGUMENT', `${id} is not a lower-case ASCII id`)
    }
    const credentials: CredentialValidator = {
      name: 'ascii',
      parseClientId: (clientId) => {
        const parts = basicCredentials.parseClientId(clientId)
        asciiOnly(parts.userId)
        asciiOnly(parts.deviceId)
        return parts
      },
      checkUserId: (userId) => asciiOnly(userId),
      clientIdFromCredential: (credential) => {
        const clientId = basicCredentials.clientIdFromCredential(credential)
        try {
          if (clientId !== undefined) credentials.parseClientId(clientId)
          return clientId
        } catch {
          return undefined
        }
      }
    }
    const strict = await harness({ credentials })
    const keys = await strict.cs.signature.keygen()
    await expectCode(authenticate(strict, 'Zoë/phone', keys, true), 'INVALID_ARGUMENT')
    expect(await authenticate(strict, 'zoe/phone', keys, true)).toBe('zoe/phone')
    await expectCode(strict.services.directory.fetchKeyPackages('zoe/phone', 'Zoë'), 'INVALID_ARGUMENT')
    await expectCode(strict.services.directory.fetchDeviceList('zoe/phone', 'Zoë'), 'INVALID_ARGUMENT')
    // The default accepts the same id.
    const lenient = await harness()
    expect(await authenticate(lenient, 'Zoë/phone', keys, true)).toBe('Zoë/phone')
  })
})
