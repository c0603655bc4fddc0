import type { CiphersuiteImpl, CiphersuiteName, KeyPackage } from 'ts-mls'
import { decodeMlsMessage } from 'ts-mls'
import { verifyKeyPackage } from 'ts-mls/keyPackage.js'
import { verifyLeafNodeSignatureKeyPackage } from 'ts-mls/leafNode.js'
import type { ClientId } from './interfaces/common.js'
import type { DirectoryClient } from './interfaces/directory.js'
import { ServiceError } from './errors.js'
import { equalBytes } from './bytes.js'
import type { CredentialValidator } from './identity.js'
import type { ContactBook } from './contacts.js'
import type { ValidatedKeyPackage } from './group.js'

/** Why a device was left out of an add. */
export type SkipReason =
  /** The Directory served a device outside the user's verified device list. */
  | 'not-listed'
  /** The bytes are not an MLS KeyPackage. */
  | 'malformed'
  /** The credential does not name the device (as the credential validator reads it). */
  | 'credential'
  /** The KeyPackage's signature key is not the one the device list holds. */
  | 'key-mismatch'
  /** Another ciphersuite than the adding client's. */
  | 'ciphersuite'
  /** The KeyPackage or leaf node signature does not verify. */
  | 'signature'

/** A device left out while adding its user. */
export interface SkippedDevice {
  /** The user being added. */
  readonly userId: string
  /** The device left out. */
  readonly clientId: ClientId
  /** Why, as a code. */
  readonly reason: SkipReason
  /** Why, for humans. */
  readonly message: string
}

async function verifies(check: () => Promise<boolean>): Promise<boolean> {
  try {
    return await check()
  } catch {
    return false
  }
}

/**
 * For each user: verify its device list (against the pin), fetch one
 * KeyPackage per device, and keep the ones that pass every check; the others
 * are returned as skipped. A user with no valid device throws `NO_KEY_PACKAGE`.
 */
export async function collectKeyPackages(
  userIds: readonly string[],
  deps: {
    contacts: ContactBook
    directory: DirectoryClient
    validator: CredentialValidator
    ciphersuite: CiphersuiteName
    cs: CiphersuiteImpl
    /** Called for each skipped device as it is found (before a `NO_KEY_PACKAGE` is thrown). */
    onSkip: (skipped: SkippedDevice) => void
  }
): Promise<{ keyPackages: ValidatedKeyPackage[]; skipped: SkippedDevice[] }> {
  const keyPackages: ValidatedKeyPackage[] = []
  const skipped: SkippedDevice[] = []
  for (const userId of userIds) {
    deps.validator.checkUserId(userId)
    const list = await deps.contacts.refresh(userId)
    const fetched = await deps.directory.fetchKeyPackages(userId)
    const before = keyPackages.length
    const skippedForUser: SkippedDevice[] = []
    const skip = (clientId: ClientId, reason: SkipReason, message: string): void => {
      const skipped: SkippedDevice = { userId, clientId, reason, message }
      skippedForUser.push(skipped)
      deps.onSkip(skipped)
    }
    for (const f of fetched) {
      const listed = list.devices.find((d) => d.clientId === f.clientId)
      if (listed === undefined) {
        skip(f.clientId, 'not-listed', `${f.clientId} is not in ${userId}'s verified device list`)
        continue
      }
      let kp: KeyPackage
      try {
        const decoded = decodeMlsMessage(f.keyPackage, 0)?.[0]
        if (decoded?.wireformat !== 'mls_key_package') throw new Error('not a KeyPackage')
        kp = decoded.keyPackage
      } catch {
        skip(f.clientId, 'malformed', `The Directory returned a non-KeyPackage for ${f.clientId}`)
        continue
      }
      const named = deps.validator.clientIdFromCredential(kp.leafNode.credential)
      if (named !== f.clientId) {
        skip(f.clientId, 'credential', `The KeyPackage for ${f.clientId} names ${String(named)}`)
        continue
      }
      if (!equalBytes(kp.leafNode.signaturePublicKey, listed.signaturePublicKey)) {
        skip(f.clientId, 'key-mismatch', `The KeyPackage of ${f.clientId} is not signed with its listed key`)
        continue
      }
      if (kp.cipherSuite !== deps.ciphersuite) {
        skip(f.clientId, 'ciphersuite', `The KeyPackage of ${f.clientId} uses ${kp.cipherSuite}, not ${deps.ciphersuite}`)
        continue
      }
      if (!(await verifies(() => verifyLeafNodeSignatureKeyPackage(kp.leafNode, deps.cs.signature))) || !(await verifies(() => verifyKeyPackage(kp, deps.cs.signature)))) {
        skip(f.clientId, 'signature', `The KeyPackage of ${f.clientId} does not verify`)
        continue
      }
      keyPackages.push({ clientId: f.clientId, keyPackage: kp })
    }
    skipped.push(...skippedForUser)
    if (keyPackages.length === before) {
      throw new ServiceError('NO_KEY_PACKAGE', `No valid KeyPackage available for user ${userId}`, {
        details: { userId, skipped: skippedForUser.map((s) => ({ clientId: s.clientId, reason: s.reason })) }
      })
    }
  }
  return { keyPackages, skipped }
}
