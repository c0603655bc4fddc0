import type { CiphersuiteImpl } from 'ts-mls'
import { signWithLabel, verifyWithLabel } from 'ts-mls/crypto/signature.js'
import type { ClientId } from './interfaces/common.js'
import { concatBytes, utf8 } from './bytes.js'

/** SignWithLabel label of connection challenges ("MLS 1.0 " is prefixed by SignWithLabel). */
export const AUTH_LABEL = 'mls-toolkit session v1'

/** Length-prefixed challenge || client id: what a client signs to prove possession of its key. */
export function authenticationContent(challenge: Uint8Array, clientId: ClientId): Uint8Array {
  const id = utf8.encode(clientId)
  const header = new Uint8Array(4)
  new DataView(header.buffer).setUint16(0, challenge.length)
  new DataView(header.buffer).setUint16(2, id.length)
  return concatBytes(header, challenge, id)
}

/** A connection challenge's signature: SignWithLabel(`AUTH_LABEL`, `authenticationContent(challenge, clientId)`). */
export function signChallenge(
  challenge: Uint8Array,
  clientId: ClientId,
  signaturePrivateKey: Uint8Array,
  cs: CiphersuiteImpl
): Promise<Uint8Array> {
  return signWithLabel(signaturePrivateKey, AUTH_LABEL, authenticationContent(challenge, clientId), cs.signature)
}

/** Whether `signature` is `signChallenge`'s signature by `signaturePublicKey`; `false` (never a throw) for malformed input. */
export async function verifyChallenge(
  challenge: Uint8Array,
  clientId: ClientId,
  signaturePublicKey: Uint8Array,
  signature: Uint8Array,
  cs: CiphersuiteImpl
): Promise<boolean> {
  try {
    return await verifyWithLabel(signaturePublicKey, AUTH_LABEL, authenticationContent(challenge, clientId), signature, cs.signature)
  } catch {
    return false
  }
}
