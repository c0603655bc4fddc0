import type { AbortOptions, ClientId } from './common.js'
import type { DirectoryClient } from './directory.js'
import type { GroupChannelClient } from './channel.js'

/** The only transport contract version this release of core understands. */
export const TRANSPORT_SPECIFICATION_VERSION = 'v1' as const

/**
 * What a client presents when it connects. The service sends a random
 * challenge; the client answers `signChallenge(challenge)`, a SignWithLabel
 * signature (label `AUTH_LABEL`) over `authenticationContent(challenge,
 * clientId)`, made with the private key matching `signaturePublicKey`. No
 * bearer secret ever travels.
 */
export interface SessionCredentials {
  readonly clientId: ClientId
  readonly signaturePublicKey: Uint8Array
  /** Ciphersuite name of the signature key. */
  readonly ciphersuite: string
  /**
   * `true` to register the identity on this connection (binding it to the key
   * once; a second registration with another key is refused with
   * `IDENTITY_CONFLICT`); `false` to authenticate an identity registered before.
   */
  readonly register: boolean
  signChallenge(challenge: Uint8Array): Promise<Uint8Array>
}

/**
 * The server as an external sender of groups (RFC 9420 section 12.1.8.1): the
 * key it signs its Remove proposals with (server-initiated removal of a
 * deleted device), as it advertises it when a client connects. Clients pin it
 * on first use (docs/trust-model.md).
 */
export interface ServerExternalSender {
  /** Ciphersuite name whose signature scheme the key belongs to. */
  readonly ciphersuite: string
  /** The server's signature public key. */
  readonly signaturePublicKey: Uint8Array
  /** The server's MLS Credential (RFC 9420 section 5.3), encoded. */
  readonly credential: Uint8Array
}

/** An authenticated session with the services. */
export interface Connection {
  readonly clientId: ClientId
  /** The server's external sender, when it has one (advertised in the handshake). */
  readonly externalSender?: ServerExternalSender | undefined
  readonly directory: DirectoryClient
  readonly channel: GroupChannelClient
  /** Close the session; pending requests reject with `TRANSPORT_CLOSED`. Idempotent. */
  close(): Promise<void>
}

/**
 * Moves requests between a client and the services. Implementations:
 * `@mls/transport-memory` (in process) and `@mls/transport-ws` (WebSocket).
 *
 * `connect` rejects with `AUTHENTICATION_FAILED` when the challenge signature
 * does not verify against the registered key, `IDENTITY_CONFLICT` when
 * registering an identity that is bound to another key, `UNKNOWN_IDENTITY`
 * when authenticating one never registered, and `TRANSPORT_*` for network
 * failures.
 */
export interface Transport {
  readonly specificationVersion: typeof TRANSPORT_SPECIFICATION_VERSION
  readonly [Symbol.toStringTag]: string
  connect(credentials: SessionCredentials, options?: AbortOptions): Promise<Connection>
}
