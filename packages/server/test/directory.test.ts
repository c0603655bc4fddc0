import { describe, expect, it } from 'vitest'
import { credentialFor } from '@mls/core'
import { encodeKeyPackage, encodeMlsMessage, getCiphersuiteFromName } from '@mls/core/mls'
import { SUITE, TestClient, encodeKeyPackageMessage, expectCode, harness, resignKeyPackage } from './helpers.js'

describe('directory: KeyPackage upload', () => {
  it('stores valid KeyPackages and a last-resort one', async () => {
    const h = await harness()
    const alice = await TestClient.register(h, 'alice/phone')
    const one = await alice.keyPackage()
    const two = await alice.keyPackage()
    const last = await alice.keyPackage()
    const count = await h.services.directory.uploadKeyPackages(alice.clientId, { keyPackages: [one.bytes, two.bytes], lastResort: last.bytes })
    expect(count).toEqual({ oneTime: 2, lastResort: true })
    expect(await h.services.directory.countKeyPackages(alice.clientId)).toEqual({ oneTime: 2, lastResort: true })
    expect(await h.services.directory.uploadKeyPackages(alice.clientId, { keyPackages: [one.bytes] })).toEqual({ oneTime: 2, lastResort: true })
  })

  it('accepts a bare KeyPackage (OpenMLS framing) and serves it as an MLSMessage, bytes otherwise unchanged', async () => {
    const h = await harness()
    const alice = await TestClient.register(h, 'alice/phone')
    const bob = await TestClient.register(h, 'bob/phone')
    const kp = await alice.keyPackage()
    const bare = encodeKeyPackage(kp.publicPackage)
    expect(await h.services.directory.uploadKeyPackages(alice.clientId, { keyPackages: [bare] })).toEqual({ oneTime: 1, lastResort: false })
    const [served] = await h.services.directory.fetchKeyPackages(bob.clientId, 'alice')
    expect(served?.keyPackage).toEqual(kp.bytes)
    expect(served?.keyPackage.subarray(4)).toEqual(bare)
  })

  it('refuses a bare KeyPackage with trailing bytes, one naming another client, and bytes that are neither framing', async () => {
    const h = await harness()
    const alice = await TestClient.register(h, 'alice/phone')
    const mallory = await TestClient.register(h, 'mallory/phone')
    const bare = encodeKeyPackage((await mallory.keyPackage()).publicPackage)
    const trailing = new Uint8Array([...bare, 0])
    const forAlice = encodeKeyPackage((await mallory.keyPackage({ credential: credentialFor(alice.clientId) })).publicPackage)
    const cases: [Uint8Array, string][] = [
      [trailing, 'neither a decodable MLSMessage nor a bare KeyPackage'],
      [forAlice, 'not the caller'],
      [bare.subarray(0, 40), 'neither a decodable MLSMessage nor a bare KeyPackage'],
      [new Uint8Array([0, 1, 0, 1, 9, 9]), 'neither a decodable MLSMessage nor a bare KeyPackage']
    ]
    for (const [bytes, reason] of cases) {
      await expect(h.services.directory.uploadKeyPackages(mallory.clientId, { keyPackages: [bytes] })).rejects.toMatchObject({
        code: 'KEY_PACKAGE_INVALID',
        details: { index: 0, reason: expect.stringContaining(reason) }
      })
    }
    expect(await h.services.directory.countKeyPackages(mallory.clientId)).toEqual({ oneTime: 0, lastResort: false })
  })

  it('refuses KeyPackages for another identity, all or nothing', async () => {
    const h = await harness()
    const alice = await TestClient.register(h, 'alice/phone')
    const mallory = await TestClient.register(h, 'mallory/phone')
    const valid = await mallory.keyPackage()
    const forAlice = await mallory.keyPackage({ credential: credentialFor(alice.clientId) })
    await expect(h.services.directory.uploadKeyPackages(mallory.clientId, { keyPackages: [valid.bytes, forAlice.bytes] })).rejects.toMatchObject({
      code: 'KEY_PACKAGE_INVALID',
      details: { index: 1 }
    })
    expect(await h.services.directory.countKeyPackages(mallory.clientId)).toEqual({ oneTime: 0, lastResort: false })
    await expectCode(h.services.directory.uploadKeyPackages(alice.clientId, { keyPackages: [valid.bytes] }), 'KEY_PACKAGE_INVALID')
    expect(await h.services.directory.countKeyPackages(alice.clientId)).toEqual({ oneTime: 0, lastResort: false })
  })

  it('refuses a KeyPackage naming the caller but signed with a key that is not the registered one', async () => {
    const h = await harness()
    const alice = await TestClient.register(h, 'alice/phone')
    const forged = await alice.keyPackage({ keys: await h.cs.signature.keygen() })
    await expect(h.services.directory.uploadKeyPackages(alice.clientId, { keyPackages: [], lastResort: forged.bytes })).rejects.toMatchObject({
      code: 'KEY_PACKAGE_INVALID',
      details: { index: 0, reason: expect.stringContaining('registered key') }
    })
  })

  it('refuses KeyPackages whose signatures do not verify', async () => {
    const h = await harness()
    const alice = await TestClient.register(h, 'alice/phone')
    const kp = (await alice.keyPackage()).publicPackage
    const badSignature = kp.signature.slice()
    badSignature[0] = badSignature[0]! ^ 1
    const tamperedInitKey = kp.initKey.slice()
    tamperedInitKey[0] = tamperedInitKey[0]! ^ 1
    const badLeafSignature = kp.leafNode.signature.slice()
    badLeafSignature[5] = badLeafSignature[5]! ^ 1
    const cases = [
      { ...kp, signature: badSignature },
      { ...kp, initKey: tamperedInitKey },
      await resignKeyPackage(kp, { leafNode: { ...kp.leafNode, signature: badLeafSignature } }, alice.keys.signKey, h.cs)
    ]
    for (const forged of cases) {
      await expect(h.services.directory.uploadKeyPackages(alice.clientId, { keyPackages: [encodeKeyPackageMessage(forged)] })).rejects.toMatchObject({
        code: 'KEY_PACKAGE_INVALID',
        details: { reason: expect.stringMatching(/signature does not verify/) }
      })
    }
    const resigned = await resignKeyPackage(kp, {}, alice.keys.signKey, h.cs)
    expect(await h.services.directory.uploadKeyPackages(alice.clientId, { keyPackages: [encodeKeyPackageMessage(resigned)] })).toEqual({ oneTime: 1, lastResort: false })
  })

  it('refuses init_key equal to the encryption key, bad lifetimes, other credentials, suites and wire formats', async () => {
    const h = await harness({ ciphersuites: [SUITE] })
    const alice = await TestClient.register(h, 'alice/phone')
    const kp = (await alice.keyPackage()).publicPackage
    const nowSeconds = BigInt(Math.floor(h.clock.now / 1000))
    const chacha = await h.crypto.getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519'))
    const cases: [Uint8Array, RegExp][] = [
      [encodeKeyPackageMessage(await resignKeyPackage(kp, { initKey: kp.leafNode.hpkePublicKey }, alice.keys.signKey, h.cs)), /init_key/],
      [(await alice.keyPackage({ lifetime: { notBefore: 0n, notAfter: nowSeconds - 1n } })).bytes, /expired/],
      [(await alice.keyPackage({ lifetime: { notBefore: nowSeconds + 3600n, notAfter: nowSeconds + 7200n } })).bytes, /not valid yet/],
      [(await alice.keyPackage({ credential: { credentialType: 'x509', certificates: [new Uint8Array([1, 2, 3])] } })).bytes, /basic credential/],
      [(await alice.keyPackage({ cs: chacha })).bytes, /ciphersuite/],
      [encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: { cipherSuite: SUITE, secrets: [], encryptedGroupInfo: new Uint8Array(4) } }), /wire format/],
      [new Uint8Array([0, 1, 0, 5, 9, 9]), /decodable/],
      [new Uint8Array([...encodeKeyPackageMessage(kp), 0]), /decodable/]
    ]
    for (const [bytes, reason] of cases) {
      await expect(h.services.directory.uploadKeyPackages(alice.clientId, { keyPackages: [bytes] })).rejects.toMatchObject({
        code: 'KEY_PACKAGE_INVALID',
        details: { reason: expect.stringMatching(reason) }
      })
    }
    const withinSkew = await alice.keyPackage({ lifetime: { notBefore: nowSeconds + 60n, notAfter: nowSeconds + 7200n } })
    expect(await h.services.directory.uploadKeyPackages(alice.clientId, { keyPackages: [withinSkew.bytes] })).toEqual({ oneTime: 1, lastResort: false })
  })

  it('refuses uploads past the per-upload limit and by unregistered callers', async () => {
    const h = await harness({ limits: { maxKeyPackagesPerUpload: 2 } })
    const alice = await TestClient.register(h, 'alice/phone')
    const kps = await Promise.all([alice.keyPackage(), alice.keyPackage()])
    const last = await alice.keyPackage()
    await expectCode(h.services.directory.uploadKeyPackages(alice.clientId, { keyPackages: kps.map((k) => k.bytes), lastResort: last.bytes }), 'KEY_PACKAGE_INVALID')
    await expectCode(h.services.directory.uploadKeyPackages('ghost/phone', { keyPackages: [] }), 'UNKNOWN_IDENTITY')
  })
})

