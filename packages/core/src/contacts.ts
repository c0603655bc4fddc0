import type { ClientStore } from './interfaces/client-store.js'
import type { ClientId } from './interfaces/common.js'
import type { DirectoryClient } from './interfaces/directory.js'
import { MessageError, MlsToolkitError } from './errors.js'
import { equalBytes } from './bytes.js'
import { decodeRecord, encodeRecord } from './records.js'
import { Mutex } from './mutex.js'
import type { CredentialValidator } from './identity.js'
import {
  createClaimEntry,
  deviceListFingerprint,
  extendsDeviceList,
  verifyDeviceList,
  type DeviceSigner,
  type ListedDevice,
  type SuiteResolver,
  type VerifiedDeviceList
} from './device-list.js'

/**
 * A contact's device list changed since this client pinned it.
 *
 * - `devices-changed`: the new list extends the pinned one (signed by the
 *   user's own devices); it was accepted and pinned.
 * - `replaced`: the Directory served a list that does not extend the pinned
 *   one (a different chain, or an older version). It is refused
 *   (`DEVICE_LIST_CHANGED`) until the app calls `trustDeviceList(userId)`,
 *   typically after comparing the new fingerprint out of band.
 */
export interface ContactChange {
  /** The contact. */
  readonly userId: string
  /** Whether the new list extends the pinned one (`devices-changed`) or does not (`replaced`); see above. */
  readonly kind: 'devices-changed' | 'replaced'
  /** Client ids listed now and not before. */
  readonly added: readonly ClientId[]
  /** Client ids listed before and not now. */
  readonly removed: readonly ClientId[]
  /** Client ids whose key or ciphersuite differs. */
  readonly rekeyed: readonly ClientId[]
  /** Fingerprint of the list pinned before. */
  readonly previousFingerprint: string
  /** Fingerprint of the list now served (compare it out of band before trusting a `replaced` list). */
  readonly fingerprint: string
}

interface Pin {
  userId: string
  version: number
  head: Uint8Array
  devices: { clientId: string; signaturePublicKey: Uint8Array; ciphersuite: string }[]
}

const pinKey = (userId: string): string => `contacts/${userId}`

function diff(before: readonly ListedDevice[], after: readonly ListedDevice[]): { added: ClientId[]; removed: ClientId[]; rekeyed: ClientId[] } {
  const old = new Map(before.map((d) => [d.clientId, d]))
  const now = new Map(after.map((d) => [d.clientId, d]))
  const added = [...now.keys()].filter((id) => !old.has(id))
  const removed = [...old.keys()].filter((id) => !now.has(id))
  const rekeyed = [...now.values()]
    .filter((d) => {
      const o = old.get(d.clientId)
      return o !== undefined && (!equalBytes(o.signaturePublicKey, d.signaturePublicKey) || o.ciphersuite !== d.ciphersuite)
    })
    .map((d) => d.clientId)
  return { added, removed, rekeyed }
}

/**
 * The client's view of other users' device lists: fetched from the Directory,
 * verified entry by entry, and pinned on first use (TOFU) in the client
 * store. A later list must extend the pinned one; one that does not is
 * refused and reported (`ContactChange` kind `replaced`).
 */
export class ContactBook {
  private readonly verified = new Map<string, VerifiedDeviceList>()
  private readonly locks = new Map<string, Mutex>()

  constructor(
    private readonly deps: {
      store: ClientStore
      directory: () => DirectoryClient
      suites: SuiteResolver
      validator: CredentialValidator
      onChange: (change: ContactChange) => void
    }
  ) {}

  private lock<T>(userId: string, fn: () => Promise<T>): Promise<T> {
    let mutex = this.locks.get(userId)
    if (mutex === undefined) this.locks.set(userId, (mutex = new Mutex()))
    return mutex.run(fn)
  }

  /** The verified list last accepted for `userId`, fetching it when this client has none in memory. */
  async current(userId: string): Promise<VerifiedDeviceList> {
    return this.verified.get(userId) ?? this.refresh(userId)
  }

