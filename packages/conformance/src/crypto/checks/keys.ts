import type { Hpke, Signature } from '@mls/core/mls'
import { constantTimeEqual, decryptWithLabel, encryptWithLabel } from '@mls/core/mls-internals'

/** Whether `privateKey` opens what is sealed to `publicKey`. */
export async function hpkeKeysMatch(publicKey: Uint8Array, privateKey: Uint8Array, hpke: Hpke): Promise<boolean> {
  const probe = crypto.getRandomValues(new Uint8Array(32))
  const context = new Uint8Array([1, 2, 3])
  const { ct, enc } = await encryptWithLabel(await hpke.importPublicKey(publicKey), 'key match', context, probe, hpke)
  const opened = await decryptWithLabel(await hpke.importPrivateKey(privateKey), 'key match', context, enc, ct, hpke)
  return constantTimeEqual(opened, probe)
}

/** Whether a signature made with `privateKey` verifies under `publicKey`. */
export async function signatureKeysMatch(publicKey: Uint8Array, privateKey: Uint8Array, signature: Signature): Promise<boolean> {
  const message = crypto.getRandomValues(new Uint8Array(32))
  return signature.verify(publicKey, message, await signature.sign(privateKey, message))
}

/**
 * Let pending I/O run. Synchronous providers resolve every promise at once,
 * so a long check would otherwise never hand control back to the event loop.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}
