import type { Ciphersuite, CiphersuiteImpl, CiphersuiteName, CryptoProvider as TsMlsCryptoProvider } from 'ts-mls'

export type { Ciphersuite, CiphersuiteImpl, CiphersuiteName }

/** The only crypto provider contract version this release of core understands. */
export const CRYPTO_PROVIDER_SPECIFICATION_VERSION = 'v1' as const

/**
 * A crypto backend. It is ts-mls's `CryptoProvider` (one method:
 * `getCiphersuiteImpl`) plus a declaration of what it supports, so that core
 * can refuse an unsupported suite up front instead of failing deep inside a
 * handshake.
 *
 * Contract:
 * - `supportedCiphersuites()` lists every suite for which `getCiphersuiteImpl`
 *   succeeds; it never changes during the provider's life.
 * - `getCiphersuiteImpl(cs)` for a suite not listed rejects with an error
 *   whose `code` is `UNSUPPORTED_CIPHERSUITE` and whose message names the
 *   suite. It never silently falls back to another implementation.
 * - The returned implementation must pass every RFC 9420 test vector of that
 *   suite (see `@mls/conformance/crypto`). Malformed keys, truncated
 *   signatures and tampered ciphertexts produce the errors ts-mls expects
 *   (`verify` resolves `false`; AEAD/HPKE `open` and key import reject).
 *
 * Providers are created by a factory named after the implementation
 * (`nobleCrypto()`, `libsodiumCrypto()`, `nodeCrypto()`).
 */
export interface CryptoProvider extends TsMlsCryptoProvider {
  /** Contract version; core refuses providers with a version it does not know. */
  readonly specificationVersion: typeof CRYPTO_PROVIDER_SPECIFICATION_VERSION
  /** Short human-readable name, e.g. `node`, `noble`, `libsodium`. */
  readonly name: string
  /** Every ciphersuite this provider implements. */
  supportedCiphersuites(): readonly CiphersuiteName[]
  /** Whether `getCiphersuiteImpl` succeeds for `suite`. */
  supports(suite: CiphersuiteName): boolean
  /** The primitives of one suite. Rejects with `UNSUPPORTED_CIPHERSUITE` for unsupported suites. */
  getCiphersuiteImpl(cs: Ciphersuite): Promise<CiphersuiteImpl>
}
