import { describe, expect, it } from 'vitest'
import { SignJWT, generateKeyPair } from 'jose'
import { jwtAuthentication } from '../src/index.js'

const claim = (userId: string, proof: string | Uint8Array) => ({
  userId,
  clientId: `${userId}/phone`,
  signaturePublicKey: new Uint8Array(32),
  ciphersuite: 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519',
  proof: typeof proof === 'string' ? new TextEncoder().encode(proof) : proof
})

describe('jwtAuthentication', () => {
  it('accepts a fresh token for the user and refuses stale, unsigned, wrong-audience or wrong-algorithm ones', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256')
    const hook = jwtAuthentication({ key: publicKey, algorithms: ['ES256'], audience: 'mls.example' })
    const now = Math.floor(Date.now() / 1000)
    const token = (claims: { sub?: string; aud?: string; iat?: number }) => {
      const jwt = new SignJWT({}).setProtectedHeader({ alg: 'ES256' })
      if (claims.sub !== undefined) jwt.setSubject(claims.sub)
      if (claims.aud !== undefined) jwt.setAudience(claims.aud)
      if (claims.iat !== undefined) jwt.setIssuedAt(claims.iat)
      return jwt.sign(privateKey)
    }
    expect(await hook.authorizeClaim!(claim('alice', await token({ sub: 'alice', aud: 'mls.example', iat: now })))).toBe(true)
    expect(await hook.authorizeClaim!(claim('alice', await token({ sub: 'bob', aud: 'mls.example', iat: now })))).toBe(false)
    expect(await hook.authorizeClaim!(claim('alice', await token({ sub: 'alice', aud: 'other', iat: now })))).toBe(false)
    expect(await hook.authorizeClaim!(claim('alice', await token({ sub: 'alice', aud: 'mls.example', iat: now - 3600 })))).toBe(false)
    expect(await hook.authorizeClaim!(claim('alice', await token({ sub: 'alice', aud: 'mls.example' })))).toBe(false)
    const unsigned = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'alice', aud: 'mls.example', iat: now })).toString('base64url')}.`
    expect(await hook.authorizeClaim!(claim('alice', unsigned))).toBe(false)
    expect(await hook.authorizeClaim!(claim('alice', new Uint8Array([0xff, 0xfe])))).toBe(false)
    expect(await hook.authorizeClaim!(claim('alice', new Uint8Array(0)))).toBe(false)
    expect(() => jwtAuthentication({ key: publicKey, algorithms: [] })).toThrow(TypeError)
  })
})
