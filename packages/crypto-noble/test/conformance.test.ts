import { cryptoConformanceSuite } from '@mls/conformance/crypto'
import { nobleCrypto } from '../src/index.js'

cryptoConformanceSuite({ name: 'noble', provider: nobleCrypto() })
