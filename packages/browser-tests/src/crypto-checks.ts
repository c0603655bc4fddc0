import { equalBytes, fromHex, toHex, type CryptoProvider } from '@mls/core'
import { getCiphersuiteFromName, type CiphersuiteImpl, type CiphersuiteName } from '@mls/core/mls'
import { assert, type Checks } from './result.js'

/** The suites the browser run covers: suite 1 (AES-128-GCM) and suite 3 (ChaCha20-Poly1305), both X25519/Ed25519/SHA-256. */
export const BROWSER_SUITES = {
  1: 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519',
  3: 'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519'
} as const satisfies Record<number, CiphersuiteName>

const text = (s: string): Uint8Array => new TextEncoder().encode(s)
const hex = (h: string): Uint8Array => fromHex(h.replace(/\s+/g, ''))

/** Resolve when `promise` rejects; throw if it resolves (the input was accepted). */
async function rejects(promise: Promise<unknown>, what: string): Promise<void> {
  let accepted = false
  try {
    await promise
    accepted = true
  } catch {
    // rejected, as required
  }
  assert(!accepted, `${what} was accepted`)
}

function tampered(bytes: Uint8Array, index = 0): Uint8Array {
  const copy = bytes.slice()
  copy[index] = copy[index]! ^ 0x01
  return copy
}

// Known answers: FIPS 180-2 (SHA-256 "abc"), RFC 4231 case 2 (HMAC-SHA256),
// RFC 5869 case 1 (HKDF-SHA256), RFC 8032 section 7.1 test 1 (Ed25519),
// GCM spec test case 2 (AES-128-GCM, zero key, nonce and block).
const SHA256_ABC = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
const HMAC_JEFE = '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'
const HKDF = {
  ikm: '0b'.repeat(22),
  salt: '000102030405060708090a0b0c',
  info: 'f0f1f2f3f4f5f6f7f8f9',
  prk: '077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5',
  okm: '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865'
}
const ED25519 = {
  secret: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
  public: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
  signature:
    'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'
}
const AES128GCM_ZERO = '0388dace60b6a392f328c2b971b2fe78' + 'ab6e47d42cec13bdf53a67b21257bddf'

/** Sanity checks of one provider on one suite, run where this code runs (the browser). */
export async function checkProvider(checks: Checks, provider: CryptoProvider, suiteNumber: keyof typeof BROWSER_SUITES): Promise<CiphersuiteImpl | undefined> {
  const suite = BROWSER_SUITES[suiteNumber]
  const label = `${provider.name} suite ${suiteNumber}`
  let cs: CiphersuiteImpl | undefined
  await checks.run(`${label}: getCiphersuiteImpl`, async () => {
    cs = await provider.getCiphersuiteImpl(getCiphersuiteFromName(suite))
    assert(cs.name === suite, `implementation is for ${cs.name}`)
  })
  if (cs === undefined) return undefined
  const impl = cs

  await checks.run(`${label}: SHA-256 and HMAC-SHA256 known answers`, async () => {
    assert(toHex(await impl.hash.digest(text('abc'))) === SHA256_ABC, 'SHA-256("abc") differs')
    const mac = await impl.hash.mac(text('Jefe'), text('what do ya want for nothing?'))
    assert(toHex(mac) === HMAC_JEFE, 'HMAC-SHA256 (RFC 4231 case 2) differs')
    assert(await impl.hash.verifyMac(text('Jefe'), mac, text('what do ya want for nothing?')), 'verifyMac refused a good MAC')
    assert(!(await impl.hash.verifyMac(text('Jefe'), tampered(mac), text('what do ya want for nothing?'))), 'verifyMac accepted a tampered MAC')
  })

  await checks.run(`${label}: HKDF-SHA256 known answer (RFC 5869 case 1)`, async () => {
    const prk = await impl.kdf.extract(hex(HKDF.salt), hex(HKDF.ikm))
    assert(toHex(prk) === HKDF.prk, 'HKDF-Extract differs')
    assert(toHex(await impl.kdf.expand(prk, hex(HKDF.info), 42)) === HKDF.okm, 'HKDF-Expand differs')
  })

  await checks.run(`${label}: Ed25519 known answer, sign/verify, tampered and truncated signatures refused`, async () => {
    const signature = await impl.signature.sign(hex(ED25519.secret), new Uint8Array(0))
    assert(toHex(signature) === ED25519.signature, 'RFC 8032 test 1 signature differs')
    assert(await impl.signature.verify(hex(ED25519.public), new Uint8Array(0), signature), 'RFC 8032 test 1 signature not verified')
    const keys = await impl.signature.keygen()
    const message = text(`signed in the browser by ${label}`)
    const sig = await impl.signature.sign(keys.signKey, message)
    assert(await impl.signature.verify(keys.publicKey, message, sig), 'fresh signature not verified')
    assert(!(await impl.signature.verify(keys.publicKey, tampered(message), sig)), 'signature over a tampered message accepted')
    assert(!(await impl.signature.verify(keys.publicKey, message, tampered(sig, 10))), 'tampered signature accepted')
    await rejects(
      impl.signature.verify(keys.publicKey, message, sig.subarray(0, 63)).then((ok) => {
        if (!ok) throw new Error('refused')
      }),
      'truncated signature'
    )
  })

  await checks.run(`${label}: AEAD round trip, tampered ciphertext and AAD rejected`, async () => {
    const key = impl.rng.randomBytes(impl.hpke.keyLength)
    const nonce = impl.rng.randomBytes(impl.hpke.nonceLength)
    const aad = text('additional data')
    const plaintext = text('the AEAD of the browser')
    const ct = await impl.hpke.encryptAead(key, nonce, aad, plaintext)
    assert(ct.length === plaintext.length + 16, `ciphertext length ${ct.length}`)
    assert(equalBytes(await impl.hpke.decryptAead(key, nonce, aad, ct), plaintext), 'AEAD round trip differs')
    await rejects(impl.hpke.decryptAead(key, nonce, aad, tampered(ct, 3)), 'tampered AEAD ciphertext')
    await rejects(impl.hpke.decryptAead(key, nonce, aad, tampered(ct, ct.length - 1)), 'AEAD ciphertext with a tampered tag')
    await rejects(impl.hpke.decryptAead(key, nonce, tampered(aad), ct), 'AEAD ciphertext with tampered AAD')
    if (suiteNumber === 1) {
      const zero = await impl.hpke.encryptAead(new Uint8Array(16), new Uint8Array(12), undefined, new Uint8Array(16))
      assert(toHex(zero) === AES128GCM_ZERO, 'AES-128-GCM known answer (GCM test case 2) differs')
    }
  })

  await checks.run(`${label}: HPKE seal/open round trip, tampered ciphertext and wrong key rejected`, async () => {
    const { privateKey, publicKey } = await impl.hpke.generateKeyPair()
    const info = text('browser hpke info')
    const aad = text('browser hpke aad')
    const plaintext = text('sealed to a fresh X25519 key in the browser')
    const exported = await impl.hpke.exportPublicKey(publicKey)
    assert(exported.length === 32, `X25519 public key length ${exported.length}`)
    const { ct, enc } = await impl.hpke.seal(await impl.hpke.importPublicKey(exported), plaintext, info, aad)
    assert(equalBytes(await impl.hpke.open(privateKey, enc, ct, info, aad), plaintext), 'HPKE round trip differs')
    await rejects(impl.hpke.open(privateKey, enc, tampered(ct, 5), info, aad), 'tampered HPKE ciphertext')
    await rejects(impl.hpke.open(privateKey, enc, ct, tampered(info), aad), 'HPKE ciphertext under another info')
    const other = await impl.hpke.generateKeyPair()
    await rejects(impl.hpke.open(other.privateKey, enc, ct, info, aad), 'HPKE ciphertext opened with another key')
  })

  await checks.run(`${label}: random bytes`, () => {
    const a = impl.rng.randomBytes(32)
    const b = impl.rng.randomBytes(32)
    assert(a.length === 32 && b.length === 32, 'wrong length')
    assert(!equalBytes(a, b) && a.some((x) => x !== 0), 'random bytes repeat or are zero')
  })

  return impl
}

