import * as nodeCryptoModule from 'node:crypto'
import {
  createCipheriv,
  createDecipheriv,
  createECDH,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  ECDH,
  generateKeyPairSync,
  randomFillSync,
  sign,
  verify,
  type CipherGCMTypes,
  type ECDH as EcdhObject,
  type KeyObject
} from 'node:crypto'
import { CLASSIC_CIPHERSUITES, defineCryptoProvider, type CryptoProvider } from '@mls/core'
import type { AeadAlgorithm, CiphersuiteName, HashAlgorithm } from '@mls/core/mls'
import {
  composeCiphersuiteImpl,
  type AeadPrimitive,
  type CryptoPrimitives,
  type DhKemAlgorithm,
  type DhPrimitive,
  type SignaturePrimitive
} from '@mls/crypto-kit'

/** The MLS ciphersuites `nodeCrypto()` implements: all of 1 to 7. */
export const nodeCiphersuites: readonly CiphersuiteName[] = CLASSIC_CIPHERSUITES

/** How many imported keys each cache keeps. Private-key caches stay small so secrets do not linger. */
export interface NodeCryptoInit {
  /** Imported public keys kept per algorithm (default 4096). */
  publicKeyCacheSize?: number
  /** Imported private keys kept per algorithm (default 32). */
  privateKeyCacheSize?: number
}

class KeyCache<T> {
  readonly #entries = new Map<string, T>()
  constructor(private readonly size: number) {}
  get(bytes: Uint8Array, create: () => T): T {
    if (this.size <= 0) return create()
    const id = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
    let value = this.#entries.get(id)
    if (value === undefined) {
      value = create()
      if (this.#entries.size >= this.size) this.#entries.delete(this.#entries.keys().next().value!)
      this.#entries.set(id, value)
    }
    return value
  }
}

const hashNames: Record<HashAlgorithm, string> = { 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' }

function copy(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer)
}

function view(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
}

type OneShotHash = (algorithm: string, data: Uint8Array, outputEncoding: 'buffer') => Buffer
const oneShotHash = (nodeCryptoModule as unknown as { hash?: OneShotHash }).hash

const digest: (algorithm: string, data: Uint8Array) => Uint8Array =
  oneShotHash !== undefined
    ? (algorithm, data) => view(oneShotHash(algorithm, data, 'buffer'))
    : (algorithm, data) => view(createHash(algorithm).update(data).digest())

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64url')
}

function fromB64url(text: string | undefined, length?: number): Uint8Array {
  const bytes = Buffer.from(text ?? '', 'base64url')
  if (length === undefined || bytes.length === length) return copy(bytes)
  const out = new Uint8Array(length)
  out.set(bytes, length - bytes.length)
  return out
}

const aeadNames: Record<AeadAlgorithm, CipherGCMTypes | 'chacha20-poly1305'> = {
  AES128GCM: 'aes-128-gcm',
  AES256GCM: 'aes-256-gcm',
  CHACHA20POLY1305: 'chacha20-poly1305'
}

function aead(algorithm: AeadAlgorithm): AeadPrimitive {
  const name = aeadNames[algorithm] as CipherGCMTypes
  return {
    seal(key, nonce, aad, plaintext) {
      const cipher = createCipheriv(name, key, nonce, { authTagLength: 16 })
      if (aad.length > 0) cipher.setAAD(aad)
      const body = cipher.update(plaintext)
      const tail = cipher.final()
      const out = new Uint8Array(body.length + tail.length + 16)
      out.set(body, 0)
      out.set(tail, body.length)
      out.set(cipher.getAuthTag(), body.length + tail.length)
      return out
    },
    open(key, nonce, aad, ciphertext) {
      if (ciphertext.length < 16) throw new Error('Ciphertext shorter than the authentication tag')
      const decipher = createDecipheriv(name, key, nonce, { authTagLength: 16 })
      decipher.setAuthTag(ciphertext.subarray(ciphertext.length - 16))
      if (aad.length > 0) decipher.setAAD(aad)
      const body = decipher.update(ciphertext.subarray(0, ciphertext.length - 16))
      const tail = decipher.final()
      const out = new Uint8Array(body.length + tail.length)
      out.set(body, 0)
      out.set(tail, body.length)
      return out
    }
  }
}

interface OkpCurve {
  crv: 'X25519' | 'X448' | 'Ed25519' | 'Ed448'
  keyLength: number
  pkcs8Prefix: string
}

const okpCurves = {
  X25519: { crv: 'X25519', keyLength: 32, pkcs8Prefix: '302e020100300506032b656e04220420' },
  X448: { crv: 'X448', keyLength: 56, pkcs8Prefix: '3046020100300506032b656f043a0438' },
  Ed25519: { crv: 'Ed25519', keyLength: 32, pkcs8Prefix: '302e020100300506032b657004220420' },
  Ed448: { crv: 'Ed448', keyLength: 57, pkcs8Prefix: '3047020100300506032b6571043b0439' }
} as const satisfies Record<string, OkpCurve>

