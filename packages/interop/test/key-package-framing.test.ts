import { describe, expect, it } from 'vitest'
import { decodeMlsMessage, defaultCapabilities, encodeKeyPackage, encodeMlsMessage, generateKeyPackage, getCiphersuiteFromName } from '@mls/core/mls'
import { nodeCrypto } from '@mls/crypto-node'
import { readKeyPackage } from '../src/index.js'

// Found as an intermittent failure of the live OpenMLS suite: OpenMLS hands out bare KeyPackages, and a
// bare KeyPackage (version mls10, then its cipher suite 1) reads as the start of an MLSMessage of wire
// format 1 (a PublicMessage). For some random keys ts-mls's decoder throws on what follows
// ("Data length exceeds buffer") instead of returning nothing, which ended the read before the bare
// decoding was tried.
describe('reading a KeyPackage in either framing', () => {
  it('reads a bare KeyPackage on which decoding it as an MLSMessage throws, and its framed form', async () => {
    const cs = await nodeCrypto().getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
    let throwing: Uint8Array | undefined
    let framed: Uint8Array | undefined
    // About 1 in 100 random KeyPackages makes the decoder throw (21 of 2,000 measured): 5,000 tries all but never miss.
    for (let i = 0; i < 5_000 && throwing === undefined; i++) {
      const { publicPackage } = await generateKeyPackage({ credentialType: 'basic', identity: new TextEncoder().encode(`member-${i}`) }, defaultCapabilities(), { notBefore: 0n, notAfter: 2n ** 40n }, [], cs)
      const bare = encodeKeyPackage(publicPackage)
      try {
        decodeMlsMessage(bare, 0)
      } catch {
        throwing = bare
        framed = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: publicPackage })
      }
    }
    expect(throwing, 'no generated KeyPackage made the MLSMessage decoder throw').toBeDefined()
    expect(encodeKeyPackage(readKeyPackage(throwing!))).toEqual(throwing)
    expect(encodeKeyPackage(readKeyPackage(framed!))).toEqual(throwing)
    expect(() => readKeyPackage(throwing!.subarray(0, 30))).toThrow('Not a KeyPackage')
  })
})
