import type { CiphersuiteName, CryptoProvider } from '@mls/core'
import { tsMlsDefaultCrypto } from '@mls/core'

export interface ProviderCase {
  name: string
  crypto: CryptoProvider
  ciphersuite: CiphersuiteName
}

/** Providers the scenarios run against, each on suite 1 and suite 3 where supported. */
export function providerCases(providers: readonly CryptoProvider[] = [tsMlsDefaultCrypto()]): ProviderCase[] {
  const suites: CiphersuiteName[] = ['MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', 'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519']
  return providers.flatMap((crypto) =>
    suites.filter((s) => crypto.supports(s)).map((ciphersuite) => ({ name: `${crypto.name} ${ciphersuite.includes('CHACHA') ? 'suite 3' : 'suite 1'}`, crypto, ciphersuite }))
  )
}
