import type { CryptoProvider } from '@mls/core/interfaces'
import { ServiceError, equalBytes, toHex } from '@mls/core'
import { ciphersuites, decodeMlsMessage, encodeMlsMessage, getCiphersuiteFromName, type CiphersuiteImpl, type CiphersuiteName, type MLSMessage } from '@mls/core/mls'

export class Suites {
  readonly accepted: ReadonlySet<CiphersuiteName>
  private digestImpl: Promise<(data: Uint8Array) => Promise<Uint8Array>> | undefined

  constructor(
    private readonly crypto: CryptoProvider,
    accepted: readonly CiphersuiteName[] | undefined
  ) {
    const names = accepted ?? crypto.supportedCiphersuites()
    if (names.length === 0) throw new ServiceError('INVALID_ARGUMENT', 'At least one ciphersuite must be accepted')
    for (const name of names) {
      if (!(name in ciphersuites) || !crypto.supports(name)) {
        throw new ServiceError('UNSUPPORTED_CIPHERSUITE', `Crypto provider '${crypto.name}' does not support ciphersuite ${String(name)}`)
      }
    }
    this.accepted = new Set(names)
  }

  isAccepted(name: unknown): name is CiphersuiteName {
    return typeof name === 'string' && this.accepted.has(name as CiphersuiteName)
  }

  impl(name: CiphersuiteName): Promise<CiphersuiteImpl> {
    return this.crypto.getCiphersuiteImpl(getCiphersuiteFromName(name))
  }

  /** SHA-256 of `data`, lower-case hex, through the crypto provider when it has a SHA-256 suite. */
  async digest(data: Uint8Array): Promise<string> {
    this.digestImpl ??= this.loadDigest()
    return toHex(await (await this.digestImpl)(data))
  }

  private async loadDigest(): Promise<(data: Uint8Array) => Promise<Uint8Array>> {
    const suite = this.crypto.supportedCiphersuites().find((name) => getCiphersuiteFromName(name).hash === 'SHA-256')
    if (suite !== undefined) {
      const impl = await this.impl(suite)
      return (data) => impl.hash.digest(data)
    }
    return async (data) => new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', data.slice()))
  }
}

/**
 * Decode an MLSMessage that must span all of `bytes` in its canonical encoding
 * (RFC 9420 section 2.1.2: minimal varint lengths, which ts-mls does not
 * require): it must re-encode to exactly `bytes`. `undefined` when malformed
 * or not canonical, so the digests that detect replays are of the one
 * encoding a message has.
 */
export function decodeMessage(bytes: Uint8Array): MLSMessage | undefined {
  try {
    const decoded = decodeMlsMessage(bytes, 0)
    if (decoded === undefined || decoded[1] !== bytes.length) return undefined
    if (!equalBytes(encodeMlsMessage(decoded[0]), bytes)) return undefined
    return decoded[0]
  } catch {
    return undefined
  }
}
