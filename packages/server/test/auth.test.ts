import { describe, expect, it } from 'vitest'
import { signChallenge } from '@mls/core'
import { SUITE, authenticate, expectCode, harness } from './helpers.js'

describe('auth: registration with proof of possession', () => {
  it('issues fresh 56-byte challenges (expiry, nonce, MAC)', async () => {
    const h = await harness()
    const a = h.services.auth.challenge()
    const b = h.services.auth.challenge()
    expect(a).toHaveLength(56)
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false)
  })

  it('registers an identity whose challenge signature verifies, binding its key', async () => {
    const h = await harness()
    const keys = await h.cs.signature.keygen()
    expect(await authenticate(h, 'alice/phone', keys, true)).toBe('alice/phone')
    const identity = await h.services.directory.lookupIdentity('bob/laptop', 'alice/phone')
    expect(identity).toEqual({ clientId: 'alice/phone', signaturePublicKey: keys.publicKey, ciphersuite: SUITE })
    expect(await authenticate(h, 'alice/phone', keys, true)).toBe('alice/phone')
    expect(await authenticate(h, 'alice/phone', keys, false)).toBe('alice/phone')
  })

  it('refuses a signature made with another key than the one presented, and registers nothing', async () => {
    const h = await harness()
    const keys = await h.cs.signature.keygen()
    const other = await h.cs.signature.keygen()
    await expectCode(authenticate(h, 'alice/phone', keys, true, { signWith: other.signKey }), 'AUTHENTICATION_FAILED')
    expect(await h.services.directory.lookupIdentity('x/y', 'alice/phone')).toBeUndefined()
  })

  it('refuses a signature over another client id (no replay of another identity’s proof)', async () => {
    const h = await harness()
    const keys = await h.cs.signature.keygen()
    await expectCode(authenticate(h, 'alice/phone', keys, true, { signAs: 'mallory/phone' }), 'AUTHENTICATION_FAILED')
  })

  it('accepts each challenge once, only if it issued it and before it expires', async () => {
    const h = await harness({ limits: { challengeTtlMs: 1000 } })
    const keys = await h.cs.signature.keygen()
    const credentials = { clientId: 'alice/phone', signaturePublicKey: keys.publicKey, ciphersuite: SUITE, register: true }
    const challenge = h.services.auth.challenge()
    const signature = await signChallenge(challenge, 'alice/phone', keys.signKey, h.cs)
    expect(await h.services.auth.authenticate(credentials, challenge, signature)).toBe('alice/phone')
    await expectCode(h.services.auth.authenticate(credentials, challenge, signature), 'AUTHENTICATION_FAILED')
    const made = globalThis.crypto.getRandomValues(new Uint8Array(32))
    await expectCode(h.services.auth.authenticate(credentials, made, await signChallenge(made, 'alice/phone', keys.signKey, h.cs)), 'AUTHENTICATION_FAILED')
    const late = h.services.auth.challenge()
    h.clock.now += 1001
    await expectCode(h.services.auth.authenticate(credentials, late, await signChallenge(late, 'alice/phone', keys.signKey, h.cs)), 'AUTHENTICATION_FAILED')
  })

  it('a flood of challenges cannot evict the one a slow client holds; a forged or altered one is refused', async () => {
    // Before stateless challenges, 10 000 newer ones evicted the oldest, and the slow client's login failed.
    const h = await harness({ limits: { maxPendingChallenges: 100 } })
    const keys = await h.cs.signature.keygen()
    const credentials = { clientId: 'slow/phone', signaturePublicKey: keys.publicKey, ciphersuite: SUITE, register: true }
    const held = h.services.auth.challenge()
    for (let i = 0; i < 20_000; i++) h.services.auth.challenge()
    const altered = h.services.auth.challenge()
    altered[10] = altered[10]! ^ 1
    await expectCode(h.services.auth.authenticate(credentials, altered, await signChallenge(altered, 'slow/phone', keys.signKey, h.cs)), 'AUTHENTICATION_FAILED')
    expect(await h.services.auth.authenticate(credentials, held, await signChallenge(held, 'slow/phone', keys.signKey, h.cs))).toBe('slow/phone')
  })

  it('verifies the signature over the server binding: a login signed for another server does not verify', async () => {
    const h = await harness()
    const keys = await h.cs.signature.keygen()
    const ours = { serverUrl: 'wss://chat.example/', serverKey: new Uint8Array(32).fill(1) }
    const challenge = h.services.auth.challenge()
    const signedForRelay = await signChallenge(challenge, 'alice/phone', keys.signKey, h.cs, { ...ours, serverUrl: 'wss://relay.example/' })
    const credentials = { clientId: 'alice/phone', signaturePublicKey: keys.publicKey, ciphersuite: SUITE, register: true, binding: ours }
    await expectCode(h.services.auth.authenticate(credentials, challenge, signedForRelay), 'AUTHENTICATION_FAILED')
    const next = h.services.auth.challenge()
    expect(await h.services.auth.authenticate(credentials, next, await signChallenge(next, 'alice/phone', keys.signKey, h.cs, ours))).toBe('alice/phone')
  })

  it('refuses to bind a registered identity to another key (IDENTITY_CONFLICT)', async () => {
    const h = await harness()
    const keys = await h.cs.signature.keygen()
    const attacker = await h.cs.signature.keygen()
    await authenticate(h, 'alice/phone', keys, true)
    await expectCode(authenticate(h, 'alice/phone', attacker, true), 'IDENTITY_CONFLICT')
    expect((await h.services.directory.lookupIdentity('x/y', 'alice/phone'))?.signaturePublicKey).toEqual(keys.publicKey)
  })

  it('logs in only a registered identity with its registered key', async () => {
    const h = await harness()
    const keys = await h.cs.signature.keygen()
    const attacker = await h.cs.signature.keygen()
    await expectCode(authenticate(h, 'alice/phone', keys, false), 'UNKNOWN_IDENTITY')
    await authenticate(h, 'alice/phone', keys, true)
    await expectCode(authenticate(h, 'alice/phone', attacker, false), 'AUTHENTICATION_FAILED')
    expect(await authenticate(h, 'alice/phone', keys, false)).toBe('alice/phone')
  })

  it('refuses malformed client ids, unaccepted ciphersuites and aborted calls', async () => {
    const h = await harness({ ciphersuites: [SUITE] })
    const keys = await h.cs.signature.keygen()
    await expectCode(authenticate(h, 'no-device', keys, true), 'INVALID_ARGUMENT')
    await expectCode(authenticate(h, 'a/b/c', keys, true), 'INVALID_ARGUMENT')
    const challenge = h.services.auth.challenge()
    const signature = await signChallenge(challenge, 'alice/phone', keys.signKey, h.cs)
    await expectCode(
      h.services.auth.authenticate(
        { clientId: 'alice/phone', signaturePublicKey: keys.publicKey, ciphersuite: 'MLS_256_DHKEMP384_AES256GCM_SHA384_P384', register: true },
        challenge,
        signature
      ),
      'UNSUPPORTED_CIPHERSUITE'
    )
    const controller = new AbortController()
    controller.abort()
    await expectCode(
      h.services.auth.authenticate({ clientId: 'alice/phone', signaturePublicKey: keys.publicKey, ciphersuite: SUITE, register: true }, challenge, signature, {
        signal: controller.signal
      }),
      'ABORTED'
    )
  })
})
