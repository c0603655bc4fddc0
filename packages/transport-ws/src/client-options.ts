/**
 * The part of the WebSocket API the client end uses. Both the browser's
 * global `WebSocket` and the `WebSocket` class of the `ws` package fit it.
 */
export interface WebSocketLike {
  /** Set by the client end before the socket opens: `'nodebuffer'` where supported (`ws`), else `'arraybuffer'`. */
  binaryType: string
  /** 0 connecting, 1 open, 2 closing, 3 closed (the WebSocket API's values). */
  readonly readyState: number
  /** Send one binary message. */
  send(data: Uint8Array): void
  /** Close with `code` and `reason`. */
  close(code?: number, reason?: string): void
  /** Set by the client end: called with each message (`data` a Buffer, ArrayBuffer or Blob). */
  onmessage: ((event: never) => unknown) | null
  /** Set by the client end: called once the socket closed (`code`, `reason`). */
  onclose: ((event: never) => unknown) | null
  /** Set by the client end: called on a socket error (`ws` gives the cause in `error`). */
  onerror: ((event: never) => unknown) | null
}

/** A WebSocket constructor: `globalThis.WebSocket` in browsers, `WebSocket` from `ws` in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike

/** Reconnection policy after an established connection drops. */
export interface ReconnectOptions {
  /** Delay before the first attempt, in milliseconds. Default 250. */
  initialDelayMs?: number
  /** The delay doubles per failed attempt up to this, in milliseconds. Default 10 000. */
  maxDelayMs?: number
  /**
   * Fraction of each delay that is randomized, 0 to 1: the delay is
   * `d × (1 − jitter × random())`, so reconnecting clients spread out.
   * Default 0.5.
   */
  jitter?: number
  /** `false` disables reconnection: a dropped connection then closes the session. Default `true`. */
  enabled?: boolean
}

/**
 * Construction options of `webSockets()`.
 *
 * Node 20 has no global WebSocket: Node callers pass `WebSocket` from `ws`
 * (`webSockets({ url, WebSocket })`); browsers and Node 22+ may omit it. The
 * client entry never imports `ws`, so browser bundles stay free of it.
 */
export interface WebSocketsInit {
  /**
   * `ws://` or `wss://` URL of a server speaking protocol version 2
   * (docs/protocol.md). Each login is signed for this URL (normalized), so
   * the server must list it among its public URLs.
   */
  url: string
  /**
   * The server's Ed25519 public key (32 bytes), if the app knows it: a server
   * presenting another key, or not proving it, is refused
   * (`AUTHENTICATION_FAILED`, `details.reason: 'server-key'`). Default: any
   * key the server proves (the login is still bound to it and to `url`).
   */
  serverKey?: Uint8Array
  /** Default `globalThis.WebSocket`; construction fails with `INVALID_ARGUMENT` when neither is there. */
  WebSocket?: WebSocketConstructor
  /** Reconnection policy; see `ReconnectOptions`. */
  reconnect?: ReconnectOptions
  /**
   * Time a request (and the connection handshake) may take before it rejects
   * with `TRANSPORT_TIMEOUT`, in milliseconds. A request made while the
   * client reconnects waits for the new connection within this time. Default 30 000.
   */
  requestTimeoutMs?: number
  /**
   * Interval of the protocol's PING while the connection is open; a PING
   * unanswered within the interval drops the connection (close 4006) and
   * reconnects. 0 disables it. Default 20 000 ms.
   */
  heartbeatIntervalMs?: number
  /**
   * Times a login that failed for a transient reason is tried again on a new
   * connection, with the reconnect backoff: the connection dropped after the
   * server's challenge arrived, or the server no longer held the challenge
   * (`AUTHENTICATION_FAILED` with `details.reason: 'challenge-expired'`, e.g.
   * evicted by a flood). A refusal of the client (bad signature, unknown or
   * conflicting identity) is never retried. Default 3.
   */
  loginRetries?: number
}
