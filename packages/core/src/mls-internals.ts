/**
 * ts-mls building blocks below its public API, for crypto providers and the
 * conformance suites (RFC 9420 test vectors). Not a stable API: it follows the
 * pinned ts-mls version.
 */
export { expandWithLabel, deriveSecret, deriveTreeSecret } from 'ts-mls/crypto/kdf.js'
export { encryptWithLabel, decryptWithLabel } from 'ts-mls/crypto/hpke.js'
