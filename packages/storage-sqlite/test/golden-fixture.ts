/**
 * The content of the golden store files (test/golden/ here and in
 * @mls/storage-postgres): written once by the release that introduced a
 * format version, checked by every later release, which must load or migrate
 * them. Deterministic, so the checker knows every byte to expect.
 */
import { expect } from 'vitest'
import type { ClientStore, IdentityRecord, KeyPackageRecord, LogRecord, ServerStore } from '@mls/core/interfaces'

function bytes(label: string, size = 40): Uint8Array {
  const out = new Uint8Array(size)
  let h = 2166136261
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 16777619)
  for (let i = 0; i < size; i++) {
    h = Math.imul(h ^ i, 16777619) >>> 0
    out[i] = h & 0xff
  }
  return out
}

/** Keys as core builds them (packages/core/src/records.ts); values opaque. */
export const CLIENT_ENTRIES: readonly [string, Uint8Array][] = [
  ['identity', bytes('identity', 120)],
  ['keypackage/0a1b2c', bytes('kp-private-1', 64)],
  ['keypackage/ff00ee', bytes('kp-private-2', 64)],
  ['group/aa01/state', bytes('group-state', 2048)],
  ['group/aa01/meta', bytes('group-meta', 32)],
  ['group/aa01/pending', new Uint8Array(0)],
  ['welcomes/cursor', Uint8Array.of(0, 0, 0, 3)],
  ['unicode/\u00e9\u{1F512}', bytes('unicode', 8)]
]

export async function writeClientFixture(store: ClientStore): Promise<void> {
  await store.write(CLIENT_ENTRIES.map(([key, value]) => ({ type: 'put', key, value })))
  // A deleted key: must stay deleted.
  await store.write([{ type: 'put', key: 'keypackage/dead', value: bytes('dead') }])
  await store.write([{ type: 'delete', key: 'keypackage/dead' }])
}

export async function checkClientFixture(store: ClientStore): Promise<void> {
  const sorted = [...CLIENT_ENTRIES].sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  expect((await store.list('')).map((e) => [e.key, e.value])).toEqual(sorted)
  expect(await store.get('keypackage/dead')).toBeUndefined()
  // Still writable.
  await store.write([{ type: 'put', key: 'group/aa01/meta', value: bytes('meta-2', 32) }])
  expect(await store.get('group/aa01/meta')).toEqual(bytes('meta-2', 32))
}

