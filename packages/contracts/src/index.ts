/**
 * The contracts of the MLS toolkit: what storage adapters, transports and the
 * services implement, the typed errors every part throws, and small byte
 * helpers. This package imports nothing, so an adapter that depends only on it
 * does not install the MLS engine (`@mls/core`, ts-mls). `@mls/core`
 * re-exports every symbol here unchanged, so `StorageError` from either
 * package is the same class.
 *
 * @packageDocumentation
 */
export * from './errors.js'
export * from './bytes.js'
export * from './interfaces/index.js'
