import { defineCryptoProvider, type CryptoProvider } from '@mls/core'
import type { CiphersuiteName } from '@mls/core/mls'
import {
  composeCiphersuiteImpl,
  type AeadPrimitive,
  type CryptoPrimitives,
  type DhPrimitive,
  type SignaturePrimitive
} from '@mls/crypto-kit'
import { gcm } from '@noble/ciphers/aes.js'
import sodium from 'libsodium-wrappers-sumo'

/**
 * The MLS ciphersuites `libsodiumCrypto()` implements. Suite 3 runs entirely
 * on libsodium; suite 1 takes AES-128-GCM from @noble/ciphers, because
 * libsodium has no AES-128-GCM.
 */
export const libsodiumCiphersuites: readonly CiphersuiteName[] = [
  'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519',
  'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'
]

const signingKeys = new Map<string, Uint8Array>()
const signingKeyCacheSize = 16

function expandedSigningKey(seed: Uint8Array): Uint8Array {
  if (seed.length === 64) return seed
  const id = sodium.to_base64(seed)
  let key = signingKeys.get(id)
  if (key === undefined) {
    key = sodium.crypto_sign_seed_keypair(seed).privateKey
    if (signingKeys.size >= signingKeyCacheSize) signingKeys.delete(signingKeys.keys().next().value!)
    signingKeys.set(id, key)
  }
  return key
}

const ed25519: SignaturePrimitive = {
  sign: (sk, message) => sodium.crypto_sign_detached(message, expandedSigningKey(sk)),
  verify: (pk, message, signature) =>
    pk.length === 32 && signature.length === 64 && sodium.crypto_sign_verify_detached(signature, message, pk),
  generateKeyPair() {
    const signKey = sodium.randombytes_buf(32)
    return { signKey, publicKey: sodium.crypto_sign_seed_keypair(signKey).publicKey }
  }
}

const x25519: DhPrimitive = {
  publicKey: (sk) => sodium.crypto_scalarmult_base(sk),
  sharedSecret: (sk, pk) => sodium.crypto_scalarmult(sk, pk),
  validatePublicKey(pk) {
    if (pk.length !== 32) throw new Error(`Invalid X25519 public key length ${pk.length}`)
  }
}

const chacha20poly1305: AeadPrimitive = {
  seal: (key, nonce, aad, plaintext) => sodium.crypto_aead_chacha20poly1305_ietf_encrypt(plaintext, aad, null, nonce, key),
  open: (key, nonce, aad, ciphertext) => sodium.crypto_aead_chacha20poly1305_ietf_decrypt(null, ciphertext, aad, nonce, key)
}

const aes128gcm: AeadPrimitive = {
  seal: (key, nonce, aad, plaintext) => gcm(key, nonce, aad).encrypt(plaintext),
  open: (key, nonce, aad, ciphertext) => gcm(key, nonce, aad).decrypt(ciphertext)
}

function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  const state = sodium.crypto_auth_hmacsha256_init(key)
  sodium.crypto_auth_hmacsha256_update(state, data)
  return sodium.crypto_auth_hmacsha256_final(state)
}

function unsupported(what: string): never {
  throw new Error(`libsodium provider does not implement ${what}`)
}

const primitives: CryptoPrimitives = {
  digest: (algorithm, data) => (algorithm === 'SHA-256' ? sodium.crypto_hash_sha256(data) : unsupported(algorithm)),
  hmac: (algorithm, key, data) => (algorithm === 'SHA-256' ? hmacSha256(key, data) : unsupported(`HMAC ${algorithm}`)),
  aead(algorithm) {
    if (algorithm === 'CHACHA20POLY1305') return chacha20poly1305
    if (algorithm === 'AES128GCM') return aes128gcm
    return unsupported(algorithm)
  },
  dh: (algorithm) => (algorithm === 'DHKEM-X25519-HKDF-SHA256' ? x25519 : unsupported(algorithm)),
  signature: (algorithm) => (algorithm === 'Ed25519' ? ed25519 : unsupported(algorithm)),
  randomBytes: (length) => sodium.randombytes_buf(length)
}

/**
 * A crypto provider on libsodium (WebAssembly, sumo build): X25519, Ed25519,
 * ChaCha20-Poly1305 IETF, SHA-256 and HMAC-SHA256, with HKDF and HPKE composed
 * on them. Suite 3 uses nothing else; suite 1 adds AES-128-GCM from
 * @noble/ciphers. libsodium is loaded on the first `getCiphersuiteImpl`.
 */
export function libsodiumCrypto(): CryptoProvider {
  return defineCryptoProvider({
    name: 'libsodium',
    ciphersuites: libsodiumCiphersuites,
    async getCiphersuiteImpl(cs) {
      await sodium.ready
      return composeCiphersuiteImpl(cs, primitives)
    }
  })
}
