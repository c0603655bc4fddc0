import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { AccessWindow, IdentityRecord, KeyPackageRecord, LogRecord, RosterEntry, ServerStore } from '@mls/core/interfaces'
import { contains, rejectsWithCode } from './assertions.js'

/** What `serverStoreConformanceSuite()` checks: how to open (and reopen) the store under test. */
export interface ServerStoreSuiteInit<S extends ServerStore = ServerStore> {
  /** Shown in the describe block. */
  name: string
  /** A fresh, empty store for each test. */
  setup(): Promise<S>
  /** Dispose of a store after its test (it may already be closed). */
  teardown?(store: S): Promise<void>
  /**
   * Reopen the durable state of `store` as a new store instance (after closing
   * it), to prove resolved writes survive a restart. Omit for non-durable adapters.
   */
  reopen?(store: S): Promise<S>
  /**
   * Read every byte the backend holds for this store, bypassing the adapter's
   * read path (e.g. the SQLite file), to prove consumed KeyPackages are gone.
   */
  rawBytes?(store: S): Promise<Uint8Array>
  /**
   * How many Welcome copies the backend holds, read bypassing the adapter's
   * read path (a row count, the memory store's own list), to prove a Welcome
   * sent to many recipients is stored once and goes with its last reference.
   * Omit only where the backend cannot be inspected (e.g. SQLite `:memory:`).
   */
  storedWelcomes?(store: S): Promise<number>
}

const NOW = 1_700_000_000
const FAR = Number.MAX_SAFE_INTEGER

/** Distinct, recognisable bytes for a label (so raw-byte scans can find them). */
function payload(label: string, size = 48): Uint8Array {
  const out = new Uint8Array(size)
  let h = 2166136261
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 16777619)
  for (let i = 0; i < size; i++) {
    h = Math.imul(h ^ i, 16777619) >>> 0
    out[i] = h & 0xff
  }
  return out
}

