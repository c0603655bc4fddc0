import type { Ciphersuite, CiphersuiteImpl, CiphersuiteName } from 'ts-mls'
import { defaultCryptoProvider } from 'ts-mls'
import { CRYPTO_PROVIDER_SPECIFICATION_VERSION, type CryptoProvider } from './interfaces/crypto.js'
import { UsageError } from './errors.js'

const providerSymbol = Symbol.for('@mls/core.crypto-provider')

/** What `defineCryptoProvider` builds a provider from. */
export interface CryptoProviderInit {
  /** Short name of the implementation, e.g. `node`. */
  name: string
  /** Every suite `getCiphersuiteImpl` implements. */
  ciphersuites: readonly CiphersuiteName[]
  /** The primitives of one of `ciphersuites` (called once per suite; the result is cached). */
  getCiphersuiteImpl(cs: Ciphersuite): Promise<CiphersuiteImpl>
}

/**
 * Build a `CryptoProvider` from a name, the suites it implements and a factory.
 * Unsupported suites reject with `UNSUPPORTED_CIPHERSUITE`; implementations
 * are created once per suite and cached.
 */
export function defineCryptoProvider(init: CryptoProviderInit): CryptoProvider {
  const suites = Object.freeze([...init.ciphersuites])
  const cache = new Map<CiphersuiteName, Promise<CiphersuiteImpl>>()
  const provider = {
    [providerSymbol]: true,
    [Symbol.toStringTag]: `CryptoProvider(${init.name})`,
    specificationVersion: CRYPTO_PROVIDER_SPECIFICATION_VERSION,
    name: init.name,
    supportedCiphersuites: () => suites,
    supports: (suite: CiphersuiteName) => suites.includes(suite),
    getCiphersuiteImpl(cs: Ciphersuite): Promise<CiphersuiteImpl> {
      if (!suites.includes(cs.name)) {
        return Promise.reject(
          new UsageError('UNSUPPORTED_CIPHERSUITE', `Crypto provider '${init.name}' does not support ciphersuite ${cs.name}`, {
            details: { ciphersuite: cs.name, provider: init.name }
          })
        )
      }
      let impl = cache.get(cs.name)
      if (impl === undefined) {
        impl = init.getCiphersuiteImpl(cs)
        cache.set(cs.name, impl)
        impl.catch(() => cache.delete(cs.name))
      }
      return impl
    }
  }
  return provider
}

/** True for objects built by `defineCryptoProvider` or implementing the contract version core knows. */
export function isCryptoProvider(value: unknown): value is CryptoProvider {
  if (typeof value !== 'object' || value === null) return false
  const v = value as Partial<CryptoProvider> & Record<symbol, unknown>
  return (
    v[providerSymbol] === true ||
    (v.specificationVersion === CRYPTO_PROVIDER_SPECIFICATION_VERSION &&
      typeof v.getCiphersuiteImpl === 'function' &&
      typeof v.supportedCiphersuites === 'function')
  )
}

/** Throw `UNSUPPORTED_SPECIFICATION` unless `value` is a crypto provider of a known contract version. */
export function assertCryptoProvider(value: unknown): CryptoProvider {
  if (!isCryptoProvider(value)) {
    const version = (value as { specificationVersion?: unknown } | null)?.specificationVersion
    throw new UsageError('UNSUPPORTED_SPECIFICATION', `Not a crypto provider of specification ${CRYPTO_PROVIDER_SPECIFICATION_VERSION} (got ${String(version)})`)
  }
  return value
}

/** The seven classic (non post-quantum) MLS ciphersuites of RFC 9420, ids 1 to 7. */
export const CLASSIC_CIPHERSUITES: readonly CiphersuiteName[] = Object.freeze([
  'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519',
  'MLS_128_DHKEMP256_AES128GCM_SHA256_P256',
  'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519',
  'MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448',
  'MLS_256_DHKEMP521_AES256GCM_SHA512_P521',
  'MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448',
  'MLS_256_DHKEMP384_AES256GCM_SHA384_P384'
] as const)

/**
 * ts-mls's own default provider (WebCrypto plus noble), wrapped. It is the
 * baseline the benchmarks compare against; applications should pick one of
 * the `@mls/crypto-*` providers.
 */
export function tsMlsDefaultCrypto(): CryptoProvider {
  return defineCryptoProvider({
    name: 'ts-mls-default',
    ciphersuites: CLASSIC_CIPHERSUITES,
    getCiphersuiteImpl: (cs) => defaultCryptoProvider.getCiphersuiteImpl(cs)
  })
}
