import { cryptoConformanceSuite } from '@mls/conformance/crypto'
import { libsodiumCrypto } from '../src/index.js'

cryptoConformanceSuite({ name: 'libsodium', provider: libsodiumCrypto() })
