import type { Server as HttpServer, ServerResponse } from 'node:http'
import { UsageError } from '@mls/contracts'
import type { Services } from '@mls/server'
import type { ClientId } from '@mls/contracts/interfaces'

/**
 * Limits of the WebSocket server (docs/protocol.md section 5). Each is
 * optional in `WebSocketServerInit.limits`; missing ones take the defaults
 * below. KeyPackage fetches per requester, payload sizes and fetch page sizes
 * are limits of the services (`ServiceLimits` of `@mls/server`).
 */
export interface WebSocketServerLimits {
  /**
   * Largest frame a client may send, in bytes. A larger one is never buffered
   * beyond this size: the client gets an ERROR `PAYLOAD_TOO_LARGE` and close
   * 1009. Responses are cut into pages (`more: true`) to stay within it.
   * Default: 2 × the services' `maxHandshakeBytes` + 1 MiB (9 MiB).
   */
  readonly maxFrameBytes: number
  /** Requests per second per connection (token bucket refill), before and after authentication. Default 100. */
  readonly requestsPerSecond: number
  /** Burst of the per-connection bucket. Default 200. */
  readonly requestBurst: number
  /** Requests per second per identity, across all its connections. Default 200. */
  readonly identityRequestsPerSecond: number
  /** Burst of the per-identity bucket. Default 400. */
  readonly identityRequestBurst: number
  /** Authenticated connections one identity may hold; one more is refused (`TOO_MANY_CONNECTIONS`, close 4003). Default 8. */
  readonly maxConnectionsPerIdentity: number
  /** Open connections, authenticated or not; one more is refused (`TOO_MANY_CONNECTIONS`, close 4003). Default 10 000. */
  readonly maxConnections: number
  /** Requests of one connection being processed at once; more are refused with `RATE_LIMITED`. Default 64. */
  readonly maxInFlightRequests: number
  /**
   * Bytes queued for a client that it has not read. Past this the client is
   * a slow consumer: the connection is closed (4004) and the client catches
   * up from its cursor after reconnecting. Default 32 MiB.
   */
  readonly maxBufferedBytes: number
  /**
   * Bytes queued, unread, across all the connections of one identity (a
   * quota: an identity with 8 stalled connections would otherwise hold 8 ×
   * `maxBufferedBytes`). Past it, the connection being written to is dropped
   * as a slow consumer (close 4004). Default 64 MiB.
   */
  readonly maxBufferedBytesPerIdentity: number
  /**
   * Largest frame before login, in bytes: an `AUTHENTICATE` is small, so a
   * stranger cannot make the server buffer large frames (`PAYLOAD_TOO_LARGE`,
   * close 1009). `maxFrameBytes` applies after login. Default 16 KiB.
   */
  readonly maxUnauthenticatedFrameBytes: number
  /**
   * Connections one source address may hold that have not logged in yet; one
   * more is refused (`TOO_MANY_CONNECTIONS`, close 4003). With the login
   * deadline (`authenticationTimeoutMs`), idle strangers cannot fill
   * `maxConnections`. Behind a proxy every client shares the proxy's address.
   * Default 16.
   */
  readonly maxUnauthenticatedPerAddress: number
  /** Time a connection has to authenticate (close 4002). Default 10 000 ms. */
  readonly authenticationTimeoutMs: number
  /** Malformed, unauthenticated or out-of-order frames one connection may send before it is closed (4005). Default 100. */
  readonly maxProtocolErrors: number
  /** Interval of WebSocket pings; a connection that missed the previous pong is terminated. Default 30 000 ms. */
  readonly heartbeatIntervalMs: number
}

/** Structured log sink; every method is optional. `event` is noun-then-verb, e.g. `connection:opened`. */
export interface WebSocketServerLogger {
  /** Connections opened and closed, socket errors. */
  debug?(event: string, fields?: Record<string, unknown>): void
  /** The server listening and closed, authentications and refusals, heartbeats lost. */
  info?(event: string, fields?: Record<string, unknown>): void
  /** A client dropped for reading too slowly. */
  warn?(event: string, fields?: Record<string, unknown>): void
  /** A frame the server failed to decode, a request that failed unexpectedly (answered `INTERNAL`). */
  error?(event: string, fields?: Record<string, unknown>): void
}