function identity(clientId: string, key = payload(`key:${clientId}`, 32)): IdentityRecord {
  const [userId = '', deviceId = ''] = clientId.split('/')
  return { clientId, userId, deviceId, signaturePublicKey: key, ciphersuite: 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', registeredAt: 1_700_000_000_000 }
}

function keyPackage(ref: string, clientId: string, options: { notAfter?: number; lastResort?: boolean } = {}): KeyPackageRecord {
  return { ref, clientId, keyPackage: payload(`kp:${ref}`), lastResort: options.lastResort ?? false, notAfter: options.notAfter ?? FAR }
}

function entry(label: string, kind: 'commit' | 'application' | 'proposal' = 'application', epoch = 0n, sender = 'alice/phone'): Omit<LogRecord, 'seq'> {
  return { kind, epoch, sender, message: payload(`msg:${label}`, 64), digest: `digest-${label}` }
}

const G = 'aa01'
const ALICE = 'alice/phone'
const BOB = 'bob/laptop'
const CAROL = 'carol/tablet'

function group(groupId = G, creator = ALICE) {
  return {
    groupId,
    epoch: 0n,
    lastSeq: 0,
    roster: [{ leafIndex: 0, clientId: creator }],
    access: [{ clientId: creator, fromSeq: 0, untilSeq: null }]
  }
}

function commit(
  expectedEpoch: bigint,
  label: string,
  options: { roster?: RosterEntry[]; access?: AccessWindow[]; welcomes?: { clientId: string; welcome: Uint8Array }[] } = {}
) {
  return {
    expectedEpoch,
    entry: entry(label, 'commit', expectedEpoch),
    roster: options.roster ?? [{ leafIndex: 0, clientId: ALICE }],
    access: options.access ?? [{ clientId: ALICE, fromSeq: 0, untilSeq: null }],
    welcomes: options.welcomes ?? []
  }
}

const withBob: RosterEntry[] = [
  { leafIndex: 0, clientId: ALICE },
  { leafIndex: 1, clientId: BOB }
]
/** Access for alice (from 0) and bob, whose open window starts after `fromSeq` (-1: the commit's own seq). */
const bobFrom = (fromSeq: number): AccessWindow[] => [
  { clientId: ALICE, fromSeq: 0, untilSeq: null },
  { clientId: BOB, fromSeq, untilSeq: null }
]

/**
 * The ServerStore contract (packages/core/src/interfaces/server-store.ts), run
 * against one adapter. It asserts only the contract, never an adapter's internals.
 */
export function serverStoreConformanceSuite<S extends ServerStore>(init: ServerStoreSuiteInit<S>): void {
  describe(`ServerStore conformance: ${init.name}`, () => {
    let store: S

    beforeEach(async () => {
      store = await init.setup()
    })
    afterEach(async () => {
      await init.teardown?.(store)
    })

    it('declares the contract version and a tag', () => {
      expect(store.specificationVersion).toBe('v1')
      expect(typeof store[Symbol.toStringTag]).toBe('string')
    })

    it('returns undefined for missing values and [] for empty listings', async () => {
      expect(await store.getIdentity(ALICE)).toBeUndefined()
      expect(await store.listDevices('alice')).toEqual([])
      expect(await store.countKeyPackages(ALICE)).toEqual({ oneTime: 0, lastResort: false })
      expect(await store.consumeKeyPackage(ALICE, NOW)).toBeUndefined()
      expect(await store.lookupServedKeyPackage('00ff')).toBeUndefined()
      expect(await store.getGroup(G)).toBeUndefined()
      expect(await store.readLog(G, 0, 10)).toEqual([])
      expect(await store.readWelcomes(ALICE, 0, 10)).toEqual([])
    })

    describe('identities', () => {
      it('registers once: created, then exists for the same key, conflict for another key', async () => {
        expect(await store.registerIdentity(identity(ALICE))).toBe('created')
        expect(await store.registerIdentity(identity(ALICE))).toBe('exists')
        expect(await store.registerIdentity(identity(ALICE, payload('other key', 32)))).toBe('conflict')
        const stored = await store.getIdentity(ALICE)
        expect(stored).toEqual(identity(ALICE))
        expect(stored?.signaturePublicKey).toEqual(payload(`key:${ALICE}`, 32))
      })

      it('lists a user’s devices sorted by client id, and only that user’s', async () => {
        for (const id of ['alice/tablet', 'alice/desktop', 'al/phone', 'alicex/phone', 'alice/laptop', BOB]) {
          await store.registerIdentity(identity(id))
        }
        const devices = await store.listDevices('alice')
        expect(devices.map((d) => d.clientId)).toEqual(['alice/desktop', 'alice/laptop', 'alice/tablet'])
        expect(devices[0]).toEqual(identity('alice/desktop'))
        expect(await store.listDevices('nobody')).toEqual([])
      })

      it('returns copies of identity keys', async () => {
        const key = payload('copy key', 32)
        await store.registerIdentity(identity(ALICE, key))
        key[0] = key[0]! ^ 0xff
        const read = await store.getIdentity(ALICE)
        expect(read?.signaturePublicKey).toEqual(payload('copy key', 32))
        read!.signaturePublicKey[1] = read!.signaturePublicKey[1]! ^ 0xff
        expect((await store.getIdentity(ALICE))?.signaturePublicKey).toEqual(payload('copy key', 32))
        const listed = await store.listDevices('alice')
        listed[0]!.signaturePublicKey[2] = listed[0]!.signaturePublicKey[2]! ^ 0xff
        expect((await store.getIdentity(ALICE))?.signaturePublicKey).toEqual(payload('copy key', 32))
      })
    })

    describe('KeyPackages', () => {
      it('serves one-time KeyPackages oldest first, across uploads, each once', async () => {
        await store.addKeyPackages(ALICE, [keyPackage('01', ALICE), keyPackage('02', ALICE)], undefined)
        await store.addKeyPackages(ALICE, [keyPackage('03', ALICE)], undefined)
        expect(await store.countKeyPackages(ALICE)).toEqual({ oneTime: 3, lastResort: false })
        const first = await store.consumeKeyPackage(ALICE, NOW)
        expect(first).toEqual(keyPackage('01', ALICE))
        expect((await store.consumeKeyPackage(ALICE, NOW))?.ref).toBe('02')
        expect((await store.consumeKeyPackage(ALICE, NOW))?.ref).toBe('03')
        expect(await store.consumeKeyPackage(ALICE, NOW)).toBeUndefined()
        expect(await store.countKeyPackages(ALICE)).toEqual({ oneTime: 0, lastResort: false })
      })

      it('keeps pools per client', async () => {
        await store.addKeyPackages(ALICE, [keyPackage('a1', ALICE)], undefined)
        await store.addKeyPackages(BOB, [keyPackage('b1', BOB)], undefined)
        expect((await store.consumeKeyPackage(BOB, NOW))?.ref).toBe('b1')
        expect(await store.consumeKeyPackage(BOB, NOW)).toBeUndefined()
        expect(await store.countKeyPackages(ALICE)).toEqual({ oneTime: 1, lastResort: false })
        expect((await store.consumeKeyPackage(ALICE, NOW))?.clientId).toBe(ALICE)
      })

      it('ignores refs it already knows: pooled, served or a current last-resort', async () => {
        await store.addKeyPackages(ALICE, [keyPackage('01', ALICE), keyPackage('01', ALICE)], keyPackage('lr', ALICE, { lastResort: true }))
        expect(await store.countKeyPackages(ALICE)).toEqual({ oneTime: 1, lastResort: true })
        await store.addKeyPackages(ALICE, [keyPackage('01', ALICE), keyPackage('lr', ALICE)], undefined)
        expect(await store.countKeyPackages(ALICE)).toEqual({ oneTime: 1, lastResort: true })
        expect((await store.consumeKeyPackage(ALICE, NOW))?.ref).toBe('01')
        await store.addKeyPackages(ALICE, [keyPackage('01', ALICE)], undefined)
        expect(await store.countKeyPackages(ALICE)).toEqual({ oneTime: 0, lastResort: true })
        const next = await store.consumeKeyPackage(ALICE, NOW)
        expect(next?.ref).toBe('lr')
        expect(next?.lastResort).toBe(true)
      })

      it('never serves the same one-time KeyPackage twice under 50 concurrent consumes', async () => {
        const refs = Array.from({ length: 30 }, (_, i) => `c${String(i).padStart(2, '0')}`)
        await store.addKeyPackages(ALICE, refs.map((r) => keyPackage(r, ALICE)), keyPackage('last', ALICE, { lastResort: true }))
        const results = await Promise.all(Array.from({ length: 50 }, () => store.consumeKeyPackage(ALICE, NOW)))
        const oneTime = results.filter((r) => r !== undefined && !r.lastResort).map((r) => r!.ref)
        expect(new Set(oneTime).size).toBe(oneTime.length)
        expect(oneTime.sort()).toEqual(refs)
        const lastResort = results.filter((r) => r?.lastResort === true)
        expect(lastResort).toHaveLength(20)
        expect(lastResort.every((r) => r?.ref === 'last')).toBe(true)
        expect(await store.countKeyPackages(ALICE)).toEqual({ oneTime: 0, lastResort: true })
      })

      it('serves the last-resort KeyPackage only when the pool is empty, without removing it', async () => {
        await store.addKeyPackages(ALICE, [keyPackage('one', ALICE)], keyPackage('lr', ALICE, { lastResort: true }))
        expect(await store.countKeyPackages(ALICE)).toEqual({ oneTime: 1, lastResort: true })
        expect(await store.consumeKeyPackage(ALICE, NOW)).toMatchObject({ ref: 'one', lastResort: false })
        const lr1 = await store.consumeKeyPackage(ALICE, NOW)
        expect(lr1).toEqual(keyPackage('lr', ALICE, { lastResort: true }))
        expect(await store.consumeKeyPackage(ALICE, NOW)).toMatchObject({ ref: 'lr', lastResort: true })
        expect(await store.countKeyPackages(ALICE)).toEqual({ oneTime: 0, lastResort: true })
        await store.addKeyPackages(ALICE, [keyPackage('two', ALICE)], undefined)
        expect(await store.consumeKeyPackage(ALICE, NOW)).toMatchObject({ ref: 'two', lastResort: false })
      })

      it('replaces the last-resort KeyPackage with a new upload', async () => {
        await store.addKeyPackages(ALICE, [], keyPackage('lr-old', ALICE, { lastResort: true }))
        await store.addKeyPackages(ALICE, [], keyPackage('lr-new', ALICE, { lastResort: true }))
        expect(await store.countKeyPackages(ALICE)).toEqual({ oneTime: 0, lastResort: true })
        const served = await store.consumeKeyPackage(ALICE, NOW)
        expect(served).toEqual(keyPackage('lr-new', ALICE, { lastResort: true }))
      })

      it('drops expired one-time KeyPackages and does not serve an expired last-resort one', async () => {
        await store.addKeyPackages(
          ALICE,
          [keyPackage('old1', ALICE, { notAfter: NOW - 10 }), keyPackage('edge', ALICE, { notAfter: NOW }), keyPackage('old2', ALICE, { notAfter: NOW - 1 })],
          keyPackage('lr', ALICE, { lastResort: true, notAfter: NOW - 1 })
        )
        expect((await store.consumeKeyPackage(ALICE, NOW))?.ref).toBe('edge')
        expect(await store.consumeKeyPackage(ALICE, NOW)).toBeUndefined()
        expect(await store.countKeyPackages(ALICE)).toEqual({ oneTime: 0, lastResort: true })
        expect(await store.lookupServedKeyPackage('old1')).toBeUndefined()
        expect(await store.lookupServedKeyPackage('old2')).toBeUndefined()
        expect(await store.lookupServedKeyPackage('lr')).toBeUndefined()
        expect((await store.consumeKeyPackage(ALICE, NOW - 5))?.ref).toBe('lr')
      })

      it('remembers a ref as served only once it was served, one-time and last-resort alike', async () => {
        await store.addKeyPackages(BOB, [keyPackage('b1', BOB)], keyPackage('blr', BOB, { lastResort: true }))
        expect(await store.lookupServedKeyPackage('b1')).toBeUndefined()
        expect(await store.lookupServedKeyPackage('blr')).toBeUndefined()
        await store.consumeKeyPackage(BOB, NOW)
        expect(await store.lookupServedKeyPackage('b1')).toBe(BOB)
        expect(await store.lookupServedKeyPackage('blr')).toBeUndefined()
        await store.consumeKeyPackage(BOB, NOW)
        expect(await store.lookupServedKeyPackage('blr')).toBe(BOB)
        expect(await store.lookupServedKeyPackage('unknown')).toBeUndefined()
      })

      it('returns copies of KeyPackage bytes and copies what it is given', async () => {
        const record = keyPackage('k', ALICE)
        await store.addKeyPackages(ALICE, [record], keyPackage('lr', ALICE, { lastResort: true }))
        record.keyPackage.fill(7)
        const served = await store.consumeKeyPackage(ALICE, NOW)
        expect(served?.keyPackage).toEqual(payload('kp:k'))
        const lr = await store.consumeKeyPackage(ALICE, NOW)
        lr!.keyPackage.fill(9)
        expect((await store.consumeKeyPackage(ALICE, NOW))?.keyPackage).toEqual(payload('kp:lr'))
      })

      if (init.rawBytes !== undefined) {
        const rawBytes = init.rawBytes
        it('does not keep the bytes of consumed, expired or replaced KeyPackages', async () => {
          await store.addKeyPackages(
            ALICE,
            [keyPackage('expired', ALICE, { notAfter: NOW - 1 }), keyPackage('gone', ALICE), keyPackage('kept', ALICE)],
            keyPackage('lr-old', ALICE, { lastResort: true })
          )
          expect(contains(await rawBytes(store), payload('kp:expired'))).toBe(true)
          expect((await store.consumeKeyPackage(ALICE, NOW))?.ref).toBe('gone')
          await store.addKeyPackages(ALICE, [], keyPackage('lr-new', ALICE, { lastResort: true }))
          const raw = await rawBytes(store)
          expect(contains(raw, payload('kp:kept'))).toBe(true)
          expect(contains(raw, payload('kp:lr-new'))).toBe(true)
          expect(contains(raw, payload('kp:expired'))).toBe(false)
          expect(contains(raw, payload('kp:gone'))).toBe(false)
          expect(contains(raw, payload('kp:lr-old'))).toBe(false)
        })
      }
    })

    describe('groups and the log', () => {
      it('creates a group once and reads it back', async () => {
        expect(await store.createGroup(group())).toBe(true)
        expect(await store.createGroup({ ...group(), roster: [{ leafIndex: 0, clientId: BOB }] })).toBe(false)
        expect(await store.getGroup(G)).toEqual(group())
      })

      it('appends a commit: seq 1, next epoch, roster and access replaced, -1 resolved to the entry seq', async () => {
        await store.createGroup(group())
        const result = await store.appendCommit(
          G,
          commit(0n, 'c1', {
            roster: [
              { leafIndex: 0, clientId: ALICE },
              { leafIndex: 1, clientId: BOB }
            ],
            access: [
              { clientId: ALICE, fromSeq: 0, untilSeq: null },
              { clientId: BOB, fromSeq: -1, untilSeq: null }
            ]
          })
        )
        expect(result).toEqual({ kind: 'accepted', seq: 1, welcomeSeqs: [] })
        expect(await store.getGroup(G)).toEqual({
          groupId: G,
          epoch: 1n,
          lastSeq: 1,
          roster: [
            { leafIndex: 0, clientId: ALICE },
            { leafIndex: 1, clientId: BOB }
          ],
          access: [
            { clientId: ALICE, fromSeq: 0, untilSeq: null },
            { clientId: BOB, fromSeq: 1, untilSeq: null }
          ]
        })
        await store.appendMessage(G, entry('m2', 'application', 1n))
        const removal = await store.appendCommit(
          G,
          commit(1n, 'c3', {
            access: [
              { clientId: ALICE, fromSeq: 0, untilSeq: null },
              { clientId: BOB, fromSeq: 1, untilSeq: -1 }
            ]
          })
        )
        expect(removal).toMatchObject({ kind: 'accepted', seq: 3 })
        const after = await store.getGroup(G)
        expect(after?.epoch).toBe(2n)
        expect(after?.roster).toEqual([{ leafIndex: 0, clientId: ALICE }])
        expect(after?.access).toEqual([
          { clientId: ALICE, fromSeq: 0, untilSeq: null },
          { clientId: BOB, fromSeq: 1, untilSeq: 3 }
        ])
      })

      it('refuses a commit for an old or a future epoch with the current epoch, changing nothing', async () => {
        await store.createGroup(group())
        await store.appendCommit(G, commit(0n, 'c1'))
        const welcomes = [{ clientId: BOB, welcome: payload('w') }]
        expect(await store.appendCommit(G, commit(0n, 'stale', { welcomes, roster: [] }))).toEqual({ kind: 'conflict', epoch: 1n })
        expect(await store.appendCommit(G, commit(5n, 'future', { welcomes, roster: [] }))).toEqual({ kind: 'conflict', epoch: 1n })
        const g = await store.getGroup(G)
        expect(g).toMatchObject({ epoch: 1n, lastSeq: 1, roster: [{ leafIndex: 0, clientId: ALICE }] })
        expect((await store.readLog(G, 0, 10)).map((r) => r.digest)).toEqual(['digest-c1'])
        expect(await store.readWelcomes(BOB, 0, 10)).toEqual([])
      })

      it('accepts exactly one of concurrent commits for the same epoch', async () => {
        await store.createGroup(group())
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => store.appendCommit(G, commit(0n, `race${i}`, { welcomes: [{ clientId: BOB, welcome: payload(`w${i}`) }] })))
        )
        const accepted = results.filter((r) => r.kind === 'accepted')
        expect(accepted).toHaveLength(1)
        expect(results.filter((r) => r.kind === 'conflict').every((r) => r.kind === 'conflict' && r.epoch === 1n)).toBe(true)
        expect(await store.readLog(G, 0, 100)).toHaveLength(1)
        expect(await store.readWelcomes(BOB, 0, 100)).toHaveLength(1)
        expect((await store.getGroup(G))?.epoch).toBe(1n)
      })

      it('numbers commits and messages without gaps, concurrent appends included', async () => {
        await store.createGroup(group())
        await store.appendCommit(G, commit(0n, 'c'))
        const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.appendMessage(G, entry(`m${i}`, 'application', 1n))))
        const seqs = results.map((r) => (r.kind === 'accepted' ? r.seq : -1)).sort((a, b) => a - b)
        expect(seqs).toEqual(Array.from({ length: 20 }, (_, i) => i + 2))
        await store.appendCommit(G, commit(1n, 'c2'))
        const log = await store.readLog(G, 0, 100)
        expect(log.map((r) => r.seq)).toEqual(Array.from({ length: 22 }, (_, i) => i + 1))
        expect((await store.getGroup(G))?.lastSeq).toBe(22)
      })

      it('puts Welcomes in each recipient’s mailbox with its own seqs and the commit seq', async () => {
        await store.createGroup(group())
        await store.appendMessage(G, entry('m1'))
        const r1 = await store.appendCommit(
          G,
          commit(0n, 'c2', {
            welcomes: [
              { clientId: BOB, welcome: payload('w-bob') },
              { clientId: CAROL, welcome: payload('w-carol') }
            ]
          })
        )
        expect(r1).toEqual({
          kind: 'accepted',
          seq: 2,
          welcomeSeqs: [
            { clientId: BOB, seq: 1 },
            { clientId: CAROL, seq: 1 }
          ]
        })
        await store.createGroup(group('bb02'))
        const r2 = await store.appendCommit('bb02', commit(0n, 'other', { welcomes: [{ clientId: BOB, welcome: payload('w-bob-2') }] }))
        expect(r2).toEqual({ kind: 'accepted', seq: 1, welcomeSeqs: [{ clientId: BOB, seq: 2 }] })
        expect(await store.readWelcomes(BOB, 0, 10)).toEqual([
          { seq: 1, groupId: G, welcome: payload('w-bob'), commitSeq: 2 },
          { seq: 2, groupId: 'bb02', welcome: payload('w-bob-2'), commitSeq: 1 }
        ])
        expect(await store.readWelcomes(BOB, 1, 10)).toEqual([{ seq: 2, groupId: 'bb02', welcome: payload('w-bob-2'), commitSeq: 1 }])
        expect(await store.readWelcomes(BOB, 0, 1)).toHaveLength(1)
        expect(await store.readWelcomes(BOB, 2, 10)).toEqual([])
        expect(await store.readWelcomes(CAROL, 0, 10)).toEqual([{ seq: 1, groupId: G, welcome: payload('w-carol'), commitSeq: 2 }])
        expect(await store.readWelcomes(ALICE, 0, 10)).toEqual([])
      })

      it('numbers one commit’s Welcomes per recipient in the commit’s order, after what each mailbox already holds', async () => {
        await store.createGroup(group())
        await store.createGroup(group('bb02'))
        // Carol's mailbox already holds one Welcome; bob's and dave's are empty.
        await store.appendCommit('bb02', commit(0n, 'first', { welcomes: [{ clientId: CAROL, welcome: payload('w-carol-0') }] }))
        const DAVE = 'dave/desk'
        const result = await store.appendCommit(
          G,
          commit(0n, 'c1', {
            welcomes: [
              { clientId: CAROL, welcome: payload('w-carol-1') },
              { clientId: BOB, welcome: payload('w-bob-1') },
              { clientId: CAROL, welcome: payload('w-carol-2') },
              { clientId: DAVE, welcome: payload('w-bob-1') },
              { clientId: BOB, welcome: payload('w-bob-2') }
            ]
          })
        )
        expect(result).toEqual({
          kind: 'accepted',
          seq: 1,
          welcomeSeqs: [
            { clientId: CAROL, seq: 2 },
            { clientId: BOB, seq: 1 },
            { clientId: CAROL, seq: 3 },
            { clientId: DAVE, seq: 1 },
            { clientId: BOB, seq: 2 }
          ]
        })
        expect((await store.readWelcomes(CAROL, 0, 10)).map((w) => [w.seq, w.welcome])).toEqual([
          [1, payload('w-carol-0')],
          [2, payload('w-carol-1')],
          [3, payload('w-carol-2')]
        ])
        expect((await store.readWelcomes(BOB, 0, 10)).map((w) => [w.seq, w.welcome, w.commitSeq])).toEqual([
          [1, payload('w-bob-1'), 1],
          [2, payload('w-bob-2'), 1]
        ])
        expect(await store.readWelcomes(DAVE, 0, 10)).toEqual([{ seq: 1, groupId: G, welcome: payload('w-bob-1'), commitSeq: 1 }])
      })

      it('stores a Welcome sent to many recipients once; each recipient reads its own copy', async () => {
        const copies = async (): Promise<number | undefined> => init.storedWelcomes?.(store)
        await store.createGroup(group())
        const welcome = payload('w-many', 4096)
        const recipients = Array.from({ length: 20 }, (_, i) => `user${i}/device`)
        // Ten recipients get the same array, ten an equal copy: equal bytes are one Welcome however they arrive.
        const welcomes = recipients.map((clientId, i) => ({ clientId, welcome: i < 10 ? welcome : welcome.slice() }))
        const other = payload('w-other', 512)
        const result = await store.appendCommit(G, commit(0n, 'add-many', { welcomes: [...welcomes, { clientId: CAROL, welcome: other }] }))
        expect(result).toEqual({ kind: 'accepted', seq: 1, welcomeSeqs: [...recipients, CAROL].map((clientId) => ({ clientId, seq: 1 })) })
        if (init.storedWelcomes !== undefined) expect(await copies()).toBe(2)
        // A commit refused for its epoch stores no Welcome.
        expect(await store.appendCommit(G, commit(0n, 'stale', { welcomes }))).toEqual({ kind: 'conflict', epoch: 1n })
        if (init.storedWelcomes !== undefined) expect(await copies()).toBe(2)
        for (const clientId of recipients) expect(await store.readWelcomes(clientId, 0, 10)).toEqual([{ seq: 1, groupId: G, welcome, commitSeq: 1 }])
        expect(await store.readWelcomes(CAROL, 0, 10)).toEqual([{ seq: 1, groupId: G, welcome: other, commitSeq: 1 }])
        // What one recipient does with its copy does not reach another's.
        const [first] = await store.readWelcomes(recipients[0] as string, 0, 1)
        first?.welcome.fill(0)
        expect((await store.readWelcomes(recipients[1] as string, 0, 1))[0]?.welcome).toEqual(welcome)
        expect((await store.readWelcomes(recipients[0] as string, 0, 1))[0]?.welcome).toEqual(welcome)
        if (init.reopen !== undefined) {
          store = await init.reopen(store)
          for (const clientId of recipients) expect(await store.readWelcomes(clientId, 0, 10)).toEqual([{ seq: 1, groupId: G, welcome, commitSeq: 1 }])
          if (init.storedWelcomes !== undefined) expect(await copies()).toBe(2)
        }
      })

      it('prunes Welcomes by mailbox position and deletes a shared copy with the last row referring to it, not before', async () => {
        const copies = async (): Promise<number | undefined> => init.storedWelcomes?.(store)
        const everything = { appendedBeforeMs: 0, keepWelcomes: Number.MAX_SAFE_INTEGER }
        for (const id of [G, 'bb02', 'bb03', 'bb04']) await store.createGroup(group(id))
        const w1 = payload('w1', 1024)
        await store.appendCommit(G, commit(0n, 'add-both', { welcomes: [{ clientId: BOB, welcome: w1 }, { clientId: CAROL, welcome: w1 }] }))
        await store.appendCommit('bb02', commit(0n, 'add-bob', { welcomes: [{ clientId: BOB, welcome: payload('w2') }] }))
        expect(await store.pruneWelcomes(everything)).toEqual({ deleted: 0 })
        if (init.storedWelcomes !== undefined) expect(await copies()).toBe(2)
        // Keep one per mailbox: bob's row for w1 goes, carol's stays, and so does the copy.
        expect(await store.pruneWelcomes({ appendedBeforeMs: 0, keepWelcomes: 1 })).toEqual({ deleted: 1 })
        expect(await store.readWelcomes(BOB, 0, 10)).toEqual([{ seq: 2, groupId: 'bb02', welcome: payload('w2'), commitSeq: 1 }])
        expect(await store.readWelcomes(CAROL, 0, 10)).toEqual([{ seq: 1, groupId: G, welcome: w1, commitSeq: 1 }])
        if (init.storedWelcomes !== undefined) expect(await copies()).toBe(2)
        expect(await store.pruneWelcomes({ appendedBeforeMs: 0, keepWelcomes: 1 })).toEqual({ deleted: 0 })
        // Carol's next Welcome pushes w1's last row out: the copy goes with it.
        await store.appendCommit('bb03', commit(0n, 'add-carol', { welcomes: [{ clientId: CAROL, welcome: payload('w3') }] }))
        if (init.storedWelcomes !== undefined) expect(await copies()).toBe(3)
        expect(await store.pruneWelcomes({ appendedBeforeMs: 0, keepWelcomes: 1 })).toEqual({ deleted: 1 })
        expect(await store.readWelcomes(CAROL, 0, 10)).toEqual([{ seq: 2, groupId: 'bb03', welcome: payload('w3'), commitSeq: 1 }])
        if (init.storedWelcomes !== undefined) expect(await copies()).toBe(2)
        // Empty the mailboxes: seqs are never reused, so a client fetching after the last one it saw gets the next Welcome.
        expect(await store.pruneWelcomes({ appendedBeforeMs: 0, keepWelcomes: 0 })).toEqual({ deleted: 2 })
        if (init.storedWelcomes !== undefined) expect(await copies()).toBe(0)
        expect(await store.readWelcomes(BOB, 0, 10)).toEqual([])
        const next = await store.appendCommit('bb04', commit(0n, 'add-bob-again', { welcomes: [{ clientId: BOB, welcome: payload('w4') }] }))
        expect(next).toMatchObject({ kind: 'accepted', welcomeSeqs: [{ clientId: BOB, seq: 3 }] })
        expect(await store.readWelcomes(BOB, 2, 10)).toEqual([{ seq: 3, groupId: 'bb04', welcome: payload('w4'), commitSeq: 1 }])
      })

      it('prunes Welcomes by age: all recipients of an old Welcome at once, with their copy', async () => {
        await store.createGroup(group())
        const w = payload('w-old', 2048)
        await store.appendCommit(G, commit(0n, 'add-both', { welcomes: [{ clientId: BOB, welcome: w }, { clientId: CAROL, welcome: w }] }))
        expect(await store.pruneWelcomes({ appendedBeforeMs: Date.now() - 3_600_000, keepWelcomes: Number.MAX_SAFE_INTEGER })).toEqual({ deleted: 0 })
        expect(await store.readWelcomes(CAROL, 0, 10)).toHaveLength(1)
        expect(await store.pruneWelcomes({ appendedBeforeMs: Date.now() + 3_600_000, keepWelcomes: Number.MAX_SAFE_INTEGER })).toEqual({ deleted: 2 })
        expect(await store.readWelcomes(BOB, 0, 10)).toEqual([])
        expect(await store.readWelcomes(CAROL, 0, 10)).toEqual([])
        if (init.storedWelcomes !== undefined) expect(await init.storedWelcomes(store)).toBe(0)
      })

      it('under concurrent commits with Welcomes and pruning, every kept row reads its own Welcome and no copy outlives its rows', async () => {
        const groups = ['cc00', 'cc01', 'cc02', 'cc03']
        for (const id of groups) await store.createGroup(group(id))
        const welcomeOf = (id: string, round: number) => payload(`w-${id}-${round}`, 256)
        for (let round = 0; round < 8; round++) {
          const results = await Promise.all([
            ...groups.map((id) =>
              store.appendCommit(id, commit(BigInt(round), `r${round}-${id}`, { welcomes: [BOB, CAROL].map((clientId) => ({ clientId, welcome: welcomeOf(id, round) })) }))
            ),
            store.pruneWelcomes({ appendedBeforeMs: 0, keepWelcomes: 3 })
          ])
          for (const result of results.slice(0, groups.length)) expect(result).toMatchObject({ kind: 'accepted' })
        }
        // Each group's log holds only its commits, so commit seq n is round n - 1.
        const kept = [...(await store.readWelcomes(BOB, 0, 1000)), ...(await store.readWelcomes(CAROL, 0, 1000))]
        for (const w of kept) expect(w.welcome).toEqual(welcomeOf(w.groupId, w.commitSeq - 1))
        for (const clientId of [BOB, CAROL]) {
          const seqs = (await store.readWelcomes(clientId, 0, 1000)).map((w) => w.seq)
          expect(seqs.at(-1)).toBe(32)
          expect(seqs.length).toBeGreaterThanOrEqual(3)
        }
        if (init.storedWelcomes !== undefined) expect(await init.storedWelcomes(store)).toBe(new Set(kept.map((w) => `${w.groupId}/${w.commitSeq}`)).size)
        await store.pruneWelcomes({ appendedBeforeMs: 0, keepWelcomes: 3 })
        for (const clientId of [BOB, CAROL]) expect((await store.readWelcomes(clientId, 0, 1000)).map((w) => w.seq)).toEqual([30, 31, 32])
        const left = [...(await store.readWelcomes(BOB, 0, 1000)), ...(await store.readWelcomes(CAROL, 0, 1000))]
        if (init.storedWelcomes !== undefined) expect(await init.storedWelcomes(store)).toBe(new Set(left.map((w) => `${w.groupId}/${w.commitSeq}`)).size)
      })

      it('refuses a message whose digest is already in the group’s log, without using a seq', async () => {
        await store.createGroup(group())
        await store.createGroup(group('bb02'))
        expect(await store.appendMessage(G, entry('m'))).toEqual({ kind: 'accepted', seq: 1 })
        expect(await store.appendMessage(G, { ...entry('m'), message: payload('different bytes') })).toEqual({ kind: 'duplicate' })
        await store.appendCommit(G, commit(0n, 'c'))
        expect(await store.appendMessage(G, { ...entry('x'), digest: 'digest-c' })).toEqual({ kind: 'duplicate' })
        expect(await store.appendMessage('bb02', entry('m'))).toEqual({ kind: 'accepted', seq: 1 })
        expect(await store.appendMessage(G, entry('n'))).toEqual({ kind: 'accepted', seq: 3 })
        expect((await store.readLog(G, 0, 10)).map((r) => r.seq)).toEqual([1, 2, 3])
      })

      it('appends a message only from a sender in the roster at that instant: not-a-member once a commit removed it', async () => {
        await store.createGroup(group())
        const both = [{ leafIndex: 0, clientId: ALICE }, { leafIndex: 1, clientId: BOB }]
        await store.appendCommit(G, commit(0n, 'add-bob', { roster: both }))
        expect(await store.appendMessage(G, entry('from-bob', 'application', 1n, BOB))).toEqual({ kind: 'accepted', seq: 2 })
        expect(await store.appendMessage(G, entry('from-carol', 'application', 1n, CAROL))).toEqual({ kind: 'not-a-member' })
        // A caller that read the roster before this commit (another server instance) cannot get bob's message in.
        await store.appendCommit(G, commit(1n, 'remove-bob'))
        expect(await store.appendMessage(G, entry('late-bob', 'application', 1n, BOB))).toEqual({ kind: 'not-a-member' })
        expect((await store.readLog(G, 0, 10)).map((r) => r.digest)).toEqual(['digest-add-bob', 'digest-from-bob', 'digest-remove-bob'])
        expect(await store.getGroup(G)).toMatchObject({ lastSeq: 3 })
        expect(await store.appendMessage(G, entry('from-alice', 'application', 2n, ALICE))).toEqual({ kind: 'accepted', seq: 4 })
      })

      it('rejects appends to an unknown group with UNKNOWN_GROUP', async () => {
        await rejectsWithCode(store.appendMessage('cc03', entry('m')), 'UNKNOWN_GROUP')
        await rejectsWithCode(store.appendCommit('cc03', commit(0n, 'c')), 'UNKNOWN_GROUP')
        expect(await store.getGroup('cc03')).toBeUndefined()
      })

      it('reads the log by range, limit and untilSeq, with every field', async () => {
        await store.createGroup(group())
        await store.appendCommit(G, commit(0n, 'c1', { roster: [{ leafIndex: 0, clientId: ALICE }, { leafIndex: 1, clientId: BOB }] }))
        for (let i = 2; i <= 10; i++) await store.appendMessage(G, entry(`m${i}`, 'application', 1n, i % 2 === 0 ? ALICE : BOB))
        const all = await store.readLog(G, 0, 100)
        expect(all).toHaveLength(10)
        expect(all[0]).toEqual({ seq: 1, kind: 'commit', epoch: 0n, sender: ALICE, message: payload('msg:c1', 64), digest: 'digest-c1' })
        expect(all[2]).toEqual({ seq: 3, kind: 'application', epoch: 1n, sender: BOB, message: payload('msg:m3', 64), digest: 'digest-m3' })
        expect((await store.readLog(G, 4, 100)).map((r) => r.seq)).toEqual([5, 6, 7, 8, 9, 10])
        expect((await store.readLog(G, 4, 2)).map((r) => r.seq)).toEqual([5, 6])
        expect((await store.readLog(G, 4, 100, 7)).map((r) => r.seq)).toEqual([5, 6, 7])
        expect((await store.readLog(G, 4, 2, 7)).map((r) => r.seq)).toEqual([5, 6])
        expect((await store.readLog(G, 0, 100, 0)).map((r) => r.seq)).toEqual([])
        expect(await store.readLog(G, 7, 100, 5)).toEqual([])
        expect(await store.readLog(G, 10, 100)).toEqual([])
        expect(await store.readLog(G, 0, 0)).toEqual([])
      })

      it('returns copies of log entries, group records and Welcomes, and copies what it is given', async () => {
        await store.createGroup(group())
        const message = entry('m')
        await store.appendMessage(G, message)
        message.message.fill(1)
        const welcome = payload('w')
        const c = commit(0n, 'c', { welcomes: [{ clientId: BOB, welcome }] })
        const roster = c.roster
        await store.appendCommit(G, c)
        welcome.fill(2)
        c.entry.message.fill(3)
        roster.push({ leafIndex: 7, clientId: CAROL })
        const log = await store.readLog(G, 0, 10)
        expect(log[0]?.message).toEqual(payload('msg:m', 64))
        expect(log[1]?.message).toEqual(payload('msg:c', 64))
        log[0]!.message.fill(4)
        expect((await store.readLog(G, 0, 1))[0]?.message).toEqual(payload('msg:m', 64))
        const welcomes = await store.readWelcomes(BOB, 0, 10)
        expect(welcomes[0]?.welcome).toEqual(payload('w'))
        welcomes[0]!.welcome.fill(5)
        expect((await store.readWelcomes(BOB, 0, 10))[0]?.welcome).toEqual(payload('w'))
        const g = await store.getGroup(G)
        expect(g?.roster).toEqual([{ leafIndex: 0, clientId: ALICE }])
        ;(g?.roster as RosterEntry[]).push({ leafIndex: 9, clientId: CAROL })
        ;(g?.access as AccessWindow[]).splice(0)
        expect(await store.getGroup(G)).toMatchObject({ roster: [{ leafIndex: 0, clientId: ALICE }], access: [{ clientId: ALICE, fromSeq: 0, untilSeq: null }] })
      })
    })

    describe('log retention', () => {
      /** Everything in the past and nothing kept by count: only what `pruning` names goes. */
      const NEVER_BY_AGE = 0
      const ALL_BY_COUNT = Number.MAX_SAFE_INTEGER
      /** Every current member fetched everything so far (the age and count rules stop at the lowest fetch cursor). */
      const fetchedAll = async (...groupIds: string[]): Promise<void> => {
        for (const groupId of groupIds.length === 0 ? [G] : groupIds) {
          const head = (await store.getGroup(groupId))?.lastSeq ?? 0
          await store.advanceFetchCursors((await store.readFetchCursors(groupId)).map((c) => ({ ...c, seq: head })))
        }
      }

      it('keeps the newest messages by count, never commits or proposals, and moves the retained start past the last one deleted', async () => {
        await store.createGroup(group())
        await store.createGroup(group('bb02'))
        expect(await store.logRetainedFrom(G)).toBe(1)
        expect(await store.logRetainedFrom('cc03')).toBeUndefined()
        await store.appendCommit(G, commit(0n, 'c1')) // 1
        for (let i = 2; i <= 6; i++) await store.appendMessage(G, entry(`m${i}`, 'application', 1n)) // 2..6
        await store.appendCommit(G, commit(1n, 'c7')) // 7
        await store.appendMessage(G, entry('m8', 'application', 2n)) // 8
        await store.appendMessage('bb02', entry('other', 'application', 0n))
        await fetchedAll(G, 'bb02')
        expect(await store.pruneLogs({ appendedBeforeMs: NEVER_BY_AGE, keepMessages: 2, keepDigestsForEpochs: 10 })).toEqual({ deleted: 4 })
        expect((await store.readLog(G, 0, 100)).map((r) => r.seq)).toEqual([1, 6, 7, 8])
        expect(await store.logRetainedFrom(G)).toBe(6)
        expect(await store.logRetainedFrom('bb02')).toBe(1)
        expect((await store.readLog('bb02', 0, 100)).map((r) => r.digest)).toEqual(['digest-other'])
        // A deleted message's digest still refuses its replay; the log continues after the last seq.
        expect(await store.appendMessage(G, entry('m3', 'application', 2n))).toEqual({ kind: 'duplicate' })
        expect(await store.appendMessage(G, entry('m9', 'application', 2n))).toEqual({ kind: 'accepted', seq: 9 })
        await fetchedAll()
        // Pruning again with the same rule deletes only what it newly selects; the start never moves back.
        expect(await store.pruneLogs({ appendedBeforeMs: NEVER_BY_AGE, keepMessages: 2, keepDigestsForEpochs: 10 })).toEqual({ deleted: 1 })
        expect((await store.readLog(G, 5, 100)).map((r) => r.seq)).toEqual([7, 8, 9])
        expect(await store.logRetainedFrom(G)).toBe(7)
        expect(await store.getGroup(G)).toMatchObject({ epoch: 2n, lastSeq: 9 })
      })

      it('deletes messages appended before a time, of every group', async () => {
        await store.createGroup(group())
        await store.createGroup(group('bb02'))
        await store.appendMessage(G, entry('old-a'))
        await store.appendProposal(G, { expectedEpoch: 0n, entry: entry('p', 'proposal'), publicState: { epoch: 0n, state: payload('ps'), groupInfo: undefined } })
        await store.appendMessage('bb02', entry('old-b'))
        await fetchedAll(G, 'bb02')
        // A minute ahead: everything above was appended before it, by any store clock on this machine (PostgreSQL's
        // rounds to the millisecond). Prune by age with nothing kept by count.
        const before = Date.now() + 60_000
        expect(await store.pruneLogs({ appendedBeforeMs: before, keepMessages: ALL_BY_COUNT, keepDigestsForEpochs: 10 })).toEqual({ deleted: 2 })
        expect((await store.readLog(G, 0, 100)).map((r) => r.kind)).toEqual(['proposal'])
        expect(await store.readLog('bb02', 0, 100)).toEqual([])
        expect(await store.logRetainedFrom(G)).toBe(2)
        expect(await store.logRetainedFrom('bb02')).toBe(2)
        expect(await store.pruneLogs({ appendedBeforeMs: NEVER_BY_AGE, keepMessages: ALL_BY_COUNT, keepDigestsForEpochs: 10 })).toEqual({ deleted: 0 })
      })

      if (init.rawBytes !== undefined) {
        const rawBytes = init.rawBytes
        it('does not keep the bytes of deleted messages', async () => {
          await store.createGroup(group())
          await store.appendMessage(G, entry('secret-1'))
          await store.appendMessage(G, entry('kept-2'))
          expect(contains(await rawBytes(store), payload('msg:secret-1', 64))).toBe(true)
          await fetchedAll()
          expect(await store.pruneLogs({ appendedBeforeMs: NEVER_BY_AGE, keepMessages: 1, keepDigestsForEpochs: 10 })).toEqual({ deleted: 1 })
          const raw = await rawBytes(store)
          expect(contains(raw, payload('msg:secret-1', 64))).toBe(false)
          expect(contains(raw, payload('msg:kept-2', 64))).toBe(true)
        })
      }

      if (init.reopen !== undefined) {
        const reopen = init.reopen
        it('keeps the retained start across a restart', async () => {
          await store.createGroup(group())
          for (let i = 1; i <= 3; i++) await store.appendMessage(G, entry(`m${i}`))
          await fetchedAll()
          await store.pruneLogs({ appendedBeforeMs: NEVER_BY_AGE, keepMessages: 1, keepDigestsForEpochs: 0 })
          store = await reopen(store)
          expect(await store.logRetainedFrom(G)).toBe(3)
          expect((await store.readLog(G, 0, 10)).map((r) => r.seq)).toEqual([3])
          expect(await store.appendMessage(G, entry('m4'))).toEqual({ kind: 'accepted', seq: 4 })
        })

        it('keeps fetch cursors across a restart', async () => {
          await store.createGroup(group())
          await store.appendCommit(G, commit(0n, 'add-bob', { roster: withBob, access: bobFrom(-1) }))
          for (let i = 2; i <= 5; i++) await store.appendMessage(G, entry(`m${i}`, 'application', 1n))
          await store.advanceFetchCursors([{ groupId: G, clientId: BOB, seq: 3 }, { groupId: G, clientId: ALICE, seq: 5 }])
          store = await reopen(store)
          expect(await store.readFetchCursors(G)).toEqual([
            { groupId: G, clientId: ALICE, seq: 5 },
            { groupId: G, clientId: BOB, seq: 3 }
          ])
          expect(await store.pruneLogs({ appendedBeforeMs: NEVER_BY_AGE, keepMessages: 0, keepDigestsForEpochs: 10 })).toEqual({ deleted: 2 })
          expect((await store.readLog(G, 3, 10)).map((r) => r.seq)).toEqual([4, 5])
        })
      }
    })

    describe('fetch cursors: retention keeps what a current member has not fetched', () => {
      const NEVER_BY_AGE = 0
      const withBobAndCarol = [...withBob, { leafIndex: 2, clientId: CAROL }]
      /** alice (from 0) and bob (added by the commit at seq 1), then application messages 2..n+1 in epoch 1. */
      const slowBob = async (messages: number): Promise<void> => {
        await store.createGroup(group())
        await store.appendCommit(G, commit(0n, 'add-bob', { roster: withBob, access: bobFrom(-1) }))
        for (let i = 0; i < messages; i++) await store.appendMessage(G, entry(`m${i + 2}`, 'application', 1n, i % 2 === 0 ? ALICE : BOB))
      }
      const seqs = async (afterSeq = 0): Promise<number[]> => (await store.readLog(G, afterSeq, 1000)).map((r) => r.seq)

      it('starts each member at its access window and lists current members only', async () => {
        await slowBob(2)
        expect(await store.readFetchCursors(G)).toEqual([
          { groupId: G, clientId: ALICE, seq: 0 },
          { groupId: G, clientId: BOB, seq: 1 }
        ])
        expect(await store.readFetchCursors('cc03')).toEqual([])
      })

      it("keeps a slow member's unread messages through count and age pruning, and deletes them once fetched", async () => {
        await slowBob(10) // messages at seqs 2..11
        await store.advanceFetchCursors([{ groupId: G, clientId: ALICE, seq: 11 }, { groupId: G, clientId: BOB, seq: 4 }])
        // Count: keep 1; age: everything is old. Only what both fetched (seqs 2..4) goes.
        expect(await store.pruneLogs({ appendedBeforeMs: Date.now() + 60_000, keepMessages: 1, keepDigestsForEpochs: 10 })).toEqual({ deleted: 3 })
        expect(await store.logRetainedFrom(G)).toBe(5)
        expect(await seqs(4)).toEqual([5, 6, 7, 8, 9, 10, 11])
        // Again: nothing more goes while bob stays at 4.
        expect(await store.pruneLogs({ appendedBeforeMs: NEVER_BY_AGE, keepMessages: 0, keepDigestsForEpochs: 10 })).toEqual({ deleted: 0 })
        // Bob reads on to 8: the count rule takes 5..8, keeping 9..11 (newest 3).
        await store.advanceFetchCursors([{ groupId: G, clientId: BOB, seq: 8 }])
        expect(await store.pruneLogs({ appendedBeforeMs: NEVER_BY_AGE, keepMessages: 3, keepDigestsForEpochs: 10 })).toEqual({ deleted: 4 })
        expect(await seqs(8)).toEqual([9, 10, 11])
        expect(await store.logRetainedFrom(G)).toBe(9)
      })

      it('never moves a cursor back, caps it at the head, and refuses a malformed one with STORAGE_IO', async () => {
        await slowBob(3) // head 4
        await store.advanceFetchCursors([{ groupId: G, clientId: BOB, seq: 3 }])
        await store.advanceFetchCursors([{ groupId: G, clientId: BOB, seq: 2 }])
        await store.advanceFetchCursors([{ groupId: G, clientId: ALICE, seq: 1_000 }])
        expect(await store.readFetchCursors(G)).toEqual([
          { groupId: G, clientId: ALICE, seq: 4 },
          { groupId: G, clientId: BOB, seq: 3 }
        ])
        await rejectsWithCode(store.advanceFetchCursors([{ groupId: G, clientId: BOB, seq: -1 }]), 'STORAGE_IO')
        await rejectsWithCode(store.advanceFetchCursors([{ groupId: G, clientId: BOB, seq: 1.5 }]), 'STORAGE_IO')
        expect((await store.readFetchCursors(G))[1]).toEqual({ groupId: G, clientId: BOB, seq: 3 })
      })

      it("ignores a stranger's cursor and cursors for unknown groups: neither pins the log nor shows up", async () => {
        await slowBob(4) // head 5
        await store.advanceFetchCursors([
          { groupId: G, clientId: ALICE, seq: 5 },
          { groupId: G, clientId: BOB, seq: 5 },
          { groupId: G, clientId: CAROL, seq: 5 },
          { groupId: 'cc03', clientId: ALICE, seq: 3 }
        ])
        expect((await store.readFetchCursors(G)).map((c) => c.clientId)).toEqual([ALICE, BOB])
        expect(await store.readFetchCursors('cc03')).toEqual([])
        expect(await store.pruneLogs({ appendedBeforeMs: NEVER_BY_AGE, keepMessages: 0, keepDigestsForEpochs: 10 })).toEqual({ deleted: 4 })
        // Carol joins later: she starts at her window (the commit that adds her), not at the cursor a stranger named.
        await store.appendCommit(G, commit(1n, 'add-carol', { roster: withBobAndCarol, access: [...bobFrom(1), { clientId: CAROL, fromSeq: -1, untilSeq: null }] }))
        expect((await store.readFetchCursors(G))[2]).toEqual({ groupId: G, clientId: CAROL, seq: 6 })
      })

      it("drops a removed member's cursor: its stale position no longer holds back retention", async () => {
        await slowBob(6) // 2..7
        await store.advanceFetchCursors([{ groupId: G, clientId: ALICE, seq: 7 }, { groupId: G, clientId: BOB, seq: 2 }])
        expect(await store.pruneLogs({ appendedBeforeMs: NEVER_BY_AGE, keepMessages: 0, keepDigestsForEpochs: 10 })).toEqual({ deleted: 1 })
        // Bob is removed at seq 8 (his window closes there); alice reads on.
        await store.appendCommit(G, commit(1n, 'remove-bob', { access: [{ clientId: ALICE, fromSeq: 0, untilSeq: null }, { clientId: BOB, fromSeq: 1, untilSeq: -1 }] }))
        await store.advanceFetchCursors([{ groupId: G, clientId: ALICE, seq: 8 }, { groupId: G, clientId: BOB, seq: 3 }])
        expect(await store.readFetchCursors(G)).toEqual([{ groupId: G, clientId: ALICE, seq: 8 }])
        expect(await store.pruneLogs({ appendedBeforeMs: NEVER_BY_AGE, keepMessages: 0, keepDigestsForEpochs: 10 })).toEqual({ deleted: 5 })
        expect(await seqs()).toEqual([1, 8])
        // Added again (seq 9): he starts from there, not from his old cursor.
        await store.appendCommit(G, commit(2n, 're-add-bob', { roster: withBob, access: [{ clientId: ALICE, fromSeq: 0, untilSeq: null }, { clientId: BOB, fromSeq: 1, untilSeq: 8 }, { clientId: BOB, fromSeq: -1, untilSeq: null }] }))
        expect(await store.readFetchCursors(G)).toEqual([
          { groupId: G, clientId: ALICE, seq: 8 },
          { groupId: G, clientId: BOB, seq: 9 }
        ])
      })

      it('deletes past the cursors once messages are older than the hard limit', async () => {
        await slowBob(4) // 2..5; bob fetched nothing
        const hardLimitBeforeMs = Date.now() + 60_000
        expect(await store.pruneLogs({ appendedBeforeMs: NEVER_BY_AGE, keepMessages: 100, keepDigestsForEpochs: 10, hardLimitBeforeMs })).toEqual({ deleted: 4 })
        expect(await seqs()).toEqual([1])
        // Bob's cursor (1) is now before deleted messages: the channel answers him CURSOR_EXPIRED.
        expect(await store.logRetainedFrom(G)).toBe(6)
        expect((await store.readFetchCursors(G))[1]?.seq).toBe(1)
      })

      it('a group without current members keeps nothing back', async () => {
        await slowBob(3)
        await store.appendCommit(G, commit(1n, 'everyone-left', { roster: [], access: [{ clientId: ALICE, fromSeq: 0, untilSeq: -1 }, { clientId: BOB, fromSeq: 1, untilSeq: -1 }] }))
        expect(await store.readFetchCursors(G)).toEqual([])
        expect(await store.pruneLogs({ appendedBeforeMs: NEVER_BY_AGE, keepMessages: 0, keepDigestsForEpochs: 10 })).toEqual({ deleted: 3 })
      })

      it('under concurrent appends, cursor writes and pruning, never deletes what a member has not fetched', async () => {
        await slowBob(0)
        let bobCursor = 1
        for (let round = 0; round < 25; round++) {
          const head = (await store.getGroup(G))?.lastSeq ?? 0
          const bobTo = Math.max(bobCursor, head - 3)
          await Promise.all([
            store.appendMessage(G, entry(`r${round}a`, 'application', 1n)),
            store.advanceFetchCursors([{ groupId: G, clientId: ALICE, seq: head }]),
            store.pruneLogs({ appendedBeforeMs: Date.now() + 60_000, keepMessages: 0, keepDigestsForEpochs: 10 }),
            store.advanceFetchCursors([{ groupId: G, clientId: BOB, seq: bobTo }]),
            store.appendMessage(G, entry(`r${round}b`, 'application', 1n)),
            store.pruneLogs({ appendedBeforeMs: NEVER_BY_AGE, keepMessages: 0, keepDigestsForEpochs: 10 })
          ])
          // Whatever order those ran in: bob still reads every message after the position he fetched to.
          bobCursor = bobTo
          const after = (await store.readLog(G, bobCursor, 1000)).map((r) => r.seq)
          const last = (await store.getGroup(G))?.lastSeq ?? 0
          expect(after).toEqual(Array.from({ length: last - bobCursor }, (_, i) => bobCursor + 1 + i))
          expect(await store.logRetainedFrom(G)).toBeLessThanOrEqual(bobCursor + 1)
        }
        // And retention did run: what both fetched is gone.
        expect(await store.logRetainedFrom(G)).toBeGreaterThan(10)
      })
    })

    describe('lifecycle', () => {
      it('rejects every call after close() with STORAGE_CLOSED, and close is idempotent', async () => {
        await store.createGroup(group())
        await store.close()
        await store.close()
        await rejectsWithCode(store.registerIdentity(identity(ALICE)), 'STORAGE_CLOSED')
        await rejectsWithCode(store.getIdentity(ALICE), 'STORAGE_CLOSED')
        await rejectsWithCode(store.listDevices('alice'), 'STORAGE_CLOSED')
        await rejectsWithCode(store.addKeyPackages(ALICE, [keyPackage('k', ALICE)], undefined), 'STORAGE_CLOSED')
        await rejectsWithCode(store.consumeKeyPackage(ALICE, NOW), 'STORAGE_CLOSED')
        await rejectsWithCode(store.countKeyPackages(ALICE), 'STORAGE_CLOSED')
        await rejectsWithCode(store.lookupServedKeyPackage('k'), 'STORAGE_CLOSED')
        await rejectsWithCode(store.createGroup(group('bb02')), 'STORAGE_CLOSED')
        await rejectsWithCode(store.getGroup(G), 'STORAGE_CLOSED')
        await rejectsWithCode(store.appendCommit(G, commit(0n, 'c')), 'STORAGE_CLOSED')
        await rejectsWithCode(store.appendMessage(G, entry('m')), 'STORAGE_CLOSED')
        await rejectsWithCode(store.readLog(G, 0, 10), 'STORAGE_CLOSED')
        await rejectsWithCode(store.readWelcomes(ALICE, 0, 10), 'STORAGE_CLOSED')
        await rejectsWithCode(store.pruneWelcomes({ appendedBeforeMs: 0, keepWelcomes: 0 }), 'STORAGE_CLOSED')
      })

      it('rejects calls with an aborted signal with ABORTED and changes nothing', async () => {
        await store.createGroup(group())
        await store.addKeyPackages(ALICE, [keyPackage('k', ALICE)], undefined)
        const controller = new AbortController()
        controller.abort()
        const options = { signal: controller.signal }
        await rejectsWithCode(store.registerIdentity(identity(BOB), options), 'ABORTED')
        await rejectsWithCode(store.getIdentity(ALICE, options), 'ABORTED')
        await rejectsWithCode(store.listDevices('alice', options), 'ABORTED')
        await rejectsWithCode(store.addKeyPackages(ALICE, [keyPackage('k2', ALICE)], undefined, options), 'ABORTED')
        await rejectsWithCode(store.consumeKeyPackage(ALICE, NOW, options), 'ABORTED')
        await rejectsWithCode(store.countKeyPackages(ALICE, options), 'ABORTED')
        await rejectsWithCode(store.lookupServedKeyPackage('k', options), 'ABORTED')
        await rejectsWithCode(store.createGroup(group('bb02'), options), 'ABORTED')
        await rejectsWithCode(store.getGroup(G, options), 'ABORTED')
        await rejectsWithCode(store.appendCommit(G, commit(0n, 'c'), options), 'ABORTED')
        await rejectsWithCode(store.appendMessage(G, entry('m'), options), 'ABORTED')
        await rejectsWithCode(store.readLog(G, 0, 10, undefined, options), 'ABORTED')
        await rejectsWithCode(store.readWelcomes(ALICE, 0, 10, options), 'ABORTED')
        await rejectsWithCode(store.pruneWelcomes({ appendedBeforeMs: 0, keepWelcomes: 0 }, options), 'ABORTED')
        expect(await store.getIdentity(BOB)).toBeUndefined()
        expect(await store.countKeyPackages(ALICE)).toEqual({ oneTime: 1, lastResort: false })
        expect(await store.getGroup('bb02')).toBeUndefined()
        expect(await store.getGroup(G)).toMatchObject({ epoch: 0n, lastSeq: 0 })
      })

      if (init.reopen !== undefined) {
        const reopen = init.reopen
        it('keeps every resolved write across a reopen', async () => {
          await store.registerIdentity(identity(ALICE))
          await store.addKeyPackages(BOB, [keyPackage('b1', BOB), keyPackage('b2', BOB)], keyPackage('blr', BOB, { lastResort: true }))
          await store.consumeKeyPackage(BOB, NOW)
          await store.createGroup(group())
          await store.appendCommit(G, commit(0n, 'c', { welcomes: [{ clientId: BOB, welcome: payload('w') }] }))
          await store.appendMessage(G, entry('m', 'application', 1n))
          store = await reopen(store)
          expect(await store.getIdentity(ALICE)).toEqual(identity(ALICE))
          expect(await store.countKeyPackages(BOB)).toEqual({ oneTime: 1, lastResort: true })
          expect(await store.lookupServedKeyPackage('b1')).toBe(BOB)
          expect((await store.consumeKeyPackage(BOB, NOW))?.ref).toBe('b2')
          expect(await store.getGroup(G)).toMatchObject({ epoch: 1n, lastSeq: 2 })
          expect((await store.readLog(G, 0, 10)).map((r) => r.digest)).toEqual(['digest-c', 'digest-m'])
          expect(await store.readWelcomes(BOB, 0, 10)).toEqual([{ seq: 1, groupId: G, welcome: payload('w'), commitSeq: 1 }])
          expect(await store.appendMessage(G, entry('m', 'application', 1n))).toEqual({ kind: 'duplicate' })
        })
      }
    })

    describe('device lists and the last-resort budget path', () => {
      it('serves the last-resort KeyPackage on request while one-time ones are pooled, remembering it as served', async () => {
        expect(await store.serveLastResortKeyPackage(ALICE, NOW)).toBeUndefined()
        await store.addKeyPackages(ALICE, [keyPackage('one', ALICE)], keyPackage('lr', ALICE, { lastResort: true }))
        expect(await store.lookupServedKeyPackage('lr')).toBeUndefined()
        expect(await store.serveLastResortKeyPackage(ALICE, NOW)).toEqual(keyPackage('lr', ALICE, { lastResort: true }))
        expect(await store.lookupServedKeyPackage('lr')).toBe(ALICE)
        expect(await store.countKeyPackages(ALICE)).toEqual({ oneTime: 1, lastResort: true })
        await store.addKeyPackages(BOB, [], keyPackage('blr', BOB, { lastResort: true, notAfter: NOW - 1 }))
        expect(await store.serveLastResortKeyPackage(BOB, NOW)).toBeUndefined()
        expect(await store.lookupServedKeyPackage('blr')).toBeUndefined()
      })

      it('appends entries in order with compare-and-set on the length, per user', async () => {
        expect(await store.readDeviceList('alice')).toEqual([])
        expect(await store.appendDeviceListEntry('alice', 0, payload('e1'))).toBe('appended')
        expect(await store.appendDeviceListEntry('alice', 0, payload('other'))).toBe('conflict')
        expect(await store.appendDeviceListEntry('alice', 2, payload('other'))).toBe('conflict')
        expect(await store.appendDeviceListEntry('alice', 1, payload('e2'))).toBe('appended')
        expect(await store.appendDeviceListEntry('bob', 0, payload('b1'))).toBe('appended')
        expect(await store.readDeviceList('alice')).toEqual([payload('e1'), payload('e2')])
        expect(await store.readDeviceList('bob')).toEqual([payload('b1')])
      })

      it('accepts exactly one of concurrent appends for the same length', async () => {
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => store.appendDeviceListEntry('alice', 0, payload(`race${i}`))))
        expect(results.filter((r) => r === 'appended')).toHaveLength(1)
        expect(await store.readDeviceList('alice')).toHaveLength(1)
      })

      it('returns copies of entries and copies what it is given', async () => {
        const given = payload('e1')
        await store.appendDeviceListEntry('alice', 0, given)
        given.fill(1)
        const [read] = await store.readDeviceList('alice')
        expect(read).toEqual(payload('e1'))
        read!.fill(2)
        expect(await store.readDeviceList('alice')).toEqual([payload('e1')])
      })

      it('rejects device-list calls after close() and with an aborted signal', async () => {
        const controller = new AbortController()
        controller.abort()
        await rejectsWithCode(store.appendDeviceListEntry('alice', 0, payload('e1'), { signal: controller.signal }), 'ABORTED')
        await rejectsWithCode(store.readDeviceList('alice', { signal: controller.signal }), 'ABORTED')
        await rejectsWithCode(store.serveLastResortKeyPackage(ALICE, NOW, { signal: controller.signal }), 'ABORTED')
        expect(await store.readDeviceList('alice')).toEqual([])
        await store.close()
        await rejectsWithCode(store.readDeviceList('alice'), 'STORAGE_CLOSED')
        await rejectsWithCode(store.appendDeviceListEntry('alice', 0, payload('e1')), 'STORAGE_CLOSED')
        await rejectsWithCode(store.serveLastResortKeyPackage(ALICE, NOW), 'STORAGE_CLOSED')
      })

      if (init.reopen !== undefined) {
        const reopen = init.reopen
        it('keeps device lists across a reopen', async () => {
          await store.appendDeviceListEntry('alice', 0, payload('e1'))
          await store.appendDeviceListEntry('alice', 1, payload('e2'))
          store = await reopen(store)
          expect(await store.readDeviceList('alice')).toEqual([payload('e1'), payload('e2')])
          expect(await store.appendDeviceListEntry('alice', 1, payload('x'))).toBe('conflict')
        })
      }
    })

    it('lists the groups whose roster holds a client now, sorted', async () => {
      expect(await store.listGroupsOf(BOB)).toEqual([])
      await store.createGroup(group('bb02'))
      await store.createGroup(group(G))
      await store.createGroup(group('cc03', CAROL))
      const withBob = [
        { leafIndex: 0, clientId: ALICE },
        { leafIndex: 1, clientId: BOB }
      ]
      await store.appendCommit('bb02', commit(0n, 'b1', { roster: withBob }))
      await store.appendCommit(G, commit(0n, 'a1', { roster: withBob }))
      expect(await store.listGroupsOf(BOB)).toEqual([G, 'bb02'])
      expect(await store.listGroupsOf(ALICE)).toEqual([G, 'bb02'])
      expect(await store.listGroupsOf(CAROL)).toEqual(['cc03'])
      // Removed from one group: listed only in the other. A prefix of a client id matches nothing.
      await store.appendCommit(G, commit(1n, 'a2'))
      expect(await store.listGroupsOf(BOB)).toEqual(['bb02'])
      expect(await store.listGroupsOf('bob/lap')).toEqual([])
    })

    describe('public group state', () => {
      const state = (label: string, epoch: bigint, withGroupInfo = true) => ({
        epoch,
        state: payload(`state:${label}`, 96),
        groupInfo: withGroupInfo ? payload(`gi:${label}`, 80) : undefined
      })

      it('is written with the group and replaced by each accepted commit that carries one, atomically', async () => {
        expect(await store.getPublicState(G)).toBeUndefined()
        await store.createGroup({ ...group(), publicState: state('s0', 0n) })
        expect(await store.getGroup(G)).toEqual(group())
        expect(await store.getPublicState(G)).toEqual(state('s0', 0n))
        expect(await store.appendCommit(G, { ...commit(0n, 'c1'), publicState: state('s1', 1n, false) })).toMatchObject({ kind: 'accepted', seq: 1 })
        expect(await store.getPublicState(G)).toEqual(state('s1', 1n, false))
        expect(await store.appendCommit(G, { ...commit(0n, 'late'), publicState: state('late', 1n) })).toEqual({ kind: 'conflict', epoch: 1n })
        expect(await store.getPublicState(G)).toEqual(state('s1', 1n, false))
        await store.appendCommit(G, commit(1n, 'c2'))
        expect(await store.getPublicState(G)).toEqual(state('s1', 1n, false))
        expect(await store.createGroup({ ...group(), publicState: state('again', 0n) })).toBe(false)
        expect(await store.getPublicState(G)).toEqual(state('s1', 1n, false))
      })

      it('returns copies and keeps none of the caller\'s arrays', async () => {
        const given = state('s0', 0n)
        await store.createGroup({ ...group(), publicState: given })
        given.state.fill(0)
        const read = await store.getPublicState(G)
        expect(read).toEqual(state('s0', 0n))
        read?.state.fill(0)
        expect(await store.getPublicState(G)).toEqual(state('s0', 0n))
      })

      it('appends a proposal with the public state that holds it, in the current epoch only, once', async () => {
        await store.createGroup({ ...group(), publicState: state('s0', 0n) })
        expect(await store.appendProposal(G, { expectedEpoch: 0n, entry: entry('p1', 'proposal'), publicState: state('s0+p1', 0n, false) })).toEqual({ kind: 'accepted', seq: 1 })
        expect(await store.getGroup(G)).toMatchObject({ epoch: 0n, lastSeq: 1 })
        expect(await store.getPublicState(G)).toEqual(state('s0+p1', 0n, false))
        expect((await store.readLog(G, 0, 10)).map((r) => [r.seq, r.kind, r.digest])).toEqual([[1, 'proposal', 'digest-p1']])
        expect(await store.appendProposal(G, { expectedEpoch: 0n, entry: entry('p1', 'proposal'), publicState: state('again', 0n) })).toEqual({ kind: 'duplicate' })
        expect(await store.appendProposal(G, { expectedEpoch: 1n, entry: entry('p2', 'proposal'), publicState: state('late', 1n) })).toEqual({ kind: 'conflict', epoch: 0n })
        expect(await store.getPublicState(G)).toEqual(state('s0+p1', 0n, false))
        expect(await store.appendCommit(G, { ...commit(0n, 'c1'), publicState: state('s1', 1n) })).toMatchObject({ kind: 'accepted', seq: 2 })
        expect(await store.appendProposal(G, { expectedEpoch: 0n, entry: entry('p3', 'proposal'), publicState: state('stale', 0n) })).toEqual({ kind: 'conflict', epoch: 1n })
        await rejectsWithCode(store.appendProposal('ffff', { expectedEpoch: 0n, entry: entry('p4', 'proposal'), publicState: state('x', 0n) }), 'UNKNOWN_GROUP')
      })

      it('appends a proposal only while the stored public state is the one it was verified against (compare-and-set)', async () => {
        await store.createGroup({ ...group(), publicState: state('s0', 0n) })
        const s0 = state('s0', 0n).state
        expect(await store.appendProposal(G, { expectedEpoch: 0n, expectedState: s0, entry: entry('p1', 'proposal'), publicState: state('s0+p1', 0n) })).toEqual({
          kind: 'accepted',
          seq: 1
        })
        // A second proposal verified against s0 (it raced with p1) would drop p1 from the state: refused, nothing changes.
        expect(await store.appendProposal(G, { expectedEpoch: 0n, expectedState: s0, entry: entry('p2', 'proposal'), publicState: state('s0+p2', 0n) })).toEqual({
          kind: 'conflict',
          epoch: 0n
        })
        expect(await store.getPublicState(G)).toEqual(state('s0+p1', 0n))
        expect((await store.readLog(G, 0, 10)).map((r) => r.digest)).toEqual(['digest-p1'])
        // Verified again against the state that holds p1, it goes in.
        const s1 = state('s0+p1', 0n).state
        expect(
          await store.appendProposal(G, { expectedEpoch: 0n, expectedState: s1, entry: entry('p2', 'proposal'), publicState: state('s0+p1+p2', 0n) })
        ).toEqual({ kind: 'accepted', seq: 2 })
        // A prefix or an empty array is not the stored state.
        expect(
          await store.appendProposal(G, { expectedEpoch: 0n, expectedState: s1.subarray(0, 10), entry: entry('p3', 'proposal'), publicState: state('x', 0n) })
        ).toEqual({ kind: 'conflict', epoch: 0n })
        expect(await store.appendProposal(G, { expectedEpoch: 0n, expectedState: new Uint8Array(), entry: entry('p3', 'proposal'), publicState: state('x', 0n) })).toEqual({
          kind: 'conflict',
          epoch: 0n
        })
        expect(await store.getPublicState(G)).toEqual(state('s0+p1+p2', 0n))
        // A group without public state never matches.
        await store.createGroup(group('abcd'))
        expect(await store.appendProposal('abcd', { expectedEpoch: 0n, expectedState: s0, entry: entry('p4', 'proposal'), publicState: state('y', 0n) })).toEqual({
          kind: 'conflict',
          epoch: 0n
        })
      })

      it('keeps exactly one of two proposals verified against the same state and appended at the same instant', async () => {
        await store.createGroup({ ...group(), publicState: state('s0', 0n) })
        const s0 = state('s0', 0n).state
        const results = await Promise.all(
          ['a', 'b'].map((label) =>
            store.appendProposal(G, { expectedEpoch: 0n, expectedState: s0, entry: entry(`race-${label}`, 'proposal'), publicState: state(`s0+${label}`, 0n) })
          )
        )
        expect(results.map((r) => r.kind).sort()).toEqual(['accepted', 'conflict'])
        const winner = results[0]?.kind === 'accepted' ? 'a' : 'b'
        expect(await store.getPublicState(G)).toEqual(state(`s0+${winner}`, 0n))
        expect((await store.readLog(G, 0, 10)).map((r) => r.digest)).toEqual([`digest-race-${winner}`])
      })

      it('refuses an expectedState that is not bytes', async () => {
        await store.createGroup({ ...group(), publicState: state('s0', 0n) })
        await rejectsWithCode(
          store.appendProposal(G, { expectedEpoch: 0n, expectedState: 'state' as unknown as Uint8Array, entry: entry('p1', 'proposal'), publicState: state('x', 0n) }),
          'STORAGE_IO'
        )
        expect(await store.getPublicState(G)).toEqual(state('s0', 0n))
      })

      if (init.reopen !== undefined) {
        const reopen = init.reopen
        it('survives a reopen', async () => {
          await store.createGroup({ ...group(), publicState: state('s0', 0n) })
          await store.appendCommit(G, { ...commit(0n, 'c1'), publicState: state('s1', 1n) })
          store = await reopen(store)
          expect(await store.getPublicState(G)).toEqual(state('s1', 1n))
        })
      }
    })
  })
}
