import { describe, expect, it } from 'vitest'
import {
  HEADER_BYTES,
  ProtocolError,
  decodeClientFrame,
  decodeServerFrame,
  encodeChallenge,
  encodeClientFrame,
  encodeEntryPush,
  encodeError,
  encodeResponse,
  encodeWelcomePush,
  type Request,
  type Response
} from './codec.js'

const b = (...values: number[]) => new Uint8Array(values)
const entry = { groupId: b(1, 2), seq: 7, kind: 'application' as const, epoch: 3n, sender: 'alice/phone', message: b(0, 1, 0, 2, 9) }
const welcome = { seq: 2, groupId: b(1, 2), welcome: b(0, 1, 0, 3, 5), commitSeq: 6 }

const sampleRequests: Request[] = [
  { type: 'authenticate', clientId: 'alice/phone', signaturePublicKey: b(1, 2, 3), ciphersuite: 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', register: true, signature: b(4, 5), serverUrl: 'wss://chat.example/' },
  { type: 'uploadKeyPackages', keyPackages: [b(1), b(2, 3)], lastResort: b(4) },
  { type: 'uploadKeyPackages', keyPackages: [], lastResort: undefined },
  { type: 'fetchKeyPackages', userId: 'bob' },
  { type: 'lookupIdentity', clientId: 'bob/phone' },
  { type: 'countKeyPackages' },
  { type: 'createGroup', groupId: b(9, 9), groupInfo: b(0, 3, 7) },
  { type: 'fetchGroupInfo', groupId: b(9, 9) },
  { type: 'postProposal', groupId: b(9), proposal: b(0, 1, 2) },
  { type: 'postCommit', groupId: b(9), epoch: 2n ** 64n - 1n, commit: b(0, 1), welcome: b(3) },
  { type: 'postCommit', groupId: b(9), epoch: 0n, commit: b(0, 1), welcome: undefined },
  { type: 'postCommit', groupId: b(9), epoch: 1n, commit: b(0, 1), welcome: b(3), groupInfo: b(4, 5) },
  { type: 'postCommit', groupId: b(9), epoch: 1n, commit: b(0, 1), groupInfo: b(4) },
  { type: 'postMessage', groupId: b(9), message: b(0, 1, 2) },
  { type: 'fetchEntries', groupId: b(9), afterSeq: Number.MAX_SAFE_INTEGER, limit: 500 },
  { type: 'fetchWelcomes', afterSeq: 0, limit: 0 },
  { type: 'ping' },
  { type: 'fetchDeviceList', userId: 'bob' },
  { type: 'publishDeviceListEntry', entry: b(1, 2, 3) }
]

const sampleResponses: Response[] = [
  { type: 'authenticate', clientId: 'alice/phone', maxFrameBytes: 9 << 20 },
  { type: 'uploadKeyPackages', oneTime: 3, lastResort: true },
  { type: 'fetchKeyPackages', keyPackages: [{ clientId: 'bob/phone', keyPackage: b(1, 2), lastResort: false }] },
  { type: 'lookupIdentity', identity: { clientId: 'bob/phone', signaturePublicKey: b(7), ciphersuite: 'x' } },
  { type: 'lookupIdentity', identity: undefined },
  { type: 'countKeyPackages', oneTime: 0, lastResort: false },
  { type: 'createGroup' },
  { type: 'fetchGroupInfo', groupInfo: undefined },
  { type: 'postProposal', seq: 12 },
  { type: 'fetchGroupInfo', groupInfo: { epoch: 7n, groupInfo: b(1, 2, 3) } },
  { type: 'postCommit', result: { kind: 'accepted', seq: 4, epoch: 2n } },
  { type: 'postCommit', result: { kind: 'conflict', epoch: 5n } },
  { type: 'postMessage', seq: 12 },
  { type: 'fetchEntries', entries: [entry, { ...entry, kind: 'commit', seq: 8 }, { ...entry, kind: 'proposal', seq: 9 }], more: true },
  { type: 'fetchWelcomes', welcomes: [welcome], more: false },
  { type: 'ping' },
  { type: 'fetchDeviceList', entries: [b(1), b(2, 3)] },
  { type: 'fetchDeviceList', entries: [] },
  { type: 'publishDeviceListEntry', version: 2 }
]

function expectProtocolError(fn: () => unknown, code = 'TRANSPORT_PROTOCOL'): void {
  try {
    fn()
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError)
    expect((error as ProtocolError).code).toBe(code)
    return
  }
  throw new Error('expected a ProtocolError')
}

