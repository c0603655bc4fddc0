/**
 * Errors of the toolkit. Every error has a stable `code` (assert on it, not on
 * `instanceof`, which fails across two installed copies of this package) and
 * keeps the underlying failure in `cause`. `MlsToolkitError.isInstance(e)`
 * works across copies through a `Symbol.for` marker (the same marker core used
 * before these classes moved here, so older copies are recognised too).
 *
 * Expected outcomes (a commit conflict, a duplicate delivery) are returned as
 * tagged results, never thrown.
 */
const marker = Symbol.for('@mls/core.error')

/**
 * The stable code of every toolkit error, grouped by where it arises. Branch on
 * it (`error.code === 'STORAGE_CLOSED'`); messages are for humans and may change.
 */
export type ErrorCode =
  // usage and configuration
  | 'INVALID_ARGUMENT'
  | 'UNSUPPORTED_CIPHERSUITE'
  | 'UNSUPPORTED_SPECIFICATION'
  | 'INVALID_STATE'
  | 'ABORTED'
  // authentication and authorization
  | 'AUTHENTICATION_FAILED'
  | 'IDENTITY_CONFLICT'
  | 'UNKNOWN_IDENTITY'
  | 'UNKNOWN_USER'
  | 'CREDENTIAL_REJECTED'
  | 'NOT_A_MEMBER'
  // directory
  | 'KEY_PACKAGE_INVALID'
  | 'NO_KEY_PACKAGE'
  | 'RATE_LIMITED'
  /** A per-identity quota of the server (groups created, KeyPackage pool); `details.quota` names it. */
  | 'QUOTA_EXCEEDED'
  // channel and messages
  | 'UNKNOWN_GROUP'
  | 'GROUP_EXISTS'
  | 'INVALID_MESSAGE'
  | 'WRONG_GROUP'
  | 'WRONG_EPOCH'
  /** The log entries after the reader's cursor were partly deleted by retention; `details.oldestRetainedSeq`. */
  | 'CURSOR_EXPIRED'
  | 'REPLAYED_MESSAGE'
  | 'MESSAGE_REJECTED'
  | 'WELCOME_INVALID'
  | 'PAYLOAD_TOO_LARGE'
  | 'COMMIT_CONFLICT'
  | 'INTENT_NOT_NEEDED'
  // infrastructure
  | 'STORAGE_IO'
  | 'STORAGE_CLOSED'
  | 'STORAGE_CORRUPT'
  | 'TRANSPORT_CLOSED'
  | 'TRANSPORT_TIMEOUT'
  | 'TRANSPORT_PROTOCOL'
  | 'TRANSPORT_UNAVAILABLE'
  | 'SERVER_MISBEHAVING'
  | 'INTERNAL'
  // transport (WebSocket protocol)
  | 'NOT_AUTHENTICATED'
  | 'UNSUPPORTED_PROTOCOL_VERSION'
  | 'TOO_MANY_CONNECTIONS'
  // device lists (docs/trust-model.md)
  | 'DEVICE_LIST_INVALID'
  | 'DEVICE_LIST_CONFLICT'
  | 'DEVICE_LIST_CHANGED'
  | 'CLAIM_REFUSED'
  // the server as an external sender (docs/trust-model.md)
  | 'EXTERNAL_SENDER_REFUSED'
  | 'SERVER_KEY_CHANGED'

/** What an error carries besides its code and message. */
export interface MlsToolkitErrorOptions {
  /** The underlying failure (a driver error, a network error, a rejected promise's reason). */
  cause?: unknown
  /** Extra machine-readable detail, e.g. `{ epoch: 3n }`. */
  details?: Record<string, unknown>
}

/**
 * The base class of every error the toolkit throws. Subclasses say who is at
 * fault: {@link MessageError} (a peer's input), {@link UsageError} (the
 * caller), {@link ServiceError} (a service refused), {@link StorageError} and
 * {@link TransportError} (infrastructure).
 */
export class MlsToolkitError extends Error {
  /** The cross-copy marker that {@link MlsToolkitError.isInstance} checks. */
  readonly [marker] = true
  /** The stable code to branch on. */
  readonly code: ErrorCode
  /** Extra machine-readable detail, or `undefined`. */
  readonly details: Record<string, unknown> | undefined

  /**
   * @param code The stable code.
   * @param message A human-readable explanation.
   * @param options The cause and machine-readable details.
   */
  constructor(code: ErrorCode, message: string, options: MlsToolkitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'MlsToolkitError'
    this.code = code
    this.details = options.details
  }

  /**
   * Whether `value` is a toolkit error, also when it was thrown by another
   * installed copy of this package (where `instanceof` answers `false`).
   */
  static isInstance(value: unknown): value is MlsToolkitError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[marker] === true
  }
}

/** Bad input from a peer or the network: malformed, forged, replayed, wrong group or epoch. */
export class MessageError extends MlsToolkitError {
  constructor(code: ErrorCode, message: string, options?: MlsToolkitErrorOptions) {
    super(code, message, options)
    this.name = 'MessageError'
  }
}

/** The caller used the API wrongly or in the wrong state. */
export class UsageError extends MlsToolkitError {
  constructor(code: ErrorCode, message: string, options?: MlsToolkitErrorOptions) {
    super(code, message, options)
    this.name = 'UsageError'
  }
}

/** A service refused the request (authentication, authorization, validation, limits). */
export class ServiceError extends MlsToolkitError {
  constructor(code: ErrorCode, message: string, options?: MlsToolkitErrorOptions) {
    super(code, message, options)
    this.name = 'ServiceError'
  }
}

/** A storage adapter failed. */
export class StorageError extends MlsToolkitError {
  constructor(code: ErrorCode, message: string, options?: MlsToolkitErrorOptions) {
    super(code, message, options)
    this.name = 'StorageError'
  }
}

/** The transport failed to carry a request or response. */
export class TransportError extends MlsToolkitError {
  constructor(code: ErrorCode, message: string, options?: MlsToolkitErrorOptions) {
    super(code, message, options)
    this.name = 'TransportError'
  }
}

/** Reject with `ABORTED` when the signal is already aborted. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) {
    throw new UsageError('ABORTED', 'The operation was aborted', { cause: signal.reason })
  }
}

/** The `code` of an error if it has one. */
export function errorCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code
    return typeof code === 'string' ? code : undefined
  }
  return undefined
}
