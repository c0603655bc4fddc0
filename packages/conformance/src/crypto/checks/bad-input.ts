import { expect } from 'vitest'
import type { CiphersuiteImpl } from '@mls/core/mls'

export interface BadInputOptions {
  /** Accept a rejected promise, not only `false`, from `verify` on a malformed key or signature. */
  verifyMayReject?: boolean
}

function flip(bytes: Uint8Array, index: number): Uint8Array {
  const out = bytes.slice()
  out[index] = out[index]! ^ 0x01
  return out
}

async function rejectionName(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise
    return undefined
  } catch (e) {
    return (e as { name?: string }).name ?? 'unnamed error'
  }
}

/**
 * Malformed and tampered input: `verify` and `verifyMac` never accept (and
 * resolve `false` unless `verifyMayReject`); HPKE key imports, HPKE `open` and
 * AEAD decryption reject with ts-mls's `CryptoError`.
 */
export async function checkBadInput(cs: CiphersuiteImpl, options: BadInputOptions = {}): Promise<void> {
  const message: Uint8Array = new TextEncoder().encode('conformance: bad input')
  const { publicKey, signKey } = await cs.signature.keygen()
  const signature = await cs.signature.sign(signKey, message)
  expect(await cs.signature.verify(publicKey, message, signature), 'valid signature').toBe(true)

  const rejected = async (label: string, pk: Uint8Array, sig: Uint8Array, msg = message) => {
    const outcome = await cs.signature.verify(pk, msg, sig).then(
      (valid) => valid,
      () => 'rejected' as const
    )
    if (options.verifyMayReject === true) expect(outcome, label).not.toBe(true)
    else expect(outcome, label).toBe(false)
  }
  await rejected('truncated signature', publicKey, signature.subarray(0, signature.length - 1))
  await rejected('empty signature', publicKey, new Uint8Array())
  await rejected('altered signature', publicKey, flip(signature, signature.length >> 1))
  await rejected('other message', publicKey, signature, flip(message, 0))
  await rejected('truncated public key', publicKey.subarray(0, publicKey.length - 1), signature)
  await rejected('empty public key', new Uint8Array(), signature)
  await rejected('malformed public key', new Uint8Array(publicKey.length).fill(0xff), signature)

  const macKey = cs.rng.randomBytes(cs.kdf.size)
  const mac = await cs.hash.mac(macKey, message)
  expect(await cs.hash.verifyMac(macKey, mac, message), 'valid MAC').toBe(true)
  expect(await cs.hash.verifyMac(macKey, flip(mac, 0), message), 'altered MAC').toBe(false)
  expect(await cs.hash.verifyMac(macKey, mac.subarray(1), message), 'truncated MAC').toBe(false)

  const { privateKey, publicKey: hpkePublic } = await cs.hpke.generateKeyPair()
  const publicBytes = await cs.hpke.exportPublicKey(hpkePublic)
  const privateBytes = await cs.hpke.exportPrivateKey(privateKey)
  const info = new TextEncoder().encode('info')
  const aad = new TextEncoder().encode('aad')
  const sealed = await cs.hpke.seal(await cs.hpke.importPublicKey(publicBytes), message, info, aad)
  const reopened = await cs.hpke.open(await cs.hpke.importPrivateKey(privateBytes), sealed.enc, sealed.ct, info, aad)
  expect(reopened, 'HPKE round trip').toEqual(message)

  expect(await rejectionName(cs.hpke.importPublicKey(publicBytes.subarray(1))), 'truncated HPKE public key').toBe('CryptoError')
  expect(await rejectionName(cs.hpke.importPublicKey(new Uint8Array())), 'empty HPKE public key').toBe('CryptoError')
  // An uncompressed NIST point (P-256/384/521: 65, 97, 133 bytes); an X25519/X448 key may begin with 0x04 by chance.
  if (publicBytes[0] === 0x04 && [65, 97, 133].includes(publicBytes.length)) {
    expect(await rejectionName(cs.hpke.importPublicKey(flip(publicBytes, publicBytes.length - 1))), 'point off the curve').toBe(
      'CryptoError'
    )
  }
  expect(await rejectionName(cs.hpke.importPrivateKey(new Uint8Array(privateBytes.length + 8))), 'overlong HPKE private key').toBe(
    'CryptoError'
  )
  expect(await rejectionName(cs.hpke.open(privateKey, sealed.enc, flip(sealed.ct, 0), info, aad)), 'tampered HPKE ciphertext').toBe(
    'CryptoError'
  )
  expect(await rejectionName(cs.hpke.open(privateKey, sealed.enc, sealed.ct, info, flip(aad, 0))), 'tampered HPKE aad').toBe(
    'CryptoError'
  )
  expect(
    await rejectionName(cs.hpke.open(privateKey, flip(sealed.enc, sealed.enc.length - 1), sealed.ct, info, aad)),
    'tampered KEM output'
  ).toBe('CryptoError')
  expect(await rejectionName(cs.hpke.open(privateKey, sealed.enc.subarray(1), sealed.ct, info, aad)), 'truncated KEM output').toBe(
    'CryptoError'
  )

  const key = cs.rng.randomBytes(cs.hpke.keyLength)
  const nonce = cs.rng.randomBytes(cs.hpke.nonceLength)
  const ciphertext = await cs.hpke.encryptAead(key, nonce, aad, message)
  expect(await cs.hpke.decryptAead(key, nonce, aad, ciphertext), 'AEAD round trip').toEqual(message)
  expect(await rejectionName(cs.hpke.decryptAead(key, nonce, aad, flip(ciphertext, 0))), 'tampered AEAD ciphertext').toBe('CryptoError')
  expect(await rejectionName(cs.hpke.decryptAead(key, nonce, aad, flip(ciphertext, ciphertext.length - 1))), 'tampered AEAD tag').toBe(
    'CryptoError'
  )
  expect(await rejectionName(cs.hpke.decryptAead(key, nonce, flip(aad, 0), ciphertext)), 'tampered AEAD aad').toBe('CryptoError')
  expect(await rejectionName(cs.hpke.decryptAead(key, nonce, aad, ciphertext.subarray(0, 8))), 'truncated AEAD ciphertext').toBe(
    'CryptoError'
  )
}