  /**
   * Fetch and verify `userId`'s list, and check it against the pin: the first
   * list seen is pinned; an extension is pinned (emitting `devices-changed`
   * when the devices differ); anything else emits `replaced` and throws
   * `DEVICE_LIST_CHANGED`. `DEVICE_LIST_INVALID` when a signature or rule fails.
   */
  async refresh(userId: string): Promise<VerifiedDeviceList> {
    return this.lock(userId, async () => {
      const list = await this.fetchVerified(userId)
      const pin = await this.readPin(userId)
      if (pin === undefined) {
        if (list.version > 0) await this.writePin(list)
        this.verified.set(userId, list)
        return list
      }
      const changes = diff(pin.devices, list.devices)
      const changed = changes.added.length + changes.removed.length + changes.rekeyed.length > 0
      // Fingerprints are computed only for a change to report (they are deliberately slow).
      const fingerprints = async () => ({ previousFingerprint: await deviceListFingerprint(pin, this.deps.suites), fingerprint: await deviceListFingerprint(list, this.deps.suites) })
      if (!extendsDeviceList(list, pin)) {
        this.deps.onChange({ userId, kind: 'replaced', ...changes, ...(await fingerprints()) })
        throw new MessageError(
          'DEVICE_LIST_CHANGED',
          `The Directory serves a device list of ${userId} (version ${list.version}) that does not extend the one this client pinned (version ${pin.version}); call trustDeviceList after checking the fingerprint`,
          { details: { userId, pinnedVersion: pin.version, servedVersion: list.version } }
        )
      }
      if (list.version > pin.version) await this.writePin(list)
      this.verified.set(userId, list)
      if (changed) this.deps.onChange({ userId, kind: 'devices-changed', ...changes, ...(await fingerprints()) })
      return list
    })
  }

  /** Accept whatever verified list the Directory serves now as the new pin (after an out-of-band check). */
  async trust(userId: string): Promise<VerifiedDeviceList> {
    return this.lock(userId, async () => {
      const list = await this.fetchVerified(userId)
      await this.writePin(list)
      this.verified.set(userId, list)
      return list
    })
  }

  /**
   * Is `clientId` with this key a device its user's list has held (removed
   * devices included, so their past messages still verify)? Fetches the list
   * again once when it is not found. A refused or invalid list answers false.
   */
  async knows(clientId: ClientId, signaturePublicKey: Uint8Array): Promise<boolean> {
    let userId: string
    try {
      userId = this.deps.validator.parseClientId(clientId).userId
    } catch {
      return false
    }
    const listed = (list: VerifiedDeviceList): boolean =>
      list.history.some((d) => d.clientId === clientId && equalBytes(d.signaturePublicKey, signaturePublicKey))
    try {
      const cached = this.verified.get(userId)
      if (cached !== undefined && listed(cached)) return true
      return listed(await this.refresh(userId))
    } catch (error) {
      if (MlsToolkitError.isInstance(error) && (error.code === 'DEVICE_LIST_CHANGED' || error.code === 'DEVICE_LIST_INVALID')) return false
      throw error
    }
  }

  /**
   * Run after connecting: when this device's user id is unclaimed, claim it
   * (with the app's proof); otherwise pin the user's own list. A device that
   * is not listed yet waits to be linked by a listed one.
   */
  async claimIfUnclaimed(userId: string, signer: DeviceSigner, proof: (() => Uint8Array | string | Promise<Uint8Array | string>) | undefined): Promise<void> {
    const pin = await this.readPin(userId)
    if (pin?.devices.some((d) => d.clientId === signer.device.clientId) === true) return
    const entries = await this.deps.directory().fetchDeviceList(userId)
    if (entries.length === 0) {
      const given = proof === undefined ? new Uint8Array(0) : await proof()
      const bytes = typeof given === 'string' ? new TextEncoder().encode(given) : given
      try {
        await this.deps.directory().publishDeviceListEntry(await createClaimEntry(userId, signer, { proof: bytes }))
      } catch (error) {
        // Another device claimed the user id first: this one waits to be linked.
        if (!(MlsToolkitError.isInstance(error) && error.code === 'DEVICE_LIST_CONFLICT')) throw error
      }
    }
    await this.refresh(userId)
  }

  /** The safety number of `userId` over its verified list. */
  async fingerprint(userId: string): Promise<string> {
    return deviceListFingerprint(await this.current(userId), this.deps.suites)
  }

  private async fetchVerified(userId: string): Promise<VerifiedDeviceList> {
    const entries = await this.deps.directory().fetchDeviceList(userId)
    return verifyDeviceList(entries, { userId, suites: this.deps.suites, validator: this.deps.validator })
  }

  private async readPin(userId: string): Promise<Pin | undefined> {
    const bytes = await this.deps.store.get(pinKey(userId))
    return bytes === undefined ? undefined : decodeRecord<Pin>(bytes, 'device-list pin')
  }

  private async writePin(list: VerifiedDeviceList): Promise<void> {
    const pin: Pin = {
      userId: list.userId,
      version: list.version,
      head: list.head,
      devices: list.devices.map((d) => ({ clientId: d.clientId, signaturePublicKey: d.signaturePublicKey, ciphersuite: d.ciphersuite }))
    }
    // Relaxed: a power loss undoes a suffix of the writes, so whatever survives that relied on this pin (written
    // after it) survives with it. A pin undone this way is pinned again from the Directory, as if first seen later.
    await this.deps.store.write([{ type: 'put', key: pinKey(list.userId), value: encodeRecord(pin) }], { durability: 'relaxed' })
  }
}

