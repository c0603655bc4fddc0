import { ServiceError, assertCryptoProvider, basicCredentials, fromHex, serverExternalSender } from '@mls/core'
import type { AbortOptions, ClientId } from '@mls/core/interfaces'
import type { ChannelService } from './services.js'
import { SERVER_STORE_SPECIFICATION_VERSION } from '@mls/core/interfaces'
import type { Services, ServicesInit } from './services.js'
import { resolveLimits } from './limits.js'
import { Suites } from './suites.js'
import { Subscriptions } from './subscriptions.js'
import { createAuthService } from './auth.js'
import { createDirectoryService } from './directory.js'
import { createChannelService } from './channel.js'

/** The suite of the server's external-sender key when `ServicesInit.externalSender.ciphersuite` is not given. */
const DEFAULT_SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'

/** The Directory and the Group Channel over `init.store`, ready for any transport to host. */
export function createServices(init: ServicesInit): Services {
  const { store } = init
  if (store?.specificationVersion !== SERVER_STORE_SPECIFICATION_VERSION) {
    throw new ServiceError('UNSUPPORTED_SPECIFICATION', `Not a server store of specification ${SERVER_STORE_SPECIFICATION_VERSION} (got ${String(store?.specificationVersion)})`)
  }
  // Retention relies on fetch cursors (issue 13): a store written before them would prune what members have not read.
  if (typeof store.advanceFetchCursors !== 'function' || typeof store.readFetchCursors !== 'function') {
    throw new ServiceError('UNSUPPORTED_SPECIFICATION', `${String(store[Symbol.toStringTag])} has no fetch cursors (advanceFetchCursors, readFetchCursors): update the store adapter`)
  }
  const crypto = assertCryptoProvider(init.crypto)
  const limits = resolveLimits(init.limits)
  const now = init.now ?? Date.now
  const suites = new Suites(crypto, init.ciphersuites)
  const subscriptions = new Subscriptions()
  const hook = init.authentication ?? {}
  const validator = init.credentials ?? basicCredentials
  const shared = init.bus === undefined ? limits : { ...limits, groupCacheSize: 0 }
  const sender = init.externalSender
  const advertised = sender === undefined ? undefined : serverExternalSender(sender.ciphersuite ?? DEFAULT_SUITE, sender.signaturePublicKey, sender.credential)
  /**
   * A device its user removed from the device list: propose its removal in
   * every group whose roster holds it (best effort: a group that does not
   * list the server in `external_senders` is passed over, and a failure
   * leaves the device listed as before; the device list entry is stored).
   */
  const removeFromGroups = async (clientId: ClientId, options: AbortOptions | undefined): Promise<void> => {
    if (sender === undefined) return
    let groups: string[]
    try {
      groups = await store.listGroupsOf(clientId, options)
    } catch {
      return
    }
    for (const groupHex of groups) await channel.proposeRemoval(fromHex(groupHex), clientId, options).catch(() => undefined)
  }
  const channel: ChannelService = createChannelService({
    store,
    suites,
    limits: shared,
    now,
    subscriptions,
    bus: init.bus,
    validator,
    ...(init.externalJoinPolicy === undefined ? {} : { externalJoinPolicy: init.externalJoinPolicy }),
    externalSender: sender
  })
  return {
    auth: createAuthService({ store, suites, limits, now, hook, validator }),
    // With several instances (a bus) no group or device-list cache: any instance may change any group or list.
    directory: createDirectoryService({ store, suites, limits: shared, now, hook, validator, onDeviceRemoved: removeFromGroups }),
    channel,
    externalSender: advertised,
    subscribe: (clientId, listener) => subscriptions.subscribe(clientId, listener),
    limits
  }
}
