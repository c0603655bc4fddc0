import { describe, expect, it } from 'vitest'
import { basicCredentials, clientIdUnder, credentialUnder, wireCredentials, type CredentialValidator } from '../src/index.js'

const USER = '0123abcd-0000-4000-8000-00000000beef@wire.example'
const CLIENT = '0123abcd-0000-4000-8000-00000000beef:1a2b@wire.example'
const basic = (text: string) => ({ credentialType: 'basic' as const, identity: new TextEncoder().encode(text) })

describe('wireCredentials', () => {
  it('reads Wire ids and the toolkit ids, and writes Wire ids for Wire users', () => {
    expect(wireCredentials.parseClientId(CLIENT)).toEqual({ userId: USER, deviceId: '1a2b' })
    expect(wireCredentials.parseClientId('alice/phone')).toEqual({ userId: 'alice', deviceId: 'phone' })
    expect(wireCredentials.clientIdFromCredential(basic(CLIENT))).toBe(CLIENT)
    expect(wireCredentials.clientIdFromCredential(basic('alice/phone'))).toBe('alice/phone')
    expect(clientIdUnder(wireCredentials, USER, '1a2b')).toBe(CLIENT)
    expect(clientIdUnder(wireCredentials, 'alice', 'phone')).toBe('alice/phone')
    expect(credentialUnder(wireCredentials, CLIENT)).toEqual(basic(CLIENT))
    expect(() => wireCredentials.checkUserId(USER)).not.toThrow()
  })

  it('refuses near-misses of the Wire form, other credential types and invalid UTF-8', () => {
    const near = [
      '0123ABCD-0000-4000-8000-00000000beef:1a2b@wire.example', // uppercase UUID
      '0123abcd-0000-4000-8000-00000000beef:@wire.example', // no device
      '0123abcd-0000-4000-8000-00000000beef:11112222333344445@wire.example', // 17 hex digits
      '0123abcd-0000-4000-8000-00000000beef:xyz@wire.example', // not hex
      '0123abcd-0000-4000-8000-00000000beef:1a2b@', // no domain
      '0123abcd-0000-4000-8000-00000000beef:1a2b@-wire.example', // bad label
      '0123abcd-0000-4000-8000-00000000beef:1a2b@wire.example\n', // trailing newline
      '0123abcd-0000-4000-8000-00000000beef:1a2b' // no domain at all
    ]
    for (const id of near) {
      expect(() => wireCredentials.parseClientId(id), id).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
      expect(wireCredentials.clientIdFromCredential(basic(id)), id).toBeUndefined()
    }
    expect(wireCredentials.clientIdFromCredential({ credentialType: 'basic', identity: new Uint8Array([0xff, 0xfe]) })).toBeUndefined()
    expect(wireCredentials.clientIdFromCredential({ credentialType: 'x509', certificates: [] } as never)).toBeUndefined()
    expect(() => clientIdUnder(wireCredentials, USER, 'not-hex')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })

  it('the default validator still refuses Wire ids (they need this validator installed)', () => {
    expect(basicCredentials.clientIdFromCredential(basic(CLIENT))).toBeUndefined()
    expect(() => credentialUnder(basicCredentials, CLIENT)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })

  it('clientIdUnder refuses a validator whose ids do not read back as the same user and device', () => {
    const lying: CredentialValidator = { ...basicCredentials, name: 'lying', formatClientId: () => 'mallory/phone' }
    expect(() => clientIdUnder(lying, 'alice', 'phone')).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })
})
