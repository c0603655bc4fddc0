/**
 * The toolkit's crypto-provider kit: `composeCiphersuiteImpl` turns a
 * provider's synchronous primitives (hash, HMAC, AEAD, Diffie-Hellman,
 * signature, randomness) into the ts-mls `CiphersuiteImpl` that `@mls/core`
 * runs on: HKDF built on the provider's HMAC, and RFC 9180 HPKE (DHKEM, base
 * mode) built on its DH, HKDF and AEAD. The `@mls/crypto-*` packages use it so
 * that every primitive comes from their own library. Only crypto providers need
 * it, so it lives here rather than in `@mls/core`; the types come from core's
 * re-export of ts-mls (`@mls/core/mls`).
 */
import type {
  AeadAlgorithm,
  Ciphersuite,
  CiphersuiteImpl,
  Hash,
  HashAlgorithm,
  Hpke,
  Kdf,
  KdfAlgorithm,
  KemAlgorithm,
  PrivateKey,
  PublicKey,
  Signature,
  SignatureAlgorithm
} from '@mls/core/mls'
import { MlsCryptoError as CryptoError } from '@mls/core/mls'

/** The DH-based KEMs of RFC 9180 that MLS ciphersuites 1 to 7 use. */
export type DhKemAlgorithm = Extract<
  KemAlgorithm,
  'DHKEM-P256-HKDF-SHA256' | 'DHKEM-X25519-HKDF-SHA256' | 'DHKEM-X448-HKDF-SHA512' | 'DHKEM-P521-HKDF-SHA512' | 'DHKEM-P384-HKDF-SHA384'
>

/** An AEAD with a 16-byte tag appended to the ciphertext. `open` throws when authentication fails. */
export interface AeadPrimitive {
  /** Encrypt `plaintext`; returns the ciphertext with the tag appended. */
  seal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array): Uint8Array
  /** Decrypt a ciphertext with its tag; throws when authentication fails. */
  open(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, ciphertext: Uint8Array): Uint8Array
}

/**
 * Diffie-Hellman on one curve, on serialized keys (RFC 9180 section 7.1):
 * X25519/X448 keys are raw; NIST private keys are big-endian scalars of the
 * curve's full length and public keys uncompressed points.
 */
