import type { AbortOptions, ClientId, ServerStore } from '@mls/core/interfaces'
import {
  MlsToolkitError,
  ServiceError,
  decodeDeviceListEntry,
  equalBytes,
  verifyDeviceList,
  type CredentialValidator,
  type DeviceListEntry,
  type ListedDevice,
  type SuiteResolver
} from '@mls/core'
import type { AuthenticationHook } from './services.js'
import type { Suites } from './suites.js'
import { KeyedMutex } from './keyed-mutex.js'


function invalid(message: string, cause?: unknown): ServiceError {
  const details = MlsToolkitError.isInstance(cause) ? cause.details : undefined
  return new ServiceError('DEVICE_LIST_INVALID', message, { cause, details: { reason: message, ...details } })
}

/**
 * The Directory's side of signed device lists: it checks every entry (the
 * whole chain, signatures included) before storing it, so what it serves
 * replays without signature checks. It cannot forge entries: clients verify
 * the chain themselves (docs/trust-model.md).
 */
export class DeviceLists {
  private readonly locks = new KeyedMutex()
  /**
   * userId -> devices listed now, for the KeyPackage path. Exact while this
   * process is the only writer; off (`cacheSize` 0) with several instances.
   */
  private readonly cache = new Map<string, { length: number; devices: readonly ListedDevice[] }>()
  private readonly suites: SuiteResolver

  constructor(
    private readonly deps: {
      store: ServerStore
      suites: Suites
      validator: CredentialValidator
      hook: AuthenticationHook
      cacheSize: number
      onDeviceRemoved?: ((clientId: ClientId, options: AbortOptions | undefined) => Promise<void>) | undefined
    }
  ) {
    const accepted = deps.suites
    this.suites = async (name) => (accepted.isAccepted(name) ? accepted.impl(name) : undefined)
  }

  /** The devices `userId`'s list holds now; `[]` for an unclaimed user id. */
  async currentDevices(userId: string, options?: AbortOptions): Promise<readonly ListedDevice[]> {
    const cached = this.cache.get(userId)
    if (cached !== undefined) return cached.devices
    const stored = await this.deps.store.readDeviceList(userId, options)
    const list = await verifyDeviceList(stored, { userId, suites: this.suites, validator: this.deps.validator, signatures: false })
    this.remember(userId, stored.length, list.devices)
    return list.devices
  }

  async append(caller: ClientId, bytes: Uint8Array, options?: AbortOptions): Promise<{ version: number }> {
    const { store, validator, hook } = this.deps
    let entry: DeviceListEntry
    try {
      entry = decodeDeviceListEntry(bytes)
    } catch (cause) {
      throw invalid('Not a device-list entry', cause)
    }
    try {
      validator.checkUserId(entry.userId)
    } catch (cause) {
      throw invalid(`Not a user id: ${JSON.stringify(entry.userId)}`, cause)
    }
    if (entry.signer !== caller) throw invalid(`An entry is published by its signer (${entry.signer}), not by ${caller}`)
    if (!this.deps.suites.isAccepted(entry.device.ciphersuite)) throw invalid(`Ciphersuite ${entry.device.ciphersuite} is not accepted`)
    if (entry.action !== 'remove') {
      // The device claimed or added must be the registered identity of that client id, so its KeyPackages can be served.
      const registered = await store.getIdentity(entry.device.clientId, options)
      if (registered === undefined || !equalBytes(registered.signaturePublicKey, entry.device.signaturePublicKey) || registered.ciphersuite !== entry.device.ciphersuite) {
        throw invalid(`${entry.device.clientId} is not registered with the key the entry names`)
      }
    }
    const userId = entry.userId
    return this.locks.run(userId, async () => {
      const stored = await store.readDeviceList(userId, options)
      if (entry.version !== stored.length + 1) {
        throw new ServiceError('DEVICE_LIST_CONFLICT', `${userId}'s device list is at version ${stored.length}; entry ${entry.version} does not follow it`, {
          details: { version: stored.length }
        })
      }
      let list
      try {
        list = await verifyDeviceList([...stored, bytes], { userId, suites: this.suites, validator })
      } catch (cause) {
        throw invalid(cause instanceof Error ? cause.message : 'The entry breaks the device list', cause)
      }
      if (entry.action === 'claim' && hook.authorizeClaim !== undefined) {
        let allowed: boolean
        try {
          allowed = await hook.authorizeClaim({
            userId,
            clientId: entry.device.clientId,
            signaturePublicKey: entry.device.signaturePublicKey.slice(),
            ciphersuite: entry.device.ciphersuite,
            proof: entry.proof.slice()
          })
        } catch (cause) {
          throw new ServiceError('CLAIM_REFUSED', `The claim of ${userId} by ${caller} was refused`, { cause })
        }
        if (allowed !== true) throw new ServiceError('CLAIM_REFUSED', `The claim of ${userId} by ${caller} was refused`)
      }
      if ((await store.appendDeviceListEntry(userId, stored.length, bytes, options)) === 'conflict') {
        this.cache.delete(userId)
        throw new ServiceError('DEVICE_LIST_CONFLICT', `${userId}'s device list changed meanwhile`, { details: { version: stored.length } })
      }
      this.remember(userId, list.version, list.devices)
      return { version: list.version }
    }).then(async (result) => {
      // Outside the list's lock: the removed device's groups are the channel's business, and its failures are not the publisher's.
      if (entry.action === 'remove') await this.deps.onDeviceRemoved?.(entry.device.clientId, options)
      return result
    })
  }

  private remember(userId: string, length: number, devices: readonly ListedDevice[]): void {
    if (this.deps.cacheSize === 0) return
    if (this.cache.size >= this.deps.cacheSize) this.cache.delete(this.cache.keys().next().value as string)
    this.cache.set(userId, { length, devices })
  }
}