interface ImportedPrivateKey {
  key: KeyObject
  publicKey: Uint8Array
}

function okpKeys(curve: OkpCurve, init: Required<NodeCryptoInit>) {
  const privateKeys = new KeyCache<ImportedPrivateKey>(init.privateKeyCacheSize)
  const publicKeys = new KeyCache<KeyObject>(init.publicKeyCacheSize)
  const importPrivate = (d: Uint8Array): KeyObject => {
    try {
      return createPrivateKey({ key: { kty: 'OKP', crv: curve.crv, d: b64url(d), x: '' }, format: 'jwk' })
    } catch {
      const der = Buffer.concat([Buffer.from(curve.pkcs8Prefix, 'hex'), d])
      return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })
    }
  }
  return {
    private(d: Uint8Array): ImportedPrivateKey {
      if (d.length !== curve.keyLength) throw new Error(`Invalid ${curve.crv} private key length ${d.length}`)
      return privateKeys.get(d, () => {
        const key = importPrivate(d)
        const publicKey = fromB64url(createPublicKey(key).export({ format: 'jwk' }).x)
        return { key, publicKey }
      })
    },
    public(x: Uint8Array): KeyObject {
      if (x.length !== curve.keyLength) throw new Error(`Invalid ${curve.crv} public key length ${x.length}`)
      return publicKeys.get(x, () => createPublicKey({ key: { kty: 'OKP', crv: curve.crv, x: b64url(x) }, format: 'jwk' }))
    }
  }
}

function assertNonZero(secret: Uint8Array): Uint8Array {
  let acc = 0
  for (const b of secret) acc |= b
  if (acc === 0) throw new Error('DH output is all zero')
  return secret
}

function okpDh(curve: OkpCurve, init: Required<NodeCryptoInit>): DhPrimitive {
  const keys = okpKeys(curve, init)
  return {
    publicKey: (sk) => keys.private(sk).publicKey.slice(),
    sharedSecret: (sk, pk) =>
      assertNonZero(copy(diffieHellman({ privateKey: keys.private(sk).key, publicKey: keys.public(pk) }))),
    validatePublicKey: (pk) => void keys.public(pk)
  }
}

function eddsa(curve: OkpCurve, init: Required<NodeCryptoInit>): SignaturePrimitive {
  const keys = okpKeys(curve, init)
  return {
    sign: (sk, message) => copy(sign(null, message, keys.private(sk).key)),
    verify(pk, message, signature) {
      try {
        return verify(null, message, keys.public(pk), signature)
      } catch {
        return false
      }
    },
    generateKeyPair() {
      const signKey = randomFillSync(new Uint8Array(curve.keyLength))
      return { signKey, publicKey: keys.private(signKey).publicKey.slice() }
    }
  }
}

interface NistCurve {
  crv: 'P-256' | 'P-384' | 'P-521'
  ecdhName: string
  hash: string
  coordinateLength: number
}

const nistCurves = {
  P256: { crv: 'P-256', ecdhName: 'prime256v1', hash: 'sha256', coordinateLength: 32 },
  P384: { crv: 'P-384', ecdhName: 'secp384r1', hash: 'sha384', coordinateLength: 48 },
  P521: { crv: 'P-521', ecdhName: 'secp521r1', hash: 'sha512', coordinateLength: 66 }
} as const satisfies Record<string, NistCurve>

function nistKeys(curve: NistCurve, init: Required<NodeCryptoInit>) {
  const ecdhObjects = new KeyCache<{ ecdh: EcdhObject; publicKey: Uint8Array }>(init.privateKeyCacheSize)
  const signingKeys = new KeyCache<KeyObject>(init.privateKeyCacheSize)
  const verifyingKeys = new KeyCache<KeyObject>(init.publicKeyCacheSize)
  const length = curve.coordinateLength
  const checkPublic = (pk: Uint8Array) => {
    if (pk.length !== 1 + 2 * length || pk[0] !== 0x04) throw new Error(`Invalid ${curve.crv} public key encoding`)
  }
  const ecdh = (key: Uint8Array) => {
    if (key.length === 0 || key.length > length) throw new Error(`Invalid ${curve.crv} private key length ${key.length}`)
    const d = key.length === length ? key : fromB64url(b64url(key), length)
    return ecdhObjects.get(d, () => {
      const ecdh = createECDH(curve.ecdhName)
      ecdh.setPrivateKey(d)
      return { ecdh, publicKey: copy(ecdh.getPublicKey()) }
    })
  }
  const jwkPublic = (pk: Uint8Array) => ({
    kty: 'EC',
    crv: curve.crv,
    x: b64url(pk.subarray(1, 1 + length)),
    y: b64url(pk.subarray(1 + length))
  })
  return {
    length,
    ecdh,
    checkPublic,
    validatePublic(pk: Uint8Array) {
      checkPublic(pk)
      ECDH.convertKey(pk, curve.ecdhName, undefined, undefined, 'uncompressed')
    },
    signing: (d: Uint8Array) =>
      signingKeys.get(d, () => {
        const publicKey = ecdh(d).publicKey
        return createPrivateKey({ key: { ...jwkPublic(publicKey), d: b64url(fromB64url(b64url(d), length)) }, format: 'jwk' })
      }),
    verifying(pk: Uint8Array) {
      checkPublic(pk)
      return verifyingKeys.get(pk, () => createPublicKey({ key: jwkPublic(pk), format: 'jwk' }))
    }
  }
}

