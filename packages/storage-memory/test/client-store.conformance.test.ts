import { clientStoreConformanceSuite } from '@mls/conformance/storage'
import { memoryClientStore } from '../src/index.js'

clientStoreConformanceSuite({
  name: 'memoryClientStore',
  setup: async () => memoryClientStore(),
  rawBytes: async (store) => {
    const parts = store.rawSnapshot()
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
    let offset = 0
    for (const p of parts) {
      out.set(p, offset)
      offset += p.length
    }
    return out
  }
})