export interface DhPrimitive {
  /** The public key of `privateKey`. Throws if the private key is not valid for the curve. */
  publicKey(privateKey: Uint8Array): Uint8Array
  /** The DH shared secret (the x-coordinate for NIST curves). Throws on an invalid public key or an all-zero result. */
  sharedSecret(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array
  /** Throws if `publicKey` is not a valid public key encoding for the curve. */
  validatePublicKey(publicKey: Uint8Array): void
}

/** A signature scheme. `verify` returns false (never throws) on a malformed key or signature. */
export interface SignaturePrimitive {
  /** Sign `message` with a serialized private key. */
  sign(privateKey: Uint8Array, message: Uint8Array): Uint8Array
  /** Whether `signature` is valid for `message` under `publicKey`; `false` (never a throw) for malformed input. */
  verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean
  /** A fresh key pair, both keys serialized. */
  generateKeyPair(): {
    /** The public key. */
    publicKey: Uint8Array
    /** The private (signing) key. */
    signKey: Uint8Array
  }
}

/**
 * The synchronous primitives a provider supplies for one ciphersuite. Each
 * accessor is called once, when the suite is composed, and may throw for an
 * algorithm the provider does not implement.
 */
export interface CryptoPrimitives {
  /** The hash of `data`. */
  digest(algorithm: HashAlgorithm, data: Uint8Array): Uint8Array
  /** HMAC of `data` under `key` with the given hash. */
  hmac(algorithm: HashAlgorithm, key: Uint8Array, data: Uint8Array): Uint8Array
  /** The AEAD of the suite. */
  aead(algorithm: AeadAlgorithm): AeadPrimitive
  /** Diffie-Hellman on the suite's KEM curve. */
  dh(algorithm: DhKemAlgorithm): DhPrimitive
  /** The suite's signature scheme. */
  signature(algorithm: SignatureAlgorithm): SignaturePrimitive
  /** `length` bytes from a cryptographically secure generator. */
  randomBytes(length: number): Uint8Array
}

interface KemParameters {
  id: number
  hash: HashAlgorithm
  secretLength: number
  privateKeyLength: number
  publicKeyLength: number
  order?: bigint
  bitmask?: number
}

const kemParameters: Record<DhKemAlgorithm, KemParameters> = {
  'DHKEM-P256-HKDF-SHA256': {
    id: 0x10,
    hash: 'SHA-256',
    secretLength: 32,
    privateKeyLength: 32,
    publicKeyLength: 65,
    order: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    bitmask: 0xff
  },
  'DHKEM-P384-HKDF-SHA384': {
    id: 0x11,
    hash: 'SHA-384',
    secretLength: 48,
    privateKeyLength: 48,
    publicKeyLength: 97,
    order: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    bitmask: 0xff
  },
  'DHKEM-P521-HKDF-SHA512': {
    id: 0x12,
    hash: 'SHA-512',
    secretLength: 64,
    privateKeyLength: 66,
    publicKeyLength: 133,
    order:
      0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
    bitmask: 0x01
  },
  'DHKEM-X25519-HKDF-SHA256': { id: 0x20, hash: 'SHA-256', secretLength: 32, privateKeyLength: 32, publicKeyLength: 32 },
  'DHKEM-X448-HKDF-SHA512': { id: 0x21, hash: 'SHA-512', secretLength: 64, privateKeyLength: 56, publicKeyLength: 56 }
}

const kdfParameters: Record<KdfAlgorithm, { id: number; hash: HashAlgorithm }> = {
  'HKDF-SHA256': { id: 0x0001, hash: 'SHA-256' },
  'HKDF-SHA384': { id: 0x0002, hash: 'SHA-384' },
  'HKDF-SHA512': { id: 0x0003, hash: 'SHA-512' }
}

const aeadParameters: Record<AeadAlgorithm, { id: number; keyLength: number; nonceLength: number }> = {
  AES128GCM: { id: 0x0001, keyLength: 16, nonceLength: 12 },
  AES256GCM: { id: 0x0002, keyLength: 32, nonceLength: 12 },
  CHACHA20POLY1305: { id: 0x0003, keyLength: 32, nonceLength: 12 }
}

const hashLengths: Record<HashAlgorithm, number> = { 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 }

const encoder = new TextEncoder()
const empty: Uint8Array = new Uint8Array(0)

function concat(...parts: Uint8Array[]): Uint8Array {
  let length = 0
  for (const p of parts) length += p.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.length
  }
  return out
}

function i2osp(value: number, length: number): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = length - 1, v = value; i >= 0; i--, v = Math.floor(v / 256)) out[i] = v & 0xff
  return out
}

function bytesToBigInt(bytes: Uint8Array): bigint {
  let n = 0n
  for (const b of bytes) n = (n << 8n) | BigInt(b)
  return n
}

function constantTimeEquals(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  let diff = 0
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!
  return diff === 0
}

function cryptoError(message: string, cause: unknown): CryptoError {
  const reason = cause instanceof Error ? cause.message : String(cause)
  return new CryptoError(`${message}: ${reason}`)
}

interface Hkdf {
  extract(salt: Uint8Array, ikm: Uint8Array): Uint8Array
  expand(prk: Uint8Array, info: Uint8Array, length: number): Uint8Array
  size: number
}

function makeHkdf(primitives: CryptoPrimitives, hash: HashAlgorithm): Hkdf {
  const size = hashLengths[hash]
  return {
    size,
    extract: (salt, ikm) => primitives.hmac(hash, salt, ikm),
    expand(prk, info, length) {
      if (length > 255 * size) throw new CryptoError(`HKDF-Expand length ${length} too large`)
      const blocks = Math.ceil(length / size)
      if (blocks === 1) {
        const block = primitives.hmac(hash, prk, concat(info, Uint8Array.of(1)))
        return block.length === length ? block : block.slice(0, length)
      }
      const out = new Uint8Array(blocks * size)
      let previous: Uint8Array = empty
      for (let i = 1; i <= blocks; i++) {
        previous = primitives.hmac(hash, prk, concat(previous, info, Uint8Array.of(i)))
        out.set(previous, (i - 1) * size)
      }
      return out.slice(0, length)
    }
  }
}

