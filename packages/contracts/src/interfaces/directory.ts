import type { AbortOptions, ClientId } from './common.js'

/** One KeyPackage handed out by the Directory for one device of a user. */
export interface FetchedKeyPackage {
  /** The device the KeyPackage belongs to. */
  readonly clientId: ClientId
  /** The encoded `MLSMessage` (wire format `mls_key_package`). */
  readonly keyPackage: Uint8Array
  /** True when the pool was empty and the device's last-resort KeyPackage was served. */
  readonly lastResort: boolean
}

/** What the Directory registered for a client. */
export interface RegisteredIdentity {
  /** The client id, `user/device`. */
  readonly clientId: ClientId
  /** The signature key bound to it. */
  readonly signaturePublicKey: Uint8Array
  /** Ciphersuite name of the signature key. */
  readonly ciphersuite: string
}

/** How many KeyPackages of the caller the Directory still holds. */
export interface KeyPackageCount {
  /** One-time KeyPackages left in the pool. */
  readonly oneTime: number
  /** Whether a last-resort KeyPackage is set. */
  readonly lastResort: boolean
}

/**
 * The client side of the Directory. The caller is the authenticated client of
 * the connection this object belongs to (see `Transport.connect`); no method
 * takes an identity to act as.
 *
 * Errors carry a stable `code`:
 * - `KEY_PACKAGE_INVALID`: an uploaded KeyPackage fails validation (signature,
 *   lifetime, version, ciphersuite, init_key equal to encryption_key, or a
 *   credential that is not the caller's registered identity and key). Nothing
 *   of the upload is stored.
 * - `RATE_LIMITED`: too many fetches by this requester; retry later.
 * - `UNKNOWN_USER`: that user has no device list (no device claimed the user id).
 * - `DEVICE_LIST_INVALID`, `DEVICE_LIST_CONFLICT`, `CLAIM_REFUSED`: see
 *   `publishDeviceListEntry`.
 * - `TRANSPORT_*`: the request did not reach the service (see TransportError).
 */
export interface DirectoryClient {
  /**
   * Upload one-time KeyPackages and, optionally, a last-resort KeyPackage
   * (which replaces the previous one). Validation is all-or-nothing.
   */
  uploadKeyPackages(
    request: { keyPackages: readonly Uint8Array[]; lastResort?: Uint8Array },
    options?: AbortOptions
  ): Promise<KeyPackageCount>
  /**
   * One KeyPackage for every registered device of `userId` (the caller's own
   * device excluded). Each one-time KeyPackage is consumed: it is never served
   * again, even under concurrent fetches. A device's last-resort KeyPackage is
   * served only when its pool is empty; a device with neither is left out.
   */
  fetchKeyPackages(userId: string, options?: AbortOptions): Promise<FetchedKeyPackage[]>
  /** The identity the Directory registered for `clientId`, or `undefined`. */
  lookupIdentity(clientId: ClientId, options?: AbortOptions): Promise<RegisteredIdentity | undefined>
  /** How many KeyPackages of the caller remain. */
  countKeyPackages(options?: AbortOptions): Promise<KeyPackageCount>

  /**
   * The encoded entries of `userId`'s device list, oldest first (see
   * `verifyDeviceList`); `[]` when no device claimed the user id. The caller
   * verifies them: the Directory is not trusted to list devices.
   */
  fetchDeviceList(userId: string, options?: AbortOptions): Promise<Uint8Array[]>
  /**
   * Append one signed entry to its user's device list; the caller must be
   * the entry's signer. Resolves with the list's new version. Errors:
   * `DEVICE_LIST_INVALID` (malformed, bad signature, breaks a rule of
   * `verifyDeviceList`, or adds a device not registered with that key),
   * `DEVICE_LIST_CONFLICT` (the entry is not for the next version: fetch and
   * rebuild), `CLAIM_REFUSED` (the server's authentication hook refused the
   * claim of a user id).
   */
  publishDeviceListEntry(
    entry: Uint8Array,
    options?: AbortOptions
  ): Promise<{
    /** The list's new version (its number of entries). */
    version: number
  }>
}
