import type { CiphersuiteImpl, CiphersuiteName, KeyPackage } from 'ts-mls'
import { decodeMlsMessage } from 'ts-mls'
import { decodeKeyPackage, verifyKeyPackage } from 'ts-mls/keyPackage.js'
import { verifyLeafNodeSignatureKeyPackage } from 'ts-mls/leafNode.js'
import type { ClientStore } from './interfaces/client-store.js'
import type { ClientId } from './interfaces/common.js'
import { MessageError } from './errors.js'
import { equalBytes, toHex } from './bytes.js'
import { encodeRecord } from './records.js'
import type { CredentialValidator } from './identity.js'
import type { ValidatedKeyPackage } from './group-types.js'

/**
 * A device the app vouches for: a client outside the toolkit's signed device
 * lists (another implementation's client, docs/interop.md) whose credential
 * and signature key the app checked by its own means. Every member's
 * Authentication Service accepts a credential naming `clientId` with exactly
 * this key, as it accepts a device of a verified device list.
 */
export interface VouchedDevice {
  /** The device's client id, as the client's credential validator reads it. */
  readonly clientId: ClientId
  /** The signature key its credential is presented with. */
  readonly signaturePublicKey: Uint8Array
}

/** Why a KeyPackage handed in from outside the Directory was refused (`KEY_PACKAGE_INVALID`, `details.reason`). */
export type KeyPackageRefusal = 'malformed' | 'version' | 'ciphersuite' | 'credential' | 'lifetime' | 'capabilities' | 'init-key' | 'signature'

/** Store keys of vouches: one record per device and key. */
export const vouchKeys = {
  prefix: 'vouched/',
  of: (clientId: ClientId, signaturePublicKey: Uint8Array) => `vouched/${encodeURIComponent(clientId)}/${toHex(signaturePublicKey)}`
}

/** Lifetimes may start up to this much in the future (clock skew between devices). */
const CLOCK_SKEW_SECONDS = 3600n

function refuse(reason: KeyPackageRefusal, message: string): never {
  throw new MessageError('KEY_PACKAGE_INVALID', message, { details: { reason } })
}

/** MLSMessage framing of a KeyPackage (what the toolkit publishes) or the bare structure (what OpenMLS hands out). */
function readKeyPackage(bytes: Uint8Array): KeyPackage {
  let framed: KeyPackage | undefined
  try {
    const decoded = decodeMlsMessage(bytes, 0)
    if (decoded !== undefined && decoded[1] === bytes.length && decoded[0].wireformat === 'mls_key_package') framed = decoded[0].keyPackage
  } catch {
    framed = undefined
  }
  if (framed !== undefined) return framed
  let bare: [KeyPackage, number] | undefined
  try {
    bare = decodeKeyPackage(bytes, 0)
  } catch {
    bare = undefined
  }
  if (bare === undefined || bare[1] !== bytes.length) refuse('malformed', 'Neither a KeyPackage MLSMessage nor a bare KeyPackage')
  return bare[0]
}

async function verifies(check: () => Promise<boolean>): Promise<boolean> {
  try {
    return await check()
  } catch {
    return false
  }
}

/**
 * Validate a KeyPackage obtained outside the Directory (either framing), with
 * the checks of the Directory path: protocol version, this client's
 * ciphersuite, a credential the validator reads as a client id, the lifetime
 * (now within it, up to an hour of clock skew), capabilities that cover the
 * version, suite and credential type, an init key distinct from the leaf key,
 * and both signatures. Throws `KEY_PACKAGE_INVALID` (`details.reason` a
 * `KeyPackageRefusal`).
 */
export async function validateKeyPackageBytes(
  bytes: Uint8Array,
  deps: { validator: CredentialValidator; ciphersuite: CiphersuiteName; cs: CiphersuiteImpl; nowSeconds: bigint }
): Promise<ValidatedKeyPackage> {
  if (!(bytes instanceof Uint8Array)) refuse('malformed', 'A KeyPackage is bytes')
  const kp = readKeyPackage(bytes)
  if (kp.version !== 'mls10') refuse('version', `Protocol version ${String(kp.version)}, not mls10`)
  if (kp.cipherSuite !== deps.ciphersuite) refuse('ciphersuite', `The KeyPackage uses ${String(kp.cipherSuite)}, not ${deps.ciphersuite}`)
  const leaf = kp.leafNode
  if (leaf.leafNodeSource !== 'key_package') refuse('malformed', 'The leaf node is not a KeyPackage leaf')
  const clientId = deps.validator.clientIdFromCredential(leaf.credential)
  if (clientId === undefined) refuse('credential', `The credential is not accepted by the '${deps.validator.name}' credential validator`)
  if (leaf.lifetime.notAfter < deps.nowSeconds) refuse('lifetime', 'The KeyPackage has expired')
  if (leaf.lifetime.notBefore > deps.nowSeconds + CLOCK_SKEW_SECONDS) refuse('lifetime', 'The KeyPackage is not valid yet')
  if (leaf.lifetime.notAfter < leaf.lifetime.notBefore) refuse('lifetime', 'The lifetime ends before it starts')
  const caps = leaf.capabilities
  if (!caps.versions.includes('mls10') || !caps.ciphersuites.includes(deps.ciphersuite) || !caps.credentials.includes(leaf.credential.credentialType)) {
    refuse('capabilities', 'The capabilities do not list the version, ciphersuite and credential type it uses')
  }
  if (equalBytes(kp.initKey, leaf.hpkePublicKey)) refuse('init-key', 'The init key equals the leaf encryption key')
  if (!(await verifies(() => verifyLeafNodeSignatureKeyPackage(leaf, deps.cs.signature))) || !(await verifies(() => verifyKeyPackage(kp, deps.cs.signature)))) {
    refuse('signature', `The KeyPackage of ${clientId} does not verify`)
  }
  return { clientId, keyPackage: kp }
}

/** The store operation recording a vouch. */
export function vouchOperation(device: VouchedDevice, now: number): { type: 'put'; key: string; value: Uint8Array } {
  return {
    type: 'put',
    key: vouchKeys.of(device.clientId, device.signaturePublicKey),
    value: encodeRecord({ clientId: device.clientId, signaturePublicKey: device.signaturePublicKey.slice(), vouchedAt: now })
  }
}

/** Whether the app vouched for `clientId` with exactly this key. */
export async function isVouched(store: ClientStore, clientId: ClientId, signaturePublicKey: Uint8Array): Promise<boolean> {
  return (await store.get(vouchKeys.of(clientId, signaturePublicKey))) !== undefined
}
