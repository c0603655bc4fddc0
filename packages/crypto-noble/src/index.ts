import { CLASSIC_CIPHERSUITES, defineCryptoProvider, type CryptoProvider } from '@mls/core'
import type { CiphersuiteName, HashAlgorithm, SignatureAlgorithm } from '@mls/core/mls'
import {
  composeCiphersuiteImpl,
  type AeadPrimitive,
  type CryptoPrimitives,
  type DhKemAlgorithm,
  type DhPrimitive,
  type SignaturePrimitive
} from '@mls/crypto-kit'
import { gcm } from '@noble/ciphers/aes.js'
import { chacha20poly1305 } from '@noble/ciphers/chacha.js'
import { ed25519, x25519 } from '@noble/curves/ed25519.js'
import { ed448, x448 } from '@noble/curves/ed448.js'
import { p256, p384, p521 } from '@noble/curves/nist.js'
import { hmac } from '@noble/hashes/hmac.js'
import { sha256, sha384, sha512 } from '@noble/hashes/sha2.js'
import { randomBytes } from '@noble/hashes/utils.js'

/** The MLS ciphersuites `nobleCrypto()` implements: all of 1 to 7. */
export const nobleCiphersuites: readonly CiphersuiteName[] = CLASSIC_CIPHERSUITES

const hashes = { 'SHA-256': sha256, 'SHA-384': sha384, 'SHA-512': sha512 } as const

const gcmAead: AeadPrimitive = {
  seal: (key, nonce, aad, plaintext) => gcm(key, nonce, aad).encrypt(plaintext),
  open: (key, nonce, aad, ciphertext) => gcm(key, nonce, aad).decrypt(ciphertext)
}

const chachaAead: AeadPrimitive = {
  seal: (key, nonce, aad, plaintext) => chacha20poly1305(key, nonce, aad).encrypt(plaintext),
  open: (key, nonce, aad, ciphertext) => chacha20poly1305(key, nonce, aad).decrypt(ciphertext)
}

function assertNonZero(secret: Uint8Array): Uint8Array {
  let acc = 0
  for (const b of secret) acc |= b
  if (acc === 0) throw new Error('DH output is all zero')
  return secret
}

function montgomeryDh(curve: typeof x25519, length: number): DhPrimitive {
  const validatePublicKey = (pk: Uint8Array) => {
    if (pk.length !== length) throw new Error(`Invalid public key length ${pk.length}`)
  }
  return {
    publicKey: (sk) => curve.getPublicKey(sk),
    sharedSecret(sk, pk) {
      validatePublicKey(pk)
      return assertNonZero(curve.getSharedSecret(sk, pk))
    },
    validatePublicKey
  }
}

function weierstrassDh(curve: typeof p256): DhPrimitive {
  const validatePublicKey = (pk: Uint8Array) => {
    if (pk[0] !== 0x04 || !curve.utils.isValidPublicKey(pk, false)) throw new Error('Invalid public key')
  }
  return {
    publicKey: (sk) => curve.getPublicKey(sk, false),
    sharedSecret(sk, pk) {
      validatePublicKey(pk)
      return curve.getSharedSecret(sk, pk, true).slice(1)
    },
    validatePublicKey
  }
}

function eddsa(curve: typeof ed25519, secretKeyLength: number): SignaturePrimitive {
  return {
    sign: (sk, message) => curve.sign(message, sk),
    verify: (pk, message, signature) => curve.verify(signature, message, pk),
    generateKeyPair() {
      const signKey = randomBytes(secretKeyLength)
      return { signKey, publicKey: curve.getPublicKey(signKey) }
    }
  }
}

function ecdsa(curve: typeof p256): SignaturePrimitive {
  const options = { prehash: true, format: 'der', lowS: false } as const
  return {
    sign: (sk, message) => curve.sign(message, sk, options),
    verify: (pk, message, signature) => curve.verify(signature, message, pk, options),
    generateKeyPair() {
      const signKey = curve.utils.randomSecretKey()
      return { signKey, publicKey: curve.getPublicKey(signKey, false) }
    }
  }
}

const dhByKem: Record<DhKemAlgorithm, () => DhPrimitive> = {
  'DHKEM-X25519-HKDF-SHA256': () => montgomeryDh(x25519, 32),
  'DHKEM-X448-HKDF-SHA512': () => montgomeryDh(x448, 56),
  'DHKEM-P256-HKDF-SHA256': () => weierstrassDh(p256),
  'DHKEM-P384-HKDF-SHA384': () => weierstrassDh(p384),
  'DHKEM-P521-HKDF-SHA512': () => weierstrassDh(p521)
}

const signatureByAlgorithm: Partial<Record<SignatureAlgorithm, () => SignaturePrimitive>> = {
  Ed25519: () => eddsa(ed25519, 32),
  Ed448: () => eddsa(ed448, 57),
  P256: () => ecdsa(p256),
  P384: () => ecdsa(p384),
  P521: () => ecdsa(p521)
}

const primitives: CryptoPrimitives = {
  digest: (algorithm: HashAlgorithm, data) => hashes[algorithm](data),
  hmac: (algorithm: HashAlgorithm, key, data) => hmac(hashes[algorithm], key, data),
  aead: (algorithm) => (algorithm === 'CHACHA20POLY1305' ? chachaAead : gcmAead),
  dh: (algorithm) => dhByKem[algorithm](),
  signature(algorithm) {
    const make = signatureByAlgorithm[algorithm]
    if (make === undefined) throw new Error(`Unsupported signature algorithm ${algorithm}`)
    return make()
  },
  randomBytes: (length) => randomBytes(length)
}

/**
 * A crypto provider in pure JavaScript: noble hashes (SHA-2, HMAC), noble
 * curves (X25519, X448, P-256/384/521, Ed25519, Ed448, ECDSA) and noble
 * ciphers (AES-GCM, ChaCha20-Poly1305), with HKDF and HPKE composed on them.
 * It uses no WebCrypto (only `crypto.getRandomValues`), so it runs in Node,
 * browsers and React Native alike.
 */
export function nobleCrypto(): CryptoProvider {
  return defineCryptoProvider({
    name: 'noble',
    ciphersuites: nobleCiphersuites,
    getCiphersuiteImpl: async (cs) => composeCiphersuiteImpl(cs, primitives)
  })
}