const identity = (clientId: string): IdentityRecord => {
  const [userId = '', deviceId = ''] = clientId.split('/')
  return { clientId, userId, deviceId, signaturePublicKey: bytes(`key:${clientId}`, 32), ciphersuite: 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', registeredAt: 1_700_000_000_000 }
}
const keyPackage = (ref: string, clientId: string, lastResort = false, notAfter = 4_000_000_000): KeyPackageRecord => ({
  ref,
  clientId,
  keyPackage: bytes(`kp:${ref}`, 300),
  lastResort,
  notAfter
})
const ALICE = 'alice/phone'
const BOB = 'bob/laptop'
const G = 'aa01'
const entry = (seq: number, kind: 'commit' | 'application', epoch: bigint, sender: string): Omit<LogRecord, 'seq'> => ({
  kind,
  epoch,
  sender,
  message: bytes(`msg:${seq}`, 200),
  digest: `digest-${seq}`
})
const log = (seq: number, kind: 'commit' | 'application', epoch: bigint, sender: string): LogRecord => ({ seq, ...entry(seq, kind, epoch, sender) })

export async function writeServerFixture(store: ServerStore): Promise<void> {
  await store.registerIdentity(identity(ALICE))
  await store.registerIdentity(identity(BOB))
  await store.addKeyPackages(BOB, [keyPackage('b1', BOB), keyPackage('b2', BOB), keyPackage('b3', BOB)], keyPackage('blr', BOB, true))
  await store.consumeKeyPackage(BOB, 1_700_000_000)
  await store.createGroup({ groupId: G, epoch: 0n, lastSeq: 0, roster: [{ leafIndex: 0, clientId: ALICE }], access: [{ clientId: ALICE, fromSeq: 0, untilSeq: null }] })
  const c1 = entry(1, 'commit', 0n, ALICE)
  await store.appendCommit(G, {
    expectedEpoch: 0n,
    entry: c1,
    roster: [
      { leafIndex: 0, clientId: ALICE },
      { leafIndex: 1, clientId: BOB }
    ],
    access: [
      { clientId: ALICE, fromSeq: 0, untilSeq: null },
      { clientId: BOB, fromSeq: -1, untilSeq: null }
    ],
    welcomes: [{ clientId: BOB, welcome: bytes('welcome:bob', 500) }]
  })
  for (const seq of [2, 3]) {
    await store.appendMessage(G, entry(seq, 'application', 1n, seq === 2 ? ALICE : BOB))
  }
  // Schema v4 (fetch cursors): bob fetched up to seq 2; alice has no cursor row.
  if (typeof store.advanceFetchCursors === 'function') await store.advanceFetchCursors([{ groupId: G, clientId: BOB, seq: 2 }])
}

/**
 * Check a store holding the fixture; `writtenAt` is the schema version that
 * wrote it (stores before v4 hold no fetch cursors: each member counts from
 * its access window).
 */
export async function checkServerFixture(store: ServerStore, writtenAt = Number.MAX_SAFE_INTEGER): Promise<void> {
  expect(await store.getIdentity(ALICE)).toEqual(identity(ALICE))
  expect(await store.listDevices('bob')).toEqual([identity(BOB)])
  expect(await store.countKeyPackages(BOB)).toEqual({ oneTime: 2, lastResort: true })
  expect(await store.lookupServedKeyPackage('b1')).toBe(BOB)
  expect(await store.getGroup(G)).toEqual({
    groupId: G,
    epoch: 1n,
    lastSeq: 3,
    roster: [
      { leafIndex: 0, clientId: ALICE },
      { leafIndex: 1, clientId: BOB }
    ],
    access: [
      { clientId: ALICE, fromSeq: 0, untilSeq: null },
      { clientId: BOB, fromSeq: 1, untilSeq: null }
    ]
  })
  expect(await store.readLog(G, 0, 10)).toEqual([log(1, 'commit', 0n, ALICE), log(2, 'application', 1n, ALICE), log(3, 'application', 1n, BOB)])
  expect(await store.readWelcomes(BOB, 0, 10)).toEqual([{ seq: 1, groupId: G, welcome: bytes('welcome:bob', 500), commitSeq: 1 }])
  expect(await store.readFetchCursors(G)).toEqual([
    { groupId: G, clientId: ALICE, seq: 0 },
    { groupId: G, clientId: BOB, seq: writtenAt >= 4 ? 2 : 1 }
  ])
  // Cursors keep the log: with alice at 3 and bob where he is, pruning keeps what bob has not fetched.
  await store.advanceFetchCursors([{ groupId: G, clientId: ALICE, seq: 3 }])
  expect(await store.pruneLogs({ appendedBeforeMs: 0, keepMessages: 0, keepDigestsForEpochs: 10 })).toEqual({ deleted: writtenAt >= 4 ? 1 : 0 })
  expect((await store.readLog(G, 2, 10)).map((r) => r.seq)).toEqual([3])
  // Still serving in order and still ordering: the next KeyPackage, a replay refused, the next epoch accepted.
  expect((await store.consumeKeyPackage(BOB, 1_700_000_000))?.ref).toBe('b2')
  expect(await store.registerIdentity(identity(BOB))).toBe('exists')
  expect(await store.appendMessage(G, entry(2, 'application', 1n, ALICE))).toEqual({ kind: 'duplicate' })
  const c4 = entry(4, 'commit', 1n, BOB)
  expect(await store.appendCommit(G, { expectedEpoch: 1n, entry: c4, roster: [{ leafIndex: 0, clientId: ALICE }], access: [{ clientId: ALICE, fromSeq: 0, untilSeq: null }], welcomes: [] })).toEqual({
    kind: 'accepted',
    seq: 4,
    welcomeSeqs: []
  })
  // Welcome retention (v5): bob's Welcome can be pruned, and his mailbox keeps counting from its newest seq.
  expect(await store.pruneWelcomes({ appendedBeforeMs: 0, keepWelcomes: 0 })).toEqual({ deleted: 1 })
  expect(await store.readWelcomes(BOB, 0, 10)).toEqual([])
  const c5 = entry(5, 'commit', 2n, ALICE)
  const back = [
    { leafIndex: 0, clientId: ALICE },
    { leafIndex: 1, clientId: BOB }
  ]
  const access = [
    { clientId: ALICE, fromSeq: 0, untilSeq: null },
    { clientId: BOB, fromSeq: -1, untilSeq: null }
  ]
  expect(await store.appendCommit(G, { expectedEpoch: 2n, entry: c5, roster: back, access, welcomes: [{ clientId: BOB, welcome: bytes('welcome:bob-2', 500) }] })).toEqual({
    kind: 'accepted',
    seq: 5,
    welcomeSeqs: [{ clientId: BOB, seq: 2 }]
  })
  expect(await store.readWelcomes(BOB, 0, 10)).toEqual([{ seq: 2, groupId: G, welcome: bytes('welcome:bob-2', 500), commitSeq: 5 }])
}
