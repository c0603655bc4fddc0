import { describe, expect, it } from 'vitest'
import { decodeMlsMessage, encodeMlsMessage, generateKeyPackage, getCiphersuiteImpl, getCiphersuiteFromName, defaultCapabilities, defaultLifetime } from 'ts-mls'
import { credentialFor } from '../src/index.js'
import { decodeMessage } from '../src/group-records.js'

/** `bytes` with the one-byte varint length at `offset` rewritten in the two-byte long form (same value). */
function longFormAt(bytes: Uint8Array, offset: number): Uint8Array {
  const length = bytes[offset]!
  expect(length).toBeLessThan(64)
  const out = new Uint8Array(bytes.length + 1)
  out.set(bytes.subarray(0, offset))
  out[offset] = 0x40
  out[offset + 1] = length
  out.set(bytes.subarray(offset + 1), offset + 2)
  return out
}

describe('canonical encodings (RFC 9420 section 2.1.2)', () => {
  it('refuses an MLSMessage whose varint length is in a longer form than needed; ts-mls alone accepts it', async () => {
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
    const { publicPackage } = await generateKeyPackage(credentialFor('alice/phone'), defaultCapabilities(), defaultLifetime, [], cs)
    const canonical = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: publicPackage })
    // version (2), wire format (2), KeyPackage version (2), suite (2), then init_key<V>: its length at offset 8.
    const long = longFormAt(canonical, 8)
    const lax = decodeMlsMessage(long, 0)
    expect(lax?.[1]).toBe(long.length)
    expect(decodeMessage(canonical).wireformat).toBe('mls_key_package')
    expect(() => decodeMessage(long)).toThrow(expect.objectContaining({ code: 'INVALID_MESSAGE', details: { reason: 'non-canonical' } }))
  })
})