/** Construction options of `webSocketServer`. */
export interface WebSocketServerInit {
  /** The Directory and Group Channel to host (from `createServices` of `@mls/server`). */
  services: Services
  /** Interface to listen on when the server owns its HTTP server. Default `127.0.0.1`. */
  host?: string
  /** Port to listen on; 0 picks a free one. Default 0. */
  port?: number
  /**
   * An existing HTTP server to attach to instead of creating one: upgrades on
   * `path` are taken, everything else is left to its owner (route `GET
   * /health` to `handleHealth` yourself). `close()` then leaves it running.
   */
  server?: HttpServer
  /**
   * The URLs clients dial to reach this server (`wss://chat.example.com/`
   * behind a TLS proxy). A login is signed for the URL its client dialled and
   * is refused unless that URL is one of these (`AUTHENTICATION_FAILED`,
   * `details.reason: 'server-binding'`), so a login relayed by another server
   * fails. Default: the listening URL, and when listening on loopback or
   * every interface, `ws://127.0.0.1:port`, `ws://[::1]:port` and
   * `ws://localhost:port` (with `path`). A function decides for each
   * (normalized) URL instead, e.g. for URLs only known later.
   */
  publicUrls?: readonly string[] | ((serverUrl: string) => boolean)
  /**
   * The server's Ed25519 private key (32 bytes). It signs each connection's
   * challenge, and each login is signed for its public key. Default: a key
   * generated at start, so clients cannot pin it across restarts: a server
   * that keeps its identity passes a persisted key (`apps/server` derives it
   * from its `--server-key` file).
   */
  serverKey?: Uint8Array
  /** Only upgrade requests for this path are accepted. Default: any path. */
  path?: string
  /** Overrides of the defaults of `WebSocketServerLimits`. */
  limits?: Partial<WebSocketServerLimits>
  /** Default: silent. */
  logger?: WebSocketServerLogger
  /**
   * Diagnostic tap: called with every binary frame the server receives
   * (`in`, before decoding) and sends (`out`), and the authenticated client
   * of the connection if any. For audits and tests; it must not throw or
   * keep `bytes` beyond the call without copying.
   */
  tap?: (event: { readonly direction: 'in' | 'out'; readonly bytes: Uint8Array; readonly clientId: ClientId | undefined }) => void
}

/** Counters since the server started. */
export interface WebSocketServerStats {
  /** Open connections, authenticated or not. */
  readonly connections: number
  /** Open connections that authenticated. */
  readonly authenticated: number
  /** Binary frames received. */
  readonly framesReceived: number
  /** Responses sent. */
  readonly responsesSent: number
  /** Entries and Welcomes pushed. */
  readonly pushesSent: number
  /** ERROR frames sent. */
  readonly errorFramesSent: number
  /** Frames that broke the protocol. */
  readonly protocolErrors: number
  /** Requests refused with `RATE_LIMITED`. */
  readonly rateLimited: number
  /** Connections dropped for reading too slowly (close 4004). */
  readonly slowConsumersDropped: number
  /** Requests that failed with an unexpected (non-toolkit) error: answered `INTERNAL`. */
  readonly internalErrors: number
  /** Closed connections, by close code. */
  readonly closesByCode: Readonly<Record<number, number>>
}

/** A running server. */
export interface WebSocketServerHandle {
  /** `ws://host:port/` of the server. */
  readonly url: string
  /** The interface it listens on. */
  readonly host: string
  /** The port it listens on (the one picked when 0 was asked). */
  readonly port: number
  /** The limits in force (defaults with the overrides applied). */
  readonly limits: WebSocketServerLimits
  /** The server's Ed25519 public key (32 bytes), as every connection's challenge proves it; clients may pin it (`webSockets({ serverKey })`). */
  readonly serverKey: Uint8Array
  /** A snapshot of the counters. */
  stats(): WebSocketServerStats
  /** Answers `GET /health`; returns false (and leaves `res` alone) for any other request. */
  handleHealth(req: { method?: string | undefined; url?: string | undefined }, res: ServerResponse): boolean
  /** Close every connection (1001), stop listening (when the server owns the HTTP server). Idempotent. */
  close(): Promise<void>
}

export function resolveServerLimits(services: Services, limits: Partial<WebSocketServerLimits> = {}): WebSocketServerLimits {
  const resolved: WebSocketServerLimits = {
    maxFrameBytes: 2 * services.limits.maxHandshakeBytes + (1 << 20),
    requestsPerSecond: 100,
    requestBurst: 200,
    identityRequestsPerSecond: 200,
    identityRequestBurst: 400,
    maxConnectionsPerIdentity: 8,
    maxConnections: 10_000,
    maxInFlightRequests: 64,
    maxBufferedBytes: 32 << 20,
    maxBufferedBytesPerIdentity: 64 << 20,
    maxUnauthenticatedFrameBytes: 16 << 10,
    maxUnauthenticatedPerAddress: 16,
    authenticationTimeoutMs: 10_000,
    maxProtocolErrors: 100,
    heartbeatIntervalMs: 30_000,
    ...limits
  }
  for (const [name, value] of Object.entries(resolved)) {
    if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) throw new UsageError('INVALID_ARGUMENT', `Limit ${name} must be a positive number, got ${String(value)}`)
  }
  if (resolved.maxFrameBytes > 0xffffffff) throw new UsageError('INVALID_ARGUMENT', 'Limit maxFrameBytes must fit in a uint32')
  if (resolved.maxUnauthenticatedFrameBytes > resolved.maxFrameBytes) {
    throw new UsageError('INVALID_ARGUMENT', 'Limit maxUnauthenticatedFrameBytes must not exceed maxFrameBytes')
  }
  return Object.freeze(resolved)
}
