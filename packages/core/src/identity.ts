import type { Credential } from 'ts-mls'
import type { ClientId } from './interfaces/common.js'
import { UsageError } from './errors.js'
import { utf8 } from './bytes.js'

const MAX_PART_BYTES = 128

function checkPart(kind: string, value: string): void {
  const length = utf8.encode(value).length
  if (length === 0 || length > MAX_PART_BYTES || value.includes('/')) {
    throw new UsageError('INVALID_ARGUMENT', `${kind} must be 1-${MAX_PART_BYTES} UTF-8 bytes without '/': ${JSON.stringify(value)}`)
  }
}

/** `${userId}/${deviceId}`, validated. */
export function formatClientId(userId: string, deviceId: string): ClientId {
  checkPart('userId', userId)
  checkPart('deviceId', deviceId)
  return `${userId}/${deviceId}`
}

/** Split and validate a client id. Throws `INVALID_ARGUMENT`. */
export function parseClientId(clientId: string): { userId: string; deviceId: string } {
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