describe('directory: KeyPackage fetch', () => {
  it('serves one KeyPackage per device of the user, oldest first, never the caller’s own device', async () => {
    const h = await harness()
    const phone = await TestClient.register(h, 'bob/phone')
    const laptop = await TestClient.register(h, 'bob/laptop')
    const alice = await TestClient.register(h, 'alice/phone')
    const phoneKps = await phone.upload(2)
    const laptopKps = await laptop.upload(1)
    const fetched = await h.services.directory.fetchKeyPackages(alice.clientId, 'bob')
    expect(fetched).toEqual([
      { clientId: 'bob/laptop', keyPackage: laptopKps[0]!.bytes, lastResort: false },
      { clientId: 'bob/phone', keyPackage: phoneKps[0]!.bytes, lastResort: false }
    ])
    expect(await h.services.directory.fetchKeyPackages(laptop.clientId, 'bob')).toEqual([{ clientId: 'bob/phone', keyPackage: phoneKps[1]!.bytes, lastResort: false }])
    expect(await h.services.directory.fetchKeyPackages(alice.clientId, 'bob')).toEqual([])
    expect(await h.services.directory.countKeyPackages(phone.clientId)).toEqual({ oneTime: 0, lastResort: false })
  })

  it('never serves a KeyPackage twice under concurrent fetches', async () => {
    const h = await harness()
    const bob = await TestClient.register(h, 'bob/phone')
    const uploaded = await bob.upload(10)
    const fetchers = await Promise.all(Array.from({ length: 8 }, (_, i) => TestClient.register(h, `fetcher${i}/phone`)))
    const results = await Promise.all(fetchers.flatMap((f) => [0, 1, 2].map(() => h.services.directory.fetchKeyPackages(f.clientId, 'bob'))))
    const served = results.flat().map((r) => Buffer.from(r.keyPackage).toString('hex'))
    expect(served).toHaveLength(10)
    expect(new Set(served).size).toBe(10)
    expect(new Set(served)).toEqual(new Set(uploaded.map((k) => Buffer.from(k.bytes).toString('hex'))))
  })

  it('serves the last-resort KeyPackage only when the pool is empty, and again after', async () => {
    const h = await harness()
    const bob = await TestClient.register(h, 'bob/phone')
    const alice = await TestClient.register(h, 'alice/phone')
    const [oneTime, last] = await bob.upload(1, true)
    expect(await h.services.directory.fetchKeyPackages(alice.clientId, 'bob')).toEqual([{ clientId: 'bob/phone', keyPackage: oneTime!.bytes, lastResort: false }])
    expect(await h.services.directory.fetchKeyPackages(alice.clientId, 'bob')).toEqual([{ clientId: 'bob/phone', keyPackage: last!.bytes, lastResort: true }])
    expect(await h.services.directory.fetchKeyPackages(alice.clientId, 'bob')).toEqual([{ clientId: 'bob/phone', keyPackage: last!.bytes, lastResort: true }])
    expect(await h.services.directory.countKeyPackages(bob.clientId)).toEqual({ oneTime: 0, lastResort: true })
    const fresh = await bob.upload(1)
    expect((await h.services.directory.fetchKeyPackages(alice.clientId, 'bob'))[0]?.keyPackage).toEqual(fresh[0]!.bytes)
  })

  it('does not serve KeyPackages that expired in the pool', async () => {
    const h = await harness()
    const bob = await TestClient.register(h, 'bob/phone')
    const alice = await TestClient.register(h, 'alice/phone')
    const nowSeconds = BigInt(Math.floor(h.clock.now / 1000))
    const shortLived = await bob.keyPackage({ lifetime: { notBefore: 0n, notAfter: nowSeconds + 60n } })
    const longLived = await bob.keyPackage()
    await h.services.directory.uploadKeyPackages(bob.clientId, { keyPackages: [shortLived.bytes, longLived.bytes] })
    h.clock.now += 3_600_000
    expect(await h.services.directory.fetchKeyPackages(alice.clientId, 'bob')).toEqual([{ clientId: 'bob/phone', keyPackage: longLived.bytes, lastResort: false }])
    expect(await h.services.directory.fetchKeyPackages(alice.clientId, 'bob')).toEqual([])
  })

  it('answers UNKNOWN_USER for a user without devices and INVALID_ARGUMENT for a malformed user id', async () => {
    const h = await harness()
    const alice = await TestClient.register(h, 'alice/phone')
    await expectCode(h.services.directory.fetchKeyPackages(alice.clientId, 'nobody'), 'UNKNOWN_USER')
    await expectCode(h.services.directory.fetchKeyPackages(alice.clientId, 'a/b'), 'INVALID_ARGUMENT')
  })

  it('rate limits fetches per requester with a token bucket', async () => {
    const h = await harness({ limits: { fetchesPerMinute: 60, fetchBurst: 3 } })
    const bob = await TestClient.register(h, 'bob/phone')
    const alice = await TestClient.register(h, 'alice/phone')
    const carol = await TestClient.register(h, 'carol/phone')
    await bob.upload(0, true)
    for (let i = 0; i < 3; i++) expect(await h.services.directory.fetchKeyPackages(alice.clientId, 'bob')).toHaveLength(1)
    await expect(h.services.directory.fetchKeyPackages(alice.clientId, 'bob')).rejects.toMatchObject({ code: 'RATE_LIMITED', details: { retryAfterMs: 1000 } })
    await expectCode(h.services.directory.fetchKeyPackages(alice.clientId, 'nobody'), 'RATE_LIMITED')
    expect(await h.services.directory.fetchKeyPackages(carol.clientId, 'bob')).toHaveLength(1)
    h.clock.now += 1000
    expect(await h.services.directory.fetchKeyPackages(alice.clientId, 'bob')).toHaveLength(1)
    await expectCode(h.services.directory.fetchKeyPackages(alice.clientId, 'bob'), 'RATE_LIMITED')
  })

  it('looks up registered identities and refuses aborted calls', async () => {
    const h = await harness()
    const bob = await TestClient.register(h, 'bob/phone')
    expect(await h.services.directory.lookupIdentity('alice/phone', 'bob/phone')).toEqual({ clientId: 'bob/phone', signaturePublicKey: bob.keys.publicKey, ciphersuite: SUITE })
    expect(await h.services.directory.lookupIdentity('alice/phone', 'bob/tablet')).toBeUndefined()
    await expectCode(h.services.directory.lookupIdentity('alice/phone', 'bob'), 'INVALID_ARGUMENT')
    const controller = new AbortController()
    controller.abort()
    const signal = controller.signal
    await expectCode(h.services.directory.fetchKeyPackages(bob.clientId, 'bob', { signal }), 'ABORTED')
    await expectCode(h.services.directory.uploadKeyPackages(bob.clientId, { keyPackages: [(await bob.keyPackage()).bytes] }, { signal }), 'ABORTED')
    expect(await h.services.directory.countKeyPackages(bob.clientId)).toEqual({ oneTime: 0, lastResort: false })
  })
})
