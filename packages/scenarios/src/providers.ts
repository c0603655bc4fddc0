import type { CiphersuiteName, CryptoProvider } from '@mls/core'
import { tsMlsDefaultCrypto } from '@mls/core'
import { libsodiumCrypto } from '@mls/crypto-libsodium'
import { nobleCrypto } from '@mls/crypto-noble'
import { nodeCrypto } from '@mls/crypto-node'

export interface ProviderCase {
  name: string
  crypto: CryptoProvider
  ciphersuite: CiphersuiteName
}

/** Every provider the scenarios run against: ts-mls's default (the baseline) and ours. */
export function allProviders(): CryptoProvider[] {
  return [tsMlsDefaultCrypto(), nobleCrypto(), libsodiumCrypto(), nodeCrypto()]
}

/**
 * Providers the scenarios run against, each on suite 1 and suite 3 where
 * supported. The last case is `@mls/crypto-node`, the fastest.
 * `MLS_SCENARIO_PROVIDERS=node,noble` narrows the list.
 */
export function providerCases(providers: readonly CryptoProvider[] = selectedProviders()): ProviderCase[] {
  const suites: CiphersuiteName[] = ['MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', 'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519']
  return providers.flatMap((crypto) =>
    suites.filter((s) => crypto.supports(s)).map((ciphersuite) => ({ name: `${crypto.name} ${ciphersuite.includes('CHACHA') ? 'suite 3' : 'suite 1'}`, crypto, ciphersuite }))
  )
}

function selectedProviders(): CryptoProvider[] {
  const wanted = process.env.MLS_SCENARIO_PROVIDERS?.split(',').map((s) => s.trim())
  const all = allProviders()
  return wanted === undefined ? all : all.filter((p) => wanted.includes(p.name))
}
