import { ServiceError, assertCryptoProvider, basicCredentials } from '@mls/core'
import { SERVER_STORE_SPECIFICATION_VERSION } from '@mls/core/interfaces'
import type { Services, ServicesInit } from './services.js'
import { resolveLimits } from './limits.js'
import { Suites } from './suites.js'
import { Subscriptions } from './subscriptions.js'
import { createAuthService } from './auth.js'
import { createDirectoryService } from './directory.js'
import { createChannelService } from './channel.js'

/** The Directory and the Group Channel over `init.store`, ready for any transport to host. */
export function createServices(init: ServicesInit): Services {
  const { store } = init
  if (store?.specificationVersion !== SERVER_STORE_SPECIFICATION_VERSION) {
    throw new ServiceError('UNSUPPORTED_SPECIFICATION', `Not a server store of specification ${SERVER_STORE_SPECIFICATION_VERSION} (got ${String(store?.specificationVersion)})`)
  }
  const crypto = assertCryptoProvider(init.crypto)
  const limits = resolveLimits(init.limits)
  const now = init.now ?? Date.now
  const suites = new Suites(crypto, init.ciphersuites)
  const subscriptions = new Subscriptions()
  const hook = init.authentication ?? {}
  const validator = init.credentials ?? basicCredentials
  const shared = init.bus === undefined ? limits : { ...limits, groupCacheSize: 0 }
  return {
    auth: createAuthService({ store, suites, limits, now, hook, validator }),
    // With several instances (a bus) no group or device-list cache: any instance may change any group or list.
    directory: createDirectoryService({ store, suites, limits: shared, now, hook, validator }),
    channel: createChannelService({
      store,
      suites,
      limits: shared,
      now,
      subscriptions,
      bus: init.bus,
      validator,
      ...(init.externalJoinPolicy === undefined ? {} : { externalJoinPolicy: init.externalJoinPolicy }),
      ...(init.externalSender === undefined ? {} : { externalSender: init.externalSender })
    }),
    subscribe: (clientId, listener) => subscriptions.subscribe(clientId, listener),
    limits
  }
}