interface Labeled {
  extract(salt: Uint8Array, label: string, ikm: Uint8Array): Uint8Array
  expand(prk: Uint8Array, label: string, info: Uint8Array, length: number): Uint8Array
}

function makeLabeled(hkdf: Hkdf, suiteId: Uint8Array): Labeled {
  const prefix = concat(encoder.encode('HPKE-v1'), suiteId)
  return {
    extract: (salt, label, ikm) => hkdf.extract(salt, concat(prefix, encoder.encode(label), ikm)),
    expand: (prk, label, info, length) => hkdf.expand(prk, concat(i2osp(length, 2), prefix, encoder.encode(label), info), length)
  }
}

interface HpkeKey {
  readonly type: 'public' | 'private'
  readonly bytes: Uint8Array
  readonly publicBytes: Uint8Array
}

function makeHpke(algorithm: Ciphersuite['hpke'], primitives: CryptoPrimitives): Hpke {
  const kemAlgorithm = algorithm.kem as DhKemAlgorithm
  const kem = kemParameters[kemAlgorithm]
  if (kem === undefined) throw new CryptoError(`Unsupported KEM ${algorithm.kem}`)
  const kdf = kdfParameters[algorithm.kdf]
  const aeadParams = aeadParameters[algorithm.aead]
  const dh = primitives.dh(kemAlgorithm)
  const aead = primitives.aead(algorithm.aead)
  const kemLabeled = makeLabeled(makeHkdf(primitives, kem.hash), concat(encoder.encode('KEM'), i2osp(kem.id, 2)))
  const hkdf = makeHkdf(primitives, kdf.hash)
  const labeled = makeLabeled(
    hkdf,
    concat(encoder.encode('HPKE'), i2osp(kem.id, 2), i2osp(kdf.id, 2), i2osp(aeadParams.id, 2))
  )
  const pskIdHash = labeled.extract(empty, 'psk_id_hash', empty)

  const publicKeyObject = (bytes: Uint8Array): PublicKey =>
    ({ type: 'public', bytes, publicBytes: bytes }) satisfies HpkeKey as unknown as PublicKey
  const privateKeyObject = (bytes: Uint8Array, publicBytes: Uint8Array): PrivateKey =>
    ({ type: 'private', bytes, publicBytes }) satisfies HpkeKey as unknown as PrivateKey
  const keyOf = (key: PublicKey | PrivateKey): HpkeKey => {
    const k = key as unknown as Partial<HpkeKey>
    if (!(k.bytes instanceof Uint8Array) || !(k.publicBytes instanceof Uint8Array)) {
      throw new CryptoError('HPKE key was not created by this provider')
    }
    return k as HpkeKey
  }

  const deriveKeyPair = (ikm: Uint8Array): { privateKey: PrivateKey; publicKey: PublicKey } => {
    const prk = kemLabeled.extract(empty, 'dkp_prk', ikm)
    let sk: Uint8Array | undefined
    if (kem.order === undefined) {
      sk = kemLabeled.expand(prk, 'sk', empty, kem.privateKeyLength)
    } else {
      for (let counter = 0; counter < 256 && sk === undefined; counter++) {
        const candidate = kemLabeled.expand(prk, 'candidate', Uint8Array.of(counter), kem.privateKeyLength)
        candidate[0] = candidate[0]! & kem.bitmask!
        const scalar = bytesToBigInt(candidate)
        if (scalar !== 0n && scalar < kem.order) sk = candidate
      }
      if (sk === undefined) throw new CryptoError('DeriveKeyPair failed')
    }
    const pk = dh.publicKey(sk)
    return { privateKey: privateKeyObject(sk, pk), publicKey: publicKeyObject(pk) }
  }

  const generateKeyPair = () => deriveKeyPair(primitives.randomBytes(kem.privateKeyLength))

  const extractAndExpand = (dhSecret: Uint8Array, kemContext: Uint8Array): Uint8Array =>
    kemLabeled.expand(kemLabeled.extract(empty, 'eae_prk', dhSecret), 'shared_secret', kemContext, kem.secretLength)

  const encap = (recipient: HpkeKey): { sharedSecret: Uint8Array; enc: Uint8Array } => {
    const ephemeral = generateKeyPair()
    const skE = keyOf(ephemeral.privateKey)
    const dhSecret = dh.sharedSecret(skE.bytes, recipient.bytes)
    const enc = skE.publicBytes
    return { sharedSecret: extractAndExpand(dhSecret, concat(enc, recipient.bytes)), enc }
  }

  const decap = (enc: Uint8Array, recipient: HpkeKey): Uint8Array => {
    if (enc.length !== kem.publicKeyLength) throw new CryptoError('Invalid KEM output length')
    dh.validatePublicKey(enc)
    const dhSecret = dh.sharedSecret(recipient.bytes, enc)
    return extractAndExpand(dhSecret, concat(enc, recipient.publicBytes))
  }

  const keySchedule = (sharedSecret: Uint8Array, info: Uint8Array) => {
    const context = concat(Uint8Array.of(0), pskIdHash, labeled.extract(empty, 'info_hash', info))
    const secret = labeled.extract(sharedSecret, 'secret', empty)
    return {
      key: () => labeled.expand(secret, 'key', context, aeadParams.keyLength),
      nonce: () => labeled.expand(secret, 'base_nonce', context, aeadParams.nonceLength),
      exporterSecret: () => labeled.expand(secret, 'exp', context, hkdf.size)
    }
  }

  const importPublicKeyBytes = (k: Uint8Array): PublicKey => {
    if (k.length !== kem.publicKeyLength) throw new CryptoError(`Invalid HPKE public key length ${k.length}`)
    dh.validatePublicKey(k)
    return publicKeyObject(k.slice())
  }

  return {
    async open(privateKey, kemOutput, ciphertext, info, aad) {
      try {
        const schedule = keySchedule(decap(kemOutput, keyOf(privateKey)), info)
        return aead.open(schedule.key(), schedule.nonce(), aad ?? empty, ciphertext)
      } catch (e) {
        throw e instanceof CryptoError ? e : cryptoError('HPKE open failed', e)
      }
    },
    async seal(publicKey, plaintext, info, aad) {
      try {
        const { sharedSecret, enc } = encap(keyOf(publicKey))
        const schedule = keySchedule(sharedSecret, info)
        return { ct: aead.seal(schedule.key(), schedule.nonce(), aad ?? empty, plaintext), enc }
      } catch (e) {
        throw e instanceof CryptoError ? e : cryptoError('HPKE seal failed', e)
      }
    },
    async exportSecret(publicKey, exporterContext, length, info) {
      try {
        const { sharedSecret, enc } = encap(keyOf(publicKey))
        const secret = labeled.expand(keySchedule(sharedSecret, info).exporterSecret(), 'sec', exporterContext, length)
        return { enc, secret }
      } catch (e) {
        throw e instanceof CryptoError ? e : cryptoError('HPKE export failed', e)
      }
    },
    async importSecret(privateKey, exporterContext, kemOutput, length, info) {
      try {
        const sharedSecret = decap(kemOutput, keyOf(privateKey))
        return labeled.expand(keySchedule(sharedSecret, info).exporterSecret(), 'sec', exporterContext, length)
      } catch (e) {
        throw e instanceof CryptoError ? e : cryptoError('HPKE import failed', e)
      }
    },
    async importPrivateKey(k) {
      try {
        let bytes = k
        if (kem.order !== undefined && k.length < kem.privateKeyLength) {
          bytes = concat(new Uint8Array(kem.privateKeyLength - k.length), k)
        }
        if (bytes.length !== kem.privateKeyLength) throw new CryptoError(`Invalid HPKE private key length ${k.length}`)
        if (kem.order !== undefined) {
          const scalar = bytesToBigInt(bytes)
          if (scalar === 0n || scalar >= kem.order) throw new CryptoError('Invalid HPKE private key scalar')
        }
        const copy = bytes.slice()
        return privateKeyObject(copy, dh.publicKey(copy))
      } catch (e) {
        throw e instanceof CryptoError ? e : cryptoError('Invalid HPKE private key', e)
      }
    },
    async importPublicKey(k) {
      try {
        return importPublicKeyBytes(k)
      } catch (e) {
        throw e instanceof CryptoError ? e : cryptoError('Invalid HPKE public key', e)
      }
    },
    async exportPublicKey(k) {
      return keyOf(k).publicBytes.slice()
    },
    async exportPrivateKey(k) {
      const key = keyOf(k)
      if (key.type !== 'private') throw new CryptoError('Not an HPKE private key')
      return key.bytes.slice()
    },
    async encryptAead(key, nonce, aad, plaintext) {
      return aead.seal(key, nonce, aad ?? empty, plaintext)
    },
    async decryptAead(key, nonce, aad, ciphertext) {
      try {
        return aead.open(key, nonce, aad ?? empty, ciphertext)
      } catch (e) {
        throw e instanceof CryptoError ? e : cryptoError('AEAD decryption failed', e)
      }
    },
    async deriveKeyPair(ikm) {
      return deriveKeyPair(ikm)
    },
    async generateKeyPair() {
      return generateKeyPair()
    },
    keyLength: aeadParams.keyLength,
    nonceLength: aeadParams.nonceLength
  }
}

