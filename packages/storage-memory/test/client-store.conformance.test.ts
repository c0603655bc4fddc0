import { concatBytes } from '@mls/core'
import { clientStoreConformanceSuite } from '@mls/conformance/storage'
import { memoryClientStore } from '../src/index.js'

clientStoreConformanceSuite({
  name: 'memoryClientStore',
  setup: async () => memoryClientStore(),
  rawBytes: async (store) => concatBytes(...store.rawSnapshot())
})
