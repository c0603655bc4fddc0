import { tsMlsDefaultCrypto } from '@mls/core'
import type { CiphersuiteName } from '@mls/core/mls'
import { cryptoConformanceSuite } from '../src/crypto/index.js'

// The reference run: ts-mls's own provider must pass the suite too, which
// checks the suite itself. Suites 1 and 3 by default; all seven with
// MLS_FULL_VECTORS=1 (about two minutes here).
const provider = tsMlsDefaultCrypto()
const ciphersuites: readonly CiphersuiteName[] =
  process.env.MLS_FULL_VECTORS === '1'
    ? provider.supportedCiphersuites()
    : ['MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', 'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519']

cryptoConformanceSuite({ name: 'ts-mls-default', provider, ciphersuites, verifyMayReject: true })
