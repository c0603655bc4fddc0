import type { Credential } from 'ts-mls'
import type { ClientId } from './interfaces/common.js'
import { UsageError } from './errors.js'
import { utf8 } from './bytes.js'

const MAX_PART_BYTES = 128

/**
 * Characters no identifier may contain (docs/trust-model.md, "Identifiers"):
 * controls (Cc), format characters (Cf: zero-width joiners and spaces, bidi
 * controls, soft hyphen, BOM), surrogates, private use and unassigned code
 * points, line and paragraph separators, any white space, and every
 * default-ignorable code point (Hangul fillers, variation selectors).
 */
const FORBIDDEN = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{White_Space}\p{Default_Ignorable_Code_Point}]/u
const LEADING_MARK = /^\p{M}/u

/** Why `value` is not a valid user or device id, or `undefined` when it is. */
export function identifierProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'not a string'
  const length = utf8.encode(value).length
  if (length === 0 || length > MAX_PART_BYTES) return `must be 1-${MAX_PART_BYTES} UTF-8 bytes`
  if (value.includes('/')) return "must not contain '/'"
  if (value.normalize('NFC') !== value) return 'must be in Unicode normalization form NFC'
  const forbidden = FORBIDDEN.exec(value)
  if (forbidden !== null) {
    return `must not contain U+${forbidden[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')} (control, invisible, format, bidi or white-space character)`
  }
  if (LEADING_MARK.test(value)) return 'must not start with a combining mark'
  return undefined
}

function checkPart(kind: string, value: string): void {
  const problem = identifierProblem(value)
  if (problem !== undefined) throw new UsageError('INVALID_ARGUMENT', `${kind} ${JSON.stringify(value)} ${problem}`, { details: { reason: problem } })
}

/** Validate a user id (see `identifierProblem`). Throws `INVALID_ARGUMENT`. */
export function checkUserId(userId: string): void {
  checkPart('userId', userId)
}

/** `${userId}/${deviceId}`, validated. */
export function formatClientId(userId: string, deviceId: string): ClientId {
  checkPart('userId', userId)
  checkPart('deviceId', deviceId)
  return `${userId}/${deviceId}`
}

/** Split and validate a client id. Throws `INVALID_ARGUMENT`. */
export function parseClientId(clientId: string): {
  /** The part before the `/`. */
  userId: string
  /** The part after the `/`. */
  deviceId: string
} {
  if (typeof clientId !== 'string') throw new UsageError('INVALID_ARGUMENT', 'A client id must be a string')
  const slash = clientId.indexOf('/')
  if (slash < 0) throw new UsageError('INVALID_ARGUMENT', `Not a client id: ${JSON.stringify(clientId)}`)
  const userId = clientId.slice(0, slash)
  const deviceId = clientId.slice(slash + 1)
  checkPart('userId', userId)
  checkPart('deviceId', deviceId)
  return { userId, deviceId }
}

/** The basic credential of a client: the UTF-8 bytes of its client id. */
export function credentialFor(clientId: ClientId): Credential {
  parseClientId(clientId)
  return { credentialType: 'basic', identity: utf8.encode(clientId) }
}

/** The client id a basic credential names, or `undefined` for any other credential or malformed identity. */
export function clientIdFromCredential(credential: Credential): ClientId | undefined {
  if (credential.credentialType !== 'basic') return undefined
  try {
    const clientId = utf8.decode(credential.identity)
    parseClientId(clientId)
    return clientId
  } catch {
    return undefined
  }
}

/**
 * How identities are named and carried in MLS credentials: the client side
 * of the Authentication Service, and the id checks of the server. The default
 * (`basicCredentials`) is the basic credential whose identity is the UTF-8
 * client id `user/device`. An app that talks to another implementation, or
 * that uses other identity formats, installs its own validator in
 * `MlsClientInit.credentials` and `ServicesInit.credentials`; core is not
 * patched. A validator must be deterministic and must never accept two
 * different credentials for one client id.
 */
export interface CredentialValidator {
  /** Shown in errors and logs. */
  readonly name: string
  /**
   * Split and validate a client id into its user and device. Throws
   * `INVALID_ARGUMENT` (a `UsageError`) for an id this scheme refuses.
   */
  parseClientId(clientId: string): {
    /** The user the client id names. */
    userId: string
    /** The device the client id names. */
    deviceId: string
  }
  /** Validate a user id alone. Throws `INVALID_ARGUMENT`. */
  checkUserId(userId: string): void
  /**
   * The client id a credential names, or `undefined` when the credential is
   * not one this validator accepts (wrong type, malformed identity).
   */
  clientIdFromCredential(credential: Credential): ClientId | undefined
  /**
   * How this scheme writes the client id of a user's device (the id of a
   * client this app runs, and the identity of its basic credential). Throws
   * `INVALID_ARGUMENT`. Optional: without it, `user/device`.
   */
  formatClientId?(userId: string, deviceId: string): ClientId
}

/** The client id `validator` gives a user's device; it must read back as that user and device. Throws `INVALID_ARGUMENT`. */
export function clientIdUnder(validator: CredentialValidator, userId: string, deviceId: string): ClientId {
  if (validator.formatClientId === undefined) return formatClientId(userId, deviceId)
  const clientId = validator.formatClientId(userId, deviceId)
  const parsed = validator.parseClientId(clientId)
  if (parsed.userId !== userId || parsed.deviceId !== deviceId) {
    throw new UsageError('INVALID_ARGUMENT', `The '${validator.name}' validator writes ${JSON.stringify(clientId)} for ${userId} ${deviceId}, which does not read back`)
  }
  return clientId
}

/** The basic credential naming `clientId`, checked to be one `validator` accepts for exactly that id. Throws `INVALID_ARGUMENT`. */
export function credentialUnder(validator: CredentialValidator, clientId: ClientId): Credential {
  const credential: Credential = { credentialType: 'basic', identity: utf8.encode(clientId) }
  if (validator.clientIdFromCredential(credential) !== clientId) {
    throw new UsageError('INVALID_ARGUMENT', `The '${validator.name}' validator does not accept a basic credential naming ${JSON.stringify(clientId)}`)
  }
  return credential
}

/** The default validator: basic credentials naming `user/device`, identifiers as `identifierProblem` allows. */
export const basicCredentials: CredentialValidator = Object.freeze({
  name: 'basic',
  parseClientId,
  checkUserId,
  clientIdFromCredential
})
