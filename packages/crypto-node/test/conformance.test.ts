import { cryptoConformanceSuite } from '@mls/conformance/crypto'
import { nodeCrypto } from '../src/index.js'

cryptoConformanceSuite({ name: 'node', provider: nodeCrypto() })
