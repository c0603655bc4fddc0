import type { CiphersuiteImpl } from 'ts-mls'
import { signWithLabel, verifyWithLabel } from 'ts-mls/crypto/signature.js'
import type { ClientId } from './interfaces/common.js'
import type { ServerBinding } from './interfaces/transport.js'
import { concatBytes, utf8 } from './bytes.js'

/**
 * SignWithLabel label of connection challenges ("MLS 1.0 " is prefixed by SignWithLabel).
 * Version 2 signs the server binding too (docs/protocol.md, section 3).
 */
export const AUTH_LABEL = 'mls-toolkit session v2'

const NO_BINDING: ServerBinding = { serverUrl: '', serverKey: new Uint8Array(0) }

/**
 * What a client signs to prove possession of its key: length-prefixed
 * challenge || client id || the URL it dialled || the key the server proved.
 * The binding makes a signature worthless at any other server: a relay that
 * passes a real server's challenge through gets a login naming the relay's URL.
 */
export function authenticationContent(challenge: Uint8Array, clientId: ClientId, binding: ServerBinding = NO_BINDING): Uint8Array {
  const id = utf8.encode(clientId)
  const url = utf8.encode(binding.serverUrl)
  const header = new Uint8Array(8)
  const view = new DataView(header.buffer)
  view.setUint16(0, challenge.length)
  view.setUint16(2, id.length)
  view.setUint16(4, url.length)
  view.setUint16(6, binding.serverKey.length)
  return concatBytes(header, challenge, id, url, binding.serverKey)
}

/** A connection challenge's signature: SignWithLabel(`AUTH_LABEL`, `authenticationContent(challenge, clientId)`). */
export function signChallenge(
  challenge: Uint8Array,
  clientId: ClientId,
  signaturePrivateKey: Uint8Array,
  cs: CiphersuiteImpl,
  binding?: ServerBinding
): Promise<Uint8Array> {
  return signWithLabel(signaturePrivateKey, AUTH_LABEL, authenticationContent(challenge, clientId, binding), cs.signature)
}

/** Whether `signature` is `signChallenge`'s signature by `signaturePublicKey`; `false` (never a throw) for malformed input. */
export async function verifyChallenge(
  challenge: Uint8Array,
  clientId: ClientId,
  signaturePublicKey: Uint8Array,
  signature: Uint8Array,
  cs: CiphersuiteImpl,
  binding?: ServerBinding
): Promise<boolean> {
  try {
    return await verifyWithLabel(signaturePublicKey, AUTH_LABEL, authenticationContent(challenge, clientId, binding), signature, cs.signature)
  } catch {
    return false
  }
}