describe('codec of protocol version 2', () => {
  it('round-trips every request', () => {
    sampleRequests.forEach((request, i) => {
      const decoded = decodeClientFrame(encodeClientFrame(i + 1, request))
      expect(decoded.requestId).toBe(i + 1)
      expect(decoded.request).toEqual(request)
    })
  })

  it('round-trips every response, push, challenge and error', () => {
    sampleResponses.forEach((response, i) => {
      expect(decodeServerFrame(encodeResponse(i + 100, response))).toEqual({ kind: 'response', requestId: i + 100, response })
    })
    expect(decodeServerFrame(encodeEntryPush(entry))).toEqual({ kind: 'entry', entry })
    expect(decodeServerFrame(encodeWelcomePush(welcome))).toEqual({ kind: 'welcome', entry: welcome })
    expect(decodeServerFrame(encodeChallenge(b(1, 2, 3), 4096, b(7, 8), b(9)))).toEqual({
      kind: 'challenge',
      challenge: b(1, 2, 3),
      maxFrameBytes: 4096,
      serverKey: b(7, 8),
      serverSignature: b(9)
    })
    const externalSender = { ciphersuite: 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', signaturePublicKey: b(7, 8), credential: b(0, 1, 2) }
    expect(decodeServerFrame(encodeChallenge(b(1, 2, 3), 4096, b(7, 8), b(9), externalSender))).toEqual({
      kind: 'challenge',
      challenge: b(1, 2, 3),
      maxFrameBytes: 4096,
      serverKey: b(7, 8),
      serverSignature: b(9),
      externalSender
    })
    // A truncated external sender is malformed, not absent.
    const truncated = encodeChallenge(b(1, 2, 3), 4096, b(7, 8), b(9), externalSender).slice(0, -2)
    expect(() => decodeServerFrame(truncated)).toThrow(expect.objectContaining({ code: 'TRANSPORT_PROTOCOL' }) as Error)
    expect(decodeServerFrame(encodeError(5, 'WRONG_EPOCH', 'late', { epoch: 3n, limit: 2 }))).toEqual({
      kind: 'error',
      requestId: 5,
      code: 'WRONG_EPOCH',
      message: 'late',
      details: { epoch: '3', limit: 2 }
    })
    expect(decodeServerFrame(encodeError(0, 'INTERNAL', 'x'))).toMatchObject({ details: undefined })
  })

  it('rejects every truncation and every extension of a valid frame with a ProtocolError only', () => {
    const frames = sampleRequests.map((r, i) => encodeClientFrame(i + 1, r))
    for (const frame of frames) {
      for (let n = 0; n < frame.length; n++) {
        const cut = frame.subarray(0, n)
        // A truncated frame is either malformed or, for the few with optional tails, never decodes to the same request.
        try {
          const decoded = decodeClientFrame(cut)
          expect(decoded).not.toEqual(decodeClientFrame(frame))
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError)
        }
      }
      const extended = new Uint8Array(frame.length + 1)
      extended.set(frame)
      expectProtocolError(() => decodeClientFrame(extended))
    }
    const serverFrames = [...sampleResponses.map((r) => encodeResponse(1, r)), encodeEntryPush(entry), encodeWelcomePush(welcome), encodeChallenge(b(1), 10, b(2), b(3)), encodeError(1, 'X', 'y')]
    for (const frame of serverFrames) {
      for (let n = 0; n < frame.length; n++) {
        try {
          decodeServerFrame(frame.subarray(0, n))
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError)
        }
      }
    }
  })

  it('rejects malformed fields: bad bool, non-UTF-8 string, seq above 2^53-1, impossible list count, unknown kinds', () => {
    const auth = encodeClientFrame(1, sampleRequests[0]!)
    const badBool = auth.slice()
    const boolAt = HEADER_BYTES + 2 + 11 + 4 + 3 + 2 + 44
    expect(badBool[boolAt]).toBe(1)
    badBool[boolAt] = 2
    expectProtocolError(() => decodeClientFrame(badBool))

    const badUtf8 = encodeClientFrame(1, { type: 'fetchKeyPackages', userId: 'ab' })
    badUtf8[HEADER_BYTES + 2] = 0xff
    expectProtocolError(() => decodeClientFrame(badUtf8))

    const bigSeq = encodeClientFrame(1, { type: 'fetchWelcomes', afterSeq: 0, limit: 1 })
    bigSeq[HEADER_BYTES] = 0x01
    expectProtocolError(() => decodeClientFrame(bigSeq))

    const hugeList = encodeClientFrame(1, { type: 'uploadKeyPackages', keyPackages: [] })
    new DataView(hugeList.buffer).setUint32(HEADER_BYTES, 0xffffffff)
    expectProtocolError(() => decodeClientFrame(hugeList))

    const badKind = encodeEntryPush(entry)
    badKind[HEADER_BYTES + 4 + 2 + 8] = 4
    expectProtocolError(() => decodeServerFrame(badKind))

    const badOutcome = encodeResponse(1, sampleResponses[7]!)
    badOutcome[HEADER_BYTES] = 2
    expectProtocolError(() => decodeServerFrame(badOutcome))
  })

  it('rejects unknown versions, unknown types and frames sent in the wrong direction', () => {
    const ping = encodeClientFrame(1, { type: 'ping' })
    // Version 1 (logins not bound to the server) and version 3 are both refused.
    for (const version of [1, 3]) {
      const other = ping.slice()
      other[0] = version
      expectProtocolError(() => decodeClientFrame(other), 'UNSUPPORTED_PROTOCOL_VERSION')
      expectProtocolError(() => decodeServerFrame(other), 'UNSUPPORTED_PROTOCOL_VERSION')
    }
    const unknown = ping.slice()
    unknown[1] = 0x33
    expectProtocolError(() => decodeClientFrame(unknown))
    expectProtocolError(() => decodeServerFrame(unknown))
    expectProtocolError(() => decodeClientFrame(encodeResponse(1, { type: 'ping' })))
    expectProtocolError(() => decodeClientFrame(encodeEntryPush(entry)))
    expectProtocolError(() => decodeServerFrame(ping))
    expectProtocolError(() => decodeClientFrame(new Uint8Array(0)))
    expectProtocolError(() => decodeClientFrame(b(1, 1, 0)))
  })

  it('never throws anything but a ProtocolError on random input', () => {
    let seed = 12345
    const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32)
    for (let i = 0; i < 20_000; i++) {
      const length = Math.floor(random() * 64)
      const bytes = new Uint8Array(length)
      for (let j = 0; j < length; j++) bytes[j] = Math.floor(random() * 256)
      if (length > 1 && random() < 0.9) bytes[0] = 1
      if (length > 2 && random() < 0.5) bytes[1] = [...Array(11).keys()].map((k) => k + 1)[Math.floor(random() * 11)]!
      for (const decode of [decodeClientFrame, decodeServerFrame]) {
        try {
          decode(bytes)
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError)
        }
      }
    }
  })

  it('refuses to encode values the protocol cannot carry', () => {
    expect(() => encodeClientFrame(1, { type: 'fetchKeyPackages', userId: 'x'.repeat(70_000) })).toThrow(/65535/)
    expect(() => encodeClientFrame(1, { type: 'fetchEntries', groupId: b(1), afterSeq: -1, limit: 1 })).toThrow(/afterSeq/)
    expect(() => encodeClientFrame(1, { type: 'postCommit', groupId: b(1), epoch: -1n, commit: b(1) })).toThrow(/epoch/)
    expect(() => encodeClientFrame(2 ** 32, { type: 'ping' })).toThrow(/requestId/)
    expect(() => encodeClientFrame(1, { type: 'createGroup', groupId: 'x' as unknown as Uint8Array, groupInfo: b(1) })).toThrow(/Uint8Array/)
  })
})
