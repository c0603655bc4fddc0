import { tsMlsDefaultCrypto } from '@mls/core'
import { cryptoConformanceSuite } from '../src/crypto/index.js'

cryptoConformanceSuite({ name: 'ts-mls-default', provider: tsMlsDefaultCrypto(), verifyMayReject: true })
