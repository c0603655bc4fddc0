import type { Credential } from 'ts-mls'
import type { ClientId } from './interfaces/common.js'
import { UsageError } from './errors.js'
import { utf8 } from './bytes.js'
import { basicCredentials, type CredentialValidator } from './identity.js'

/** `<uuid>:<device>@<domain>`: a lowercase UUID, the device as 1-16 lowercase hex digits, a DNS domain. */
const WIRE_CLIENT_ID = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}):([0-9a-f]{1,16})@([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)$/
const WIRE_USER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}@[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$/

/** Split a Wire-style client id into user `<uuid>@<domain>` and device `<hex>`, or `undefined`. */
function parseWire(clientId: string): { userId: string; deviceId: string } | undefined {
  const match = WIRE_CLIENT_ID.exec(clientId)
  if (match === null) return undefined
  return { userId: `${match[1]!}@${match[3]!}`, deviceId: match[2]! }
}

/**
 * A credential validator for groups shared with Wire-style clients (OpenMLS
 * through `@wireapp/core-crypto`, docs/interop.md): it accepts basic
 * credentials whose identity is `<uuid>:<device>@<domain>` (user
 * `<uuid>@<domain>`, device the hex device id) and, for the toolkit's own
 * clients, everything `basicCredentials` accepts (`user/device`). The two
 * forms cannot name the same client: a Wire id holds no `/`. Install it in
 * `MlsClientInit.credentials` and `ServicesInit.credentials`.
 */
export const wireCredentials: CredentialValidator = Object.freeze({
  name: 'wire-or-basic',
  parseClientId(clientId: string): { userId: string; deviceId: string } {
    if (typeof clientId === 'string' && !clientId.includes('/')) {
      const wire = parseWire(clientId)
      if (wire === undefined) throw new UsageError('INVALID_ARGUMENT', `Not a client id: ${JSON.stringify(clientId)}`)
      return wire
    }
    return basicCredentials.parseClientId(clientId)
  },
  formatClientId(userId: string, deviceId: string): ClientId {
    const at = typeof userId === 'string' ? userId.indexOf('@') : -1
    if (at > 0 && WIRE_USER_ID.test(userId)) {
      const clientId = `${userId.slice(0, at)}:${deviceId}@${userId.slice(at + 1)}`
      if (parseWire(clientId) === undefined) throw new UsageError('INVALID_ARGUMENT', `Not a Wire device id: ${JSON.stringify(deviceId)} (1-16 lowercase hex digits)`)
      return clientId
    }
    return `${userId}/${deviceId}`
  },
  checkUserId(userId: string): void {
    if (typeof userId === 'string' && WIRE_USER_ID.test(userId)) return
    basicCredentials.checkUserId(userId)
  },
  clientIdFromCredential(credential: Credential): ClientId | undefined {
    if (credential.credentialType !== 'basic') return undefined
    let text: string
    try {
      text = utf8.decode(credential.identity)
    } catch {
      return undefined
    }
    if (parseWire(text) !== undefined) return text
    return basicCredentials.clientIdFromCredential(credential)
  }
})
