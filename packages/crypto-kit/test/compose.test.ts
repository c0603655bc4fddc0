import { createCipheriv, createDecipheriv, createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman, randomBytes, sign, verify } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { getCiphersuiteFromName, getCiphersuiteImpl, type CiphersuiteImpl } from '@mls/core/mls'
import { composeCiphersuiteImpl, type CryptoPrimitives } from '../src/index.js'

// A provider built with the kit from node:crypto alone (ciphersuite 1: X25519, AES-128-GCM, SHA-256,
// Ed25519), checked against ts-mls's own default implementation of the same suite.

const SUITE = getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519')
const der = (prefix: string, key: Uint8Array) => Buffer.concat([Buffer.from(prefix, 'hex'), key])
const X25519_PRIVATE = '302e020100300506032b656e04220420'
const X25519_PUBLIC = '302a300506032b656e032100'
const ED25519_PRIVATE = '302e020100300506032b657004220420'
const ED25519_PUBLIC = '302a300506032b6570032100'
const rawPublic = (privateDer: Buffer) => new Uint8Array(createPublicKey(createPrivateKey({ key: privateDer, format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' }).subarray(-32))

const primitives: CryptoPrimitives = {
  digest: (_algorithm, data) => new Uint8Array(createHash('sha256').update(data).digest()),
  hmac: (_algorithm, key, data) => new Uint8Array(createHmac('sha256', key).update(data).digest()),
  aead: (algorithm) => {
    if (algorithm !== 'AES128GCM') throw new Error(`no ${algorithm}`)
    return {
      seal: (key, nonce, aad, plaintext) => {
        const cipher = createCipheriv('aes-128-gcm', key, nonce).setAAD(aad)
        return new Uint8Array(Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]))
      },
      open: (key, nonce, aad, ciphertext) => {
        const decipher = createDecipheriv('aes-128-gcm', key, nonce).setAAD(aad)
        decipher.setAuthTag(ciphertext.subarray(-16))
        return new Uint8Array(Buffer.concat([decipher.update(ciphertext.subarray(0, -16)), decipher.final()]))
      }
    }
  },
  dh: () => ({
    publicKey: (privateKey) => rawPublic(der(X25519_PRIVATE, privateKey)),
    sharedSecret: (privateKey, publicKey) =>
      new Uint8Array(
        diffieHellman({
          privateKey: createPrivateKey({ key: der(X25519_PRIVATE, privateKey), format: 'der', type: 'pkcs8' }),
          publicKey: createPublicKey({ key: der(X25519_PUBLIC, publicKey), format: 'der', type: 'spki' })
        })
      ),
    validatePublicKey: (publicKey) => {
      if (publicKey.length !== 32) throw new Error('not an X25519 public key')
    }
  }),
  signature: () => ({
    sign: (privateKey, message) => new Uint8Array(sign(null, message, createPrivateKey({ key: der(ED25519_PRIVATE, privateKey), format: 'der', type: 'pkcs8' }))),
    verify: (publicKey, message, signature) => {
      try {
        return verify(null, message, createPublicKey({ key: der(ED25519_PUBLIC, publicKey), format: 'der', type: 'spki' }), signature)
      } catch {
        return false
      }
    },
    generateKeyPair: () => {
      const signKey = new Uint8Array(randomBytes(32))
      return { signKey, publicKey: rawPublic(der(ED25519_PRIVATE, signKey)) }
    }
  }),
  randomBytes: (length) => new Uint8Array(randomBytes(length))
}

describe('composeCiphersuiteImpl', () => {
  it('builds a suite that interoperates with ts-mls’s default implementation: HPKE both ways, HKDF, signatures', async () => {
    const ours: CiphersuiteImpl = composeCiphersuiteImpl(SUITE, primitives)
    const theirs = await getCiphersuiteImpl(SUITE)
    const info = new TextEncoder().encode('info')
    const aad = new TextEncoder().encode('aad')
    const message = new TextEncoder().encode('a group secret')

    const ourKeys = await ours.hpke.generateKeyPair()
    const toUs = await theirs.hpke.seal(await theirs.hpke.importPublicKey(await ours.hpke.exportPublicKey(ourKeys.publicKey)), message, info, aad)
    expect(await ours.hpke.open(ourKeys.privateKey, toUs.enc, toUs.ct, info, aad)).toEqual(message)
    const theirKeys = await theirs.hpke.generateKeyPair()
    const toThem = await ours.hpke.seal(await ours.hpke.importPublicKey(await theirs.hpke.exportPublicKey(theirKeys.publicKey)), message, info, aad)
    expect(await theirs.hpke.open(theirKeys.privateKey, toThem.enc, toThem.ct, info, aad)).toEqual(message)
    const tampered = toThem.ct.slice()
    tampered[0]! ^= 1
    await expect(ours.hpke.open(await ours.hpke.importPrivateKey(await theirs.hpke.exportPrivateKey(theirKeys.privateKey)), toThem.enc, tampered, info, aad)).rejects.toThrow()

    const prk = await ours.kdf.extract(new Uint8Array(32), message)
    expect(prk).toEqual(await theirs.kdf.extract(new Uint8Array(32), message))
    expect(await ours.kdf.expand(prk, info, 42)).toEqual(await theirs.kdf.expand(prk, info, 42))

    const { signKey, publicKey } = await ours.signature.keygen()
    const signature = await ours.signature.sign(signKey, message)
    expect(await theirs.signature.verify(publicKey, message, signature)).toBe(true)
    expect(await ours.signature.verify(publicKey, info, signature)).toBe(false)
  })

  it('asks for each primitive when it composes, so a provider that lacks one fails there', () => {
    expect(() => composeCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519'), primitives)).toThrow(/no CHACHA20POLY1305/)
  })
})