function nistDh(curve: NistCurve, init: Required<NodeCryptoInit>): DhPrimitive {
  const keys = nistKeys(curve, init)
  return {
    publicKey: (sk) => keys.ecdh(sk).publicKey.slice(),
    sharedSecret(sk, pk) {
      keys.checkPublic(pk)
      return copy(keys.ecdh(sk).ecdh.computeSecret(pk))
    },
    validatePublicKey: (pk) => keys.validatePublic(pk)
  }
}

function ecdsa(curve: NistCurve, init: Required<NodeCryptoInit>): SignaturePrimitive {
  const keys = nistKeys(curve, init)
  return {
    sign: (sk, message) => copy(sign(curve.hash, message, { key: keys.signing(sk), dsaEncoding: 'der' })),
    verify(pk, message, signature) {
      try {
        return verify(curve.hash, message, { key: keys.verifying(pk), dsaEncoding: 'der' }, signature)
      } catch {
        return false
      }
    },
    generateKeyPair() {
      const jwk = generateKeyPairSync('ec', { namedCurve: curve.crv }).privateKey.export({ format: 'jwk' })
      const publicKey = new Uint8Array(1 + 2 * keys.length)
      publicKey[0] = 0x04
      publicKey.set(fromB64url(jwk.x, keys.length), 1)
      publicKey.set(fromB64url(jwk.y, keys.length), 1 + keys.length)
      return { signKey: fromB64url(jwk.d, keys.length), publicKey }
    }
  }
}

function makePrimitives(init: Required<NodeCryptoInit>): CryptoPrimitives {
  const dhByKem: Record<DhKemAlgorithm, () => DhPrimitive> = {
    'DHKEM-X25519-HKDF-SHA256': () => okpDh(okpCurves.X25519, init),
    'DHKEM-X448-HKDF-SHA512': () => okpDh(okpCurves.X448, init),
    'DHKEM-P256-HKDF-SHA256': () => nistDh(nistCurves.P256, init),
    'DHKEM-P384-HKDF-SHA384': () => nistDh(nistCurves.P384, init),
    'DHKEM-P521-HKDF-SHA512': () => nistDh(nistCurves.P521, init)
  }
  return {
    digest: (algorithm, data) => digest(hashNames[algorithm], data),
    hmac: (algorithm, key, data) => view(createHmac(hashNames[algorithm], key).update(data).digest()),
    aead,
    dh: (algorithm) => dhByKem[algorithm](),
    signature(algorithm) {
      switch (algorithm) {
        case 'Ed25519':
          return eddsa(okpCurves.Ed25519, init)
        case 'Ed448':
          return eddsa(okpCurves.Ed448, init)
        case 'P256':
        case 'P384':
        case 'P521':
          return ecdsa(nistCurves[algorithm], init)
        default:
          throw new Error(`Unsupported signature algorithm ${algorithm}`)
      }
    },
    randomBytes: (length) => randomFillSync(new Uint8Array(length))
  }
}

/**
 * A crypto provider on Node's own `node:crypto` (OpenSSL) for every
 * primitive: X25519/X448, Ed25519/Ed448, P-256/384/521 ECDH and ECDSA,
 * AES-GCM, ChaCha20-Poly1305, SHA-2 and HMAC, with HKDF and HPKE composed on
 * them. Calls are synchronous (wrapped in resolved promises) and imported
 * keys are cached by their bytes, so each key is imported once.
 */
export function nodeCrypto(init: NodeCryptoInit = {}): CryptoProvider {
  const primitives = makePrimitives({
    publicKeyCacheSize: init.publicKeyCacheSize ?? 4096,
    privateKeyCacheSize: init.privateKeyCacheSize ?? 32
  })
  return defineCryptoProvider({
    name: 'node',
    ciphersuites: nodeCiphersuites,
    getCiphersuiteImpl: async (cs) => composeCiphersuiteImpl(cs, primitives)
  })
}
