import { MessageError, MlsToolkitError } from './errors.js'

/**
 * The one rule of core (docs/core.md): bad input is rejected with an event and
 * skipped; this client's own trouble changes nothing durable, advances no
 * cursor, and is retried with backoff and surfaced as an event.
 */
const OWN_TROUBLE_CODES: ReadonlySet<string> = new Set([
  'STORAGE_IO',
  'STORAGE_CLOSED',
  'STORAGE_CORRUPT',
  'TRANSPORT_CLOSED',
  'TRANSPORT_TIMEOUT',
  'TRANSPORT_PROTOCOL',
  'TRANSPORT_UNAVAILABLE',
  'SERVER_MISBEHAVING',
  'NOT_AUTHENTICATED',
  'TOO_MANY_CONNECTIONS',
  'RATE_LIMITED',
  'QUOTA_EXCEEDED',
  'ABORTED'
])

/**
 * The one rule's dividing line: a failure of this client's own machinery
 * (its store, its transport, an abort, a service limit) rather than of the
 * input. Processing that fails this way changes nothing durable, advances no
 * cursor and is retried; anything else is bad input, rejected and skipped.
 */
export function isOwnTrouble(error: unknown): boolean {
  return MlsToolkitError.isInstance(error) && OWN_TROUBLE_CODES.has(error.code)
}

/** A failure to process input, as the typed error reported for it (toolkit errors pass through). */
export function wrapMlsFailure(code: 'INVALID_MESSAGE' | 'MESSAGE_REJECTED', text: string, cause: unknown): MlsToolkitError {
  if (MlsToolkitError.isInstance(cause)) return cause
  const detail = cause instanceof Error ? `: ${cause.message}` : ''
  return new MessageError(code, `${text}${detail}`, { cause })
}