const ed25519Pkcs8Prefix = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20)

function makeSignature(algorithm: SignatureAlgorithm, primitives: CryptoPrimitives): Signature {
  const s = primitives.signature(algorithm)
  const normalizeKey = (key: Uint8Array): Uint8Array =>
    algorithm === 'Ed25519' && key.length === 48 && constantTimeEquals(key.subarray(0, 16), ed25519Pkcs8Prefix) ? key.subarray(16) : key
  return {
    async sign(signKey, message) {
      try {
        return s.sign(normalizeKey(signKey), message)
      } catch (e) {
        throw e instanceof CryptoError ? e : cryptoError('Signing failed', e)
      }
    },
    async verify(publicKey, message, signature) {
      try {
        return s.verify(publicKey, message, signature)
      } catch {
        return false
      }
    },
    async keygen() {
      return s.generateKeyPair()
    }
  }
}

/**
 * Compose a ts-mls `CiphersuiteImpl` for `cs` from a provider's synchronous
 * primitives. HKDF is built on `hmac`; HPKE (RFC 9180, DHKEM, base mode) on
 * `dh`, HKDF and `aead`. HPKE keys are opaque objects of this composition
 * (typed as ts-mls `PublicKey`/`PrivateKey`), only ever passed back into it.
 *
 * Errors follow ts-mls's default provider: HPKE `open`, key imports and
 * `decryptAead` reject with ts-mls's `CryptoError`; `verify` and `verifyMac`
 * resolve `false` on malformed input.
 */
export function composeCiphersuiteImpl(cs: Ciphersuite, primitives: CryptoPrimitives): CiphersuiteImpl {
  const hashAlgorithm = cs.hash
  const hash: Hash = {
    async digest(data) {
      return primitives.digest(hashAlgorithm, data)
    },
    async mac(key, data) {
      return primitives.hmac(hashAlgorithm, key, data)
    },
    async verifyMac(key, mac, data) {
      return constantTimeEquals(mac, primitives.hmac(hashAlgorithm, key, data))
    }
  }
  const hkdf = makeHkdf(primitives, kdfParameters[cs.hpke.kdf].hash)
  const kdf: Kdf = {
    async extract(salt, ikm) {
      return hkdf.extract(salt, ikm)
    },
    async expand(prk, info, length) {
      return hkdf.expand(prk, info, length)
    },
    size: hkdf.size
  }
  return {
    hash,
    kdf,
    hpke: makeHpke(cs.hpke, primitives),
    signature: makeSignature(cs.signature, primitives),
    rng: { randomBytes: (n) => primitives.randomBytes(n) },
    name: cs.name
  }
}
