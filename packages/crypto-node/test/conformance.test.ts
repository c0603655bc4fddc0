import { cryptoConformanceSuite } from '@mls/conformance/crypto'
import { nodeCrypto } from '../src/index.js'

cryptoConformanceSuite({ name: 'node', provider: nodeCrypto() })

cryptoConformanceSuite({
  name: 'node without key caches',
  provider: nodeCrypto({ publicKeyCacheSize: 0, privateKeyCacheSize: 0 }),
  ciphersuites: ['MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', 'MLS_128_DHKEMP256_AES128GCM_SHA256_P256']
})
