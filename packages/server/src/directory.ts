import type { AbortOptions, ClientId, FetchedKeyPackage, KeyPackageCount, KeyPackageRecord, RegisteredIdentity, ServerStore } from '@mls/core/interfaces'
import { ServiceError, throwIfAborted, type CredentialValidator } from '@mls/core'
import type { ServiceLimits } from './limits.js'
import type { AuthenticationHook, DirectoryService } from './services.js'
import type { Suites } from './suites.js'
import { KeyPackageRejection, validateKeyPackage } from './key-package.js'
import { TokenBuckets } from './token-bucket.js'
import { DeviceLists } from './device-lists.js'

export function createDirectoryService(deps: {
  store: ServerStore
  suites: Suites
  limits: ServiceLimits
  now: () => number
  hook: AuthenticationHook
  validator: CredentialValidator
  /** Called after a `remove` entry was stored, with the removed device (the server then proposes its removal from its groups). */
  onDeviceRemoved?: (clientId: ClientId, options: AbortOptions | undefined) => Promise<void>
}): DirectoryService {
  const { store, suites, limits, now, validator } = deps
  const fetchBudget = new TokenBuckets(limits.fetchesPerMinute, limits.fetchBurst, now)
  const oneTimeBudget = new TokenBuckets(limits.oneTimeKeyPackagesPerMinute, limits.oneTimeKeyPackageBurst, now)
  const nowSeconds = (): number => Math.floor(now() / 1000)
  const deviceLists = new DeviceLists({ store, suites, validator, hook: deps.hook, cacheSize: limits.groupCacheSize, onDeviceRemoved: deps.onDeviceRemoved })

  function checkUserId(userId: string): void {
    try {
      validator.checkUserId(userId)
    } catch (cause) {
      throw new ServiceError('INVALID_ARGUMENT', `Not a user id: ${JSON.stringify(userId)}`, { cause })
    }
  }

  return {
    async uploadKeyPackages(
      caller: ClientId,
      request: { keyPackages: readonly Uint8Array[]; lastResort?: Uint8Array },
      options?: AbortOptions
    ): Promise<KeyPackageCount> {
      throwIfAborted(options?.signal)
      const keyPackages = request?.keyPackages
      if (!Array.isArray(keyPackages)) throw new ServiceError('INVALID_ARGUMENT', 'keyPackages must be an array')
      const total = keyPackages.length + (request.lastResort === undefined ? 0 : 1)
      if (total > limits.maxKeyPackagesPerUpload) {
        throw new ServiceError('KEY_PACKAGE_INVALID', `At most ${limits.maxKeyPackagesPerUpload} KeyPackages per upload, got ${total}`, {
          details: { reason: 'too many KeyPackages' }
        })
      }
      const identity = await store.getIdentity(caller, options)
      if (identity === undefined) throw new ServiceError('UNKNOWN_IDENTITY', `${caller} is not registered`)
      const uploads = [...keyPackages.map((bytes) => ({ bytes, lastResort: false })), ...(request.lastResort === undefined ? [] : [{ bytes: request.lastResort, lastResort: true }])]
      const records: KeyPackageRecord[] = []
      const time = nowSeconds()
      for (const [index, upload] of uploads.entries()) {
        try {
          records.push(await validateKeyPackage(upload.bytes, { caller, identity, suites, limits, nowSeconds: time, lastResort: upload.lastResort, validator }))
        } catch (error) {
          if (!(error instanceof KeyPackageRejection)) throw error
          throw new ServiceError('KEY_PACKAGE_INVALID', `KeyPackage ${index} rejected: ${error.message}`, { details: { index, reason: error.message } })
        }
      }
      const lastResort = request.lastResort === undefined ? undefined : records.pop()
      if (lastResort !== undefined && records.some((r) => r.ref === lastResort.ref)) {
        throw new ServiceError('KEY_PACKAGE_INVALID', 'The last-resort KeyPackage is also uploaded as a one-time KeyPackage', {
          details: { index: records.length, reason: 'last-resort KeyPackage reused as one-time' }
        })
      }
      const stored = (await store.countKeyPackages(caller, options)).oneTime
      if (stored + records.length > limits.maxKeyPackagesPerClient) {
        throw new ServiceError('QUOTA_EXCEEDED', `${caller} may hold at most ${limits.maxKeyPackagesPerClient} KeyPackages; it holds ${stored}`, {
          details: { quota: 'key-packages', limit: limits.maxKeyPackagesPerClient, stored }
        })
      }
      throwIfAborted(options?.signal)
      await store.addKeyPackages(caller, records, lastResort, options)
      return store.countKeyPackages(caller, options)
    },

    async fetchKeyPackages(caller: ClientId, userId: string, options?: AbortOptions): Promise<FetchedKeyPackage[]> {
      throwIfAborted(options?.signal)
      checkUserId(userId)
      const retryAfterMs = fetchBudget.take(caller)
      if (retryAfterMs > 0) {
        throw new ServiceError('RATE_LIMITED', `Too many KeyPackage fetches by ${caller}; retry in ${retryAfterMs} ms`, { details: { retryAfterMs } })
      }
      // Only the devices of the user's signed list are served: a registered id is not a device of the user.
      const devices = await deviceLists.currentDevices(userId, options)
      if (devices.length === 0) throw new ServiceError('UNKNOWN_USER', `${userId} has no device list`)
      const out: FetchedKeyPackage[] = []
      const time = nowSeconds()
      let budgetRetryMs = 0
      for (const device of devices) {
        if (device.clientId === caller) continue
        // One token of the user's one-time budget per device; once spent, the last-resort KeyPackage is served.
        const wait = oneTimeBudget.take(userId)
        const record = wait === 0 ? await store.consumeKeyPackage(device.clientId, time, options) : await store.serveLastResortKeyPackage(device.clientId, time, options)
        // An empty pool costs the user nothing: the token goes back.
        if (wait === 0 && record?.lastResort !== false) oneTimeBudget.refund(userId)
        if (record !== undefined) out.push({ clientId: device.clientId, keyPackage: record.keyPackage, lastResort: record.lastResort })
        else if (wait > 0 && (await store.countKeyPackages(device.clientId, options)).oneTime > 0) budgetRetryMs = Math.max(budgetRetryMs, wait)
      }
      if (out.length === 0 && budgetRetryMs > 0) {
        throw new ServiceError('RATE_LIMITED', `The one-time KeyPackages of ${userId} are rationed and no last-resort one is set; retry in ${budgetRetryMs} ms`, {
          details: { retryAfterMs: budgetRetryMs }
        })
      }
      return out
    },

    async fetchDeviceList(_caller: ClientId, userId: string, options?: AbortOptions): Promise<Uint8Array[]> {
      throwIfAborted(options?.signal)
      checkUserId(userId)
      return store.readDeviceList(userId, options)
    },

    async publishDeviceListEntry(caller: ClientId, entry: Uint8Array, options?: AbortOptions): Promise<{ version: number }> {
      throwIfAborted(options?.signal)
      return deviceLists.append(caller, entry, options)
    },

    async lookupIdentity(_caller: ClientId, clientId: ClientId, options?: AbortOptions): Promise<RegisteredIdentity | undefined> {
      throwIfAborted(options?.signal)
      try {
        validator.parseClientId(clientId)
      } catch (cause) {
        throw new ServiceError('INVALID_ARGUMENT', `Not a client id: ${JSON.stringify(clientId)}`, { cause })
      }
      const record = await store.getIdentity(clientId, options)
      if (record === undefined) return undefined
      return { clientId: record.clientId, signaturePublicKey: record.signaturePublicKey, ciphersuite: record.ciphersuite }
    },

    async countKeyPackages(caller: ClientId, options?: AbortOptions): Promise<KeyPackageCount> {
      throwIfAborted(options?.signal)
      return store.countKeyPackages(caller, options)
    }
  }
}
