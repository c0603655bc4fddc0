import type { ClientId, IdentityRecord, KeyPackageRecord } from '@mls/core/interfaces'
import { equalBytes, toHex, type CredentialValidator } from '@mls/core'
import { decodeKeyPackage, makeKeyPackageRef, verifyKeyPackage, verifyLeafNodeSignatureKeyPackage, type KeyPackage } from '@mls/core/mls'
import type { ServiceLimits } from './limits.js'
import { decodeMessage, type Suites } from './suites.js'

export class KeyPackageRejection extends Error {}

function reject(reason: string): never {
  throw new KeyPackageRejection(reason)
}

const MAX_NOT_AFTER = BigInt(Number.MAX_SAFE_INTEGER)

/** Validate one uploaded KeyPackage of `caller`; throws `KeyPackageRejection` with a reason. */
export async function validateKeyPackage(
  bytes: Uint8Array,
  context: {
    caller: ClientId
    identity: IdentityRecord
    suites: Suites
    limits: ServiceLimits
    nowSeconds: number
    lastResort: boolean
    validator: CredentialValidator
  }
): Promise<KeyPackageRecord> {
  const { caller, identity, suites, limits, nowSeconds } = context
  if (!(bytes instanceof Uint8Array)) reject('not bytes')
  if (bytes.length > limits.maxKeyPackageBytes) reject(`larger than ${limits.maxKeyPackageBytes} bytes`)
  const { keyPackage: kp, framed } = readKeyPackage(bytes)
  if (kp.version !== 'mls10') reject('protocol version is not mls10')
  if (!suites.isAccepted(kp.cipherSuite)) reject(`ciphersuite ${String(kp.cipherSuite)} is not accepted`)
  const leaf = kp.leafNode
  if (leaf.leafNodeSource !== 'key_package') reject('leaf node source is not key_package')
  const now = BigInt(nowSeconds)
  if (leaf.lifetime.notBefore > now + BigInt(limits.keyPackageClockSkewSeconds)) reject('not valid yet (not_before is in the future)')
  if (leaf.lifetime.notAfter < now) reject('expired (not_after is in the past)')
  if (leaf.lifetime.notAfter < leaf.lifetime.notBefore) reject('lifetime ends before it starts')
  if (equalBytes(kp.initKey, leaf.hpkePublicKey)) reject('init_key equals the leaf encryption_key')
  const named = context.validator.clientIdFromCredential(leaf.credential)
  if (named === undefined) reject(`credential is not accepted by the '${context.validator.name}' credential validator (by default: a basic credential naming a client id)`)
  if (named !== caller) reject(`credential names ${named === undefined ? 'no valid client id' : JSON.stringify(named)}, not the caller ${JSON.stringify(caller)}`)
  if (!equalBytes(leaf.signaturePublicKey, identity.signaturePublicKey)) reject('signature key is not the caller’s registered key')
  const impl = await suites.impl(kp.cipherSuite)
  if (!(await safely(() => verifyLeafNodeSignatureKeyPackage(leaf, impl.signature)))) reject('leaf node signature does not verify')
  if (!(await safely(() => verifyKeyPackage(kp, impl.signature)))) reject('KeyPackage signature does not verify')
  const ref = toHex(await makeKeyPackageRef(kp, impl.hash))
  const notAfter = Number(leaf.lifetime.notAfter > MAX_NOT_AFTER ? MAX_NOT_AFTER : leaf.lifetime.notAfter)
  return { ref, clientId: caller, keyPackage: framed, lastResort: context.lastResort, notAfter }
}

/** MLSMessage framing of a KeyPackage: version mls10 (1), wire format mls_key_package (5). */
const KEY_PACKAGE_FRAME = Uint8Array.of(0, 1, 0, 5)

/**
 * Read an uploaded KeyPackage in either framing implementations use: an
 * MLSMessage (wire format mls_key_package; what the toolkit publishes) or the
 * bare KeyPackage structure (what OpenMLS serialises, docs/interop.md). Either
 * way the Directory stores and serves the MLSMessage, its bytes otherwise
 * exactly as uploaded. Trailing bytes are refused in both framings.
 */
function readKeyPackage(bytes: Uint8Array): { keyPackage: KeyPackage; framed: Uint8Array } {
  const message = decodeMessage(bytes)
  if (message !== undefined) {
    if (message.wireformat !== 'mls_key_package') reject(`wire format ${message.wireformat}, expected mls_key_package`)
    if (message.version !== 'mls10') reject('protocol version is not mls10')
    return { keyPackage: message.keyPackage, framed: bytes.slice() }
  }
  let bare: [KeyPackage, number] | undefined
  try {
    bare = decodeKeyPackage(bytes, 0)
  } catch {
    bare = undefined
  }
  if (bare === undefined || bare[1] !== bytes.length) reject('neither a decodable MLSMessage nor a bare KeyPackage')
  const framed = new Uint8Array(KEY_PACKAGE_FRAME.length + bytes.length)
  framed.set(KEY_PACKAGE_FRAME)
  framed.set(bytes, KEY_PACKAGE_FRAME.length)
  return { keyPackage: bare[0], framed }
}

async function safely(check: () => Promise<boolean>): Promise<boolean> {
  try {
    return await check()
  } catch {
    return false
  }
}
