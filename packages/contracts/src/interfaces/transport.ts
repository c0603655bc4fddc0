import type { AbortOptions, ClientId } from './common.js'
import type { DirectoryClient } from './directory.js'
import type { GroupChannelClient } from './channel.js'

/** The only transport contract version this release of core understands. */
export const TRANSPORT_SPECIFICATION_VERSION = 'v1' as const

/**
 * The server a login is made for, signed into it (protocol version 2): a
 * server accepts a login only if `serverUrl` is one of its own public URLs and
 * `serverKey` its own key, so a login relayed through another server fails.
 */
export interface ServerBinding {
  /** The URL the client dialled, normalized (`new URL(url)` without query or fragment). */
  readonly serverUrl: string
  /** The public key the server proved on this connection (it signed the challenge); empty when the transport has none. */
  readonly serverKey: Uint8Array
}

/**
 * What a client presents when it connects. The service sends a random
 * challenge; the client answers `signChallenge(challenge, binding)`, a
 * SignWithLabel signature (label `AUTH_LABEL`) over
 * `authenticationContent(challenge, clientId, binding)`, made with the
 * private key matching `signaturePublicKey`. No bearer secret ever travels.
 */
export interface SessionCredentials {
  /** The client to authenticate as, `user/device`. */
  readonly clientId: ClientId
  /** The public signature key the client registered (or registers now). */
  readonly signaturePublicKey: Uint8Array
  /** Ciphersuite name of the signature key. */
  readonly ciphersuite: string
  /**
   * `true` to register the identity on this connection (binding it to the key
   * once; a second registration with another key is refused with
   * `IDENTITY_CONFLICT`); `false` to authenticate an identity registered before.
   */
  readonly register: boolean
  /** Sign the connection's challenge, bound to the server it was made for (`binding`, given by network transports). */
  signChallenge(challenge: Uint8Array, binding?: ServerBinding): Promise<Uint8Array>
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
  /** The authenticated client. */
  readonly clientId: ClientId
  /** The server's external sender, when it has one (advertised in the handshake). */
  readonly externalSender?: ServerExternalSender | undefined
  /** The Directory, acting as `clientId`. */
  readonly directory: DirectoryClient
  /** The Group Channel, acting as `clientId`. */
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
  /** Contract version; core refuses transports with a version it does not know. */
  readonly specificationVersion: typeof TRANSPORT_SPECIFICATION_VERSION
  /** The transport's name for logs, e.g. `WebSocketTransport`. */
  readonly [Symbol.toStringTag]: string
  /** Open an authenticated session as `credentials.clientId` (errors above). */
  connect(credentials: SessionCredentials, options?: AbortOptions): Promise<Connection>
}