/** The providers must interoperate in the browser: what one seals or signs, the other opens or verifies. */
export async function checkInterop(checks: Checks, a: { name: string; cs: CiphersuiteImpl }, b: { name: string; cs: CiphersuiteImpl }, suiteNumber: number): Promise<void> {
  const label = `${a.name} and ${b.name} suite ${suiteNumber}`
  await checks.run(`${label}: same AEAD ciphertext, HPKE and signatures across providers`, async () => {
    const key = a.cs.rng.randomBytes(a.cs.hpke.keyLength)
    const nonce = a.cs.rng.randomBytes(a.cs.hpke.nonceLength)
    const plaintext = text('interop')
    const ctA = await a.cs.hpke.encryptAead(key, nonce, undefined, plaintext)
    const ctB = await b.cs.hpke.encryptAead(key, nonce, undefined, plaintext)
    assert(equalBytes(ctA, ctB), 'AEAD ciphertexts differ')

    const recipient = await b.cs.hpke.generateKeyPair()
    const pk = await a.cs.hpke.importPublicKey(await b.cs.hpke.exportPublicKey(recipient.publicKey))
    const { ct, enc } = await a.cs.hpke.seal(pk, plaintext, text('info'), undefined)
    assert(equalBytes(await b.cs.hpke.open(recipient.privateKey, enc, ct, text('info'), undefined), plaintext), `HPKE from ${a.name} not opened by ${b.name}`)

    const keys = await b.cs.signature.keygen()
    const sig = await b.cs.signature.sign(keys.signKey, plaintext)
    assert(equalBytes(sig, await a.cs.signature.sign(keys.signKey, plaintext)), 'Ed25519 signatures differ (they are deterministic)')
    assert(await a.cs.signature.verify(keys.publicKey, plaintext, sig), `signature of ${b.name} not verified by ${a.name}`)
  })
}

/** A provider asked for a suite it does not implement refuses with UNSUPPORTED_CIPHERSUITE, no fallback. */
export async function checkUnsupported(checks: Checks, provider: CryptoProvider, suite: CiphersuiteName): Promise<void> {
  await checks.run(`${provider.name}: ${suite} refused with UNSUPPORTED_CIPHERSUITE`, async () => {
    assert(!provider.supports(suite), `${provider.name} claims ${suite}`)
    let code: unknown
    try {
      await provider.getCiphersuiteImpl(getCiphersuiteFromName(suite))
    } catch (error) {
      code = (error as { code?: unknown }).code
    }
    assert(code === 'UNSUPPORTED_CIPHERSUITE', `got ${String(code)}`)
  })
}
