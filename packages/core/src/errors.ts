/**
 * Errors of the toolkit. Every error has a stable `code` (assert on it, not on
 * `instanceof`, which fails across two installed copies of core) and keeps the
 * underlying failure in `cause`. `MlsToolkitError.isInstance(e)` works across
 * copies through a `Symbol.for` marker.
 *
 * Expected outcomes (a commit conflict, a duplicate delivery) are returned as
 * tagged results, never thrown.
 */
const marker = Symbol.for('@mls/core.error')

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
  // channel and messages
  | 'UNKNOWN_GROUP'
  | 'GROUP_EXISTS'
  | 'INVALID_MESSAGE'
  | 'WRONG_GROUP'
  | 'WRONG_EPOCH'
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

export interface MlsToolkitErrorOptions {
  cause?: unknown
  /** Extra machine-readable detail, e.g. `{ epoch: 3n }`. */
  details?: Record<string, unknown>
}

export class MlsToolkitError extends Error {
  readonly [marker] = true
  readonly code: ErrorCode
  readonly details: Record<string, unknown> | undefined

  constructor(code: ErrorCode, message: string, options: MlsToolkitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'MlsToolkitError'
    this.code = code
    this.details = options.details
  }

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
