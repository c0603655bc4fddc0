import { describe, expect, it } from 'vitest'
import { credentialFor, toHex, tsMlsDefaultCrypto } from '../src/index.js'
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  decodeGroupState,
  defaultCapabilities,
  defaultClientConfig,
  defaultLifetime,
  emptyPskIndex,
  encodeGroupState,
  generateKeyPackage,
  getCiphersuiteFromName,
  joinGroup,
  processPrivateMessage,
  processPublicMessage,
  type CiphersuiteImpl,
  type ClientState,
  type MLSMessage,
  type PrivateMessage,
  type Proposal
} from '../src/mls.js'
import { materializeLeaf } from '../src/ts-mls-fixes.js'
import { encodeStagedPending, GroupPersistence, layoutKeys, SECRET_CHUNK_NODES, TREE_CHUNK_NODES } from '../src/group-persistence.js'
import { decodeRecord, encodeRecord, storeKeys } from '../src/records.js'
import type { GroupMeta, PendingRecord } from '../src/group-records.js'
import type { ClientStore, StoreEntry, StoreOperation } from '../src/interfaces/client-store.js'

const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' as const
const GID = 'aa01'

/** A map behind the store contract, logging each batch; a unit-test fake for the logic above it. */
class MapStore implements ClientStore {
  readonly specificationVersion = 'v1' as const
  readonly [Symbol.toStringTag] = 'MapStore'
  readonly entries = new Map<string, Uint8Array>()
  readonly batches: StoreOperation[][] = []
  failNext = false
  async get(key: string): Promise<Uint8Array | undefined> {
    return this.entries.get(key)?.slice()
  }
  async list(prefix: string): Promise<StoreEntry[]> {
    return [...this.entries]
      .filter(([key]) => key.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, value]) => ({ key, value: value.slice() }))
  }
  async write(operations: readonly StoreOperation[]): Promise<void> {
    if (this.failNext) {
      this.failNext = false
      throw Object.assign(new Error('disk full'), { code: 'STORAGE_IO' })
    }
    this.batches.push([...operations])
    for (const op of operations) {
      if (op.type === 'put') this.entries.set(op.key, op.value.slice())
      else this.entries.delete(op.key)
    }
  }
  async close(): Promise<void> {}
  /** True when some stored value holds `needle`'s bytes. */
  holds(needle: Uint8Array): boolean {
    const hex = toHex(needle)
    return [...this.entries.values()].some((value) => toHex(value).includes(hex))
  }
}

function batchBytes(ops: readonly StoreOperation[]): number {
  return ops.reduce((n, op) => n + op.key.length + (op.type === 'put' ? op.value.length : 0), 0)
}

async function suite(): Promise<CiphersuiteImpl> {
  return tsMlsDefaultCrypto().getCiphersuiteImpl(getCiphersuiteFromName(SUITE))
}

async function keyPackage(name: string, cs: CiphersuiteImpl) {
  return generateKeyPackage(credentialFor(`${name}/phone`), defaultCapabilities(), defaultLifetime, [], cs)
}

/** Alice and bob in a group of `size` members (the others never join), built with ts-mls. */
async function group(size: number, cs: CiphersuiteImpl): Promise<{ alice: ClientState; bob: ClientState }> {
  const alicePackage = await keyPackage('alice', cs)
  const alice = await createGroup(new TextEncoder().encode(`persistence-${size}`), alicePackage.publicPackage, alicePackage.privatePackage, [], cs)
  const bobPackage = await keyPackage('bob', cs)
  const adds: Proposal[] = [{ proposalType: 'add', add: { keyPackage: bobPackage.publicPackage } }]
  for (let i = 0; i < size - 2; i++) adds.push({ proposalType: 'add', add: { keyPackage: (await keyPackage(`member${i}`, cs)).publicPackage } })
  const added = await createCommit({ state: alice, cipherSuite: cs }, { extraProposals: adds, ratchetTreeExtension: true })
  const bob = await joinGroup(added.welcome!, bobPackage.publicPackage, bobPackage.privatePackage, emptyPskIndex, cs, added.newState.ratchetTree)
  return { alice: added.newState, bob }
}

async function message(sender: ClientState, text: string, cs: CiphersuiteImpl): Promise<{ sender: ClientState; message: PrivateMessage }> {
  const result = await createApplicationMessage(sender, new TextEncoder().encode(text), cs)
  return { sender: result.newState, message: result.privateMessage }
}

async function receive(state: ClientState, pm: PrivateMessage, cs: CiphersuiteImpl): Promise<ClientState> {
  const result = await processPrivateMessage(state, pm, emptyPskIndex, cs)
  return result.newState
}

async function commit(committer: ClientState, cs: CiphersuiteImpl, proposals: Proposal[] = []): Promise<{ committer: ClientState; message: MLSMessage }> {
  const result = await createCommit({ state: committer, cipherSuite: cs }, { extraProposals: proposals, wireAsPublicMessage: true })
  return { committer: result.newState, message: result.commit }
}

async function processCommit(state: ClientState, message: MLSMessage, cs: CiphersuiteImpl): Promise<ClientState> {
  if (message.wireformat !== 'mls_public_message') throw new Error('expected a PublicMessage')
  return (await processPublicMessage(state, message.publicMessage, emptyPskIndex, cs)).newState
}

/** A state as its encoding after one round trip (the ratchet tree decodes extended to full width). */
function normalized(state: ClientState): string {
  return toHex(encodeGroupState(decodeGroupState(encodeGroupState(state), 0)![0]))
}

function meta(epoch: bigint, cursor: number, digests: string[] = []): GroupMeta {
  return { status: 'active', epoch, cursor, digests }
}

/** Persist through a plan, as the group does: write the batch, then record it written. */
async function persist(persistence: GroupPersistence, store: MapStore, state: ClientState | undefined, m: GroupMeta): Promise<StoreOperation[]> {
  const plan = persistence.plan(state, m)
  await store.write(plan.operations)
  plan.written()
  return plan.operations
}

async function reload(store: MapStore): Promise<{ persistence: GroupPersistence; state: ClientState; meta: GroupMeta }> {
  const loaded = await GroupPersistence.load(store, GID, defaultClientConfig)
  if (loaded?.state === undefined) throw new Error('nothing stored')
  return { persistence: loaded.persistence, state: loaded.state, meta: loaded.meta }
}

describe('incremental persistence of a group (group-persistence.ts)', () => {
  it('a received or sent message writes the same few small records at 5, 40 and 200 members', async () => {
    const cs = await suite()
    const sizes: Record<number, { receive: number; send: number; state: number }> = {}
    for (const size of [5, 40, 200]) {
      const { alice, bob: joined } = await group(size, cs)
      let bob = joined
      const store = new MapStore()
      const persistence = GroupPersistence.empty(store, GID)
      await persist(persistence, store, bob, meta(1n, 1))
      // Alice's first message of the epoch: bob derives her leaf from the root down (the secret tree is lazy), which
      // rewrites the records holding the nodes on that path and their siblings (left unexpanded): at most two per
      // level above the first record.
      const first = await message(alice, 'first', cs)
      const bobBefore = bob
      bob = await receive(bob, first.message, cs)
      const firstOps = await persist(persistence, store, bob, meta(1n, 2, ['d0']))
      const pathRecords = firstOps.filter((op) => op.key.startsWith(layoutKeys.secretsPrefix(GID, 1n)))
      expect(pathRecords.length).toBeGreaterThanOrEqual(1)
      expect(pathRecords.length).toBeLessThanOrEqual(1 + 2 * Math.log2(Math.ceil(bobBefore.secretTree.length / SECRET_CHUNK_NODES)))
      const sent = await message(first.sender, 'hello', cs)
      const received = await receive(bob, sent.message, cs)
      const receiveOps = await persist(persistence, store, received, meta(1n, 3, ['d0', 'd1']))
      expect(receiveOps.map((op) => `${op.type} ${op.key}`).sort()).toEqual([
        `put ${layoutKeys.secrets(GID, 1n, 0)}`,
        `put ${layoutKeys.seen(GID, 'd1')}`,
        `put ${storeKeys.groupMeta(GID)}`
      ].sort())
      const reply = await message(received, 'hi', cs)
      const sendOps = await persist(persistence, store, reply.sender, meta(1n, 3, ['d0', 'd1']))
      // Bob's leaf is leaf 1 (node 2), whose secret Alice's path left unexpanded: the same chunk, rewritten with his
      // derived and advanced ratchet; nothing else.
      expect(sendOps.map((op) => `${op.type} ${op.key}`)).toEqual([`put ${layoutKeys.secrets(GID, 1n, 0)}`])
      sizes[size] = { receive: batchBytes(receiveOps), send: batchBytes(sendOps), state: encodeGroupState(reply.sender).length }
    }
    // At 40 and 200 members the chunk is full (SECRET_CHUNK_NODES nodes): the batch does not grow with the group.
    expect(Math.abs(sizes[200]!.receive - sizes[40]!.receive)).toBeLessThanOrEqual(8)
    expect(Math.abs(sizes[200]!.send - sizes[40]!.send)).toBeLessThanOrEqual(8)
    expect(sizes[5]!.receive).toBeLessThanOrEqual(sizes[40]!.receive)
    // ... while the whole state, which every message used to write, grows with it.
    expect(sizes[200]!.state).toBeGreaterThan(3 * sizes[40]!.state)
    expect(sizes[200]!.state).toBeGreaterThan(20 * sizes[200]!.receive)
  }, 60_000)

  it('a commit writes the new epoch once (the tree chunks its path changed) and leaves the past epoch where it is', async () => {
    const cs = await suite()
    const { alice, bob } = await group(200, cs)
    const store = new MapStore()
    const persistence = GroupPersistence.empty(store, GID)
    const first = await persist(persistence, store, bob, meta(1n, 1))
    const chunks = Math.ceil(bob.secretTree.length / SECRET_CHUNK_NODES)
    expect(first.filter((op) => op.key.startsWith(layoutKeys.secretsPrefix(GID, 1n)))).toHaveLength(chunks)
    const update = await commit(alice, cs)
    const next = await processCommit(bob, update.message, cs)
    const ops = await persist(persistence, store, next, meta(2n, 2, ['c1']))
    const keys = ops.map((op) => `${op.type} ${op.key}`)
    expect(keys).toContain(`put ${layoutKeys.tree(GID, 2n)}`)
    expect(keys).toContain(`put ${layoutKeys.current(GID)}`)
    // Epoch 1 becomes a past epoch: only its small receiver record is new.
    expect(keys).toContain(`put ${layoutKeys.receiver(GID, 1n)}`)
    expect(keys.filter((k) => k.includes(layoutKeys.epochPrefix(GID, 1n)))).toEqual([`put ${layoutKeys.receiver(GID, 1n)}`])
    expect(keys.filter((k) => k.startsWith(`put ${layoutKeys.secretsPrefix(GID, 2n)}`))).toHaveLength(chunks)
    // The ratchet tree: only the chunks holding the committer's leaf and its direct path are new.
    const treeChunks = Math.ceil(next.ratchetTree.length / TREE_CHUNK_NODES)
    const written = keys.filter((k) => k.startsWith(`put ${layoutKeys.treeChunksPrefix(GID)}`))
    expect(treeChunks).toBeGreaterThanOrEqual(12)
    expect(written.length).toBeGreaterThan(0)
    expect(written.length).toBeLessThanOrEqual(5)
    expect(first.filter((op) => op.key.startsWith(layoutKeys.treeChunksPrefix(GID)))).toHaveLength(treeChunks)
    expect(normalized((await reload(store)).state)).toBe(normalized(next))
  }, 30_000)

  it('reassembles after every step what it wrote: messages in and out of order, late messages of a past epoch, commits, removals, retention', async () => {
    const cs = await suite()
    let { alice, bob } = await group(20, cs)
    const store = new MapStore()
    let persistence = GroupPersistence.empty(store, GID)
    let cursor = 1
    let digests: string[] = []
    const step = async (state: ClientState, restart: boolean): Promise<ClientState> => {
      cursor++
      digests = [...digests, `d${cursor}`].slice(-3)
      await persist(persistence, store, state, meta(state.groupContext.epoch, cursor, digests))
      const loaded = await reload(store)
      expect(normalized(loaded.state)).toBe(normalized(state))
      expect(loaded.meta).toEqual(meta(state.groupContext.epoch, cursor, digests))
      if (!restart) return state
      // A restart: carry on from the decoded state (the next plan diffs against the loaded objects).
      persistence = loaded.persistence
      return loaded.state
    }
    bob = await step(bob, false)
    for (let round = 0; round < 7; round++) {
      const restart = round % 2 === 1
      // Out of order: the second message first (generation 1 kept as an unused key), then the first.
      const m1 = await message(alice, `m1 ${round}`, cs)
      const m2 = await message(m1.sender, `m2 ${round}`, cs)
      alice = m2.sender
      bob = await step(await receive(bob, m2.message, cs), restart)
      // A message sent before the commit, delivered after it: decrypted with the past epoch's data.
      const late = await message(alice, `late ${round}`, cs)
      alice = late.sender
      const update = await commit(alice, cs, round === 3 ? [{ proposalType: 'remove', remove: { removed: 19 } }] : [])
      alice = update.committer
      bob = await step(await processCommit(bob, update.message, cs), restart)
      bob = await step(await receive(bob, m1.message, cs), !restart)
      bob = await step(await receive(bob, late.message, cs), restart)
      const mine = await message(bob, `bob ${round}`, cs)
      bob = await step(mine.sender, !restart)
      alice = await receive(alice, mine.message, cs)
    }
    // Epochs 2..8 were reached; 4 past epochs are kept and nothing of the older ones is left in the store.
    const epoch = bob.groupContext.epoch
    expect(epoch).toBe(8n)
    expect([...bob.historicalReceiverData.keys()].sort()).toEqual([4n, 5n, 6n, 7n])
    for (let old = 1n; old < 4n; old++) expect([...store.entries.keys()].filter((k) => k.startsWith(layoutKeys.epochPrefix(GID, old)))).toEqual([])
    expect([...store.entries.keys()].filter((k) => k.startsWith(layoutKeys.seenPrefix(GID)))).toHaveLength(3)
    // Tree chunks: exactly those the kept epochs are made of (the others were deleted with their last epoch).
    const referenced = new Set<string>()
    for (const kept of [4n, 5n, 6n, 7n, 8n]) {
      const index = JSON.parse(new TextDecoder().decode(store.entries.get(layoutKeys.tree(GID, kept)))) as { versions: number[] }
      index.versions.forEach((version, chunk) => referenced.add(layoutKeys.treeChunk(GID, chunk, version)))
    }
    expect([...store.entries.keys()].filter((k) => k.startsWith(layoutKeys.treeChunksPrefix(GID))).sort()).toEqual([...referenced].sort())
    // A removed group: every state record goes.
    await persist(persistence, store, undefined, { status: 'removed', epoch, cursor, digests })
    expect([...store.entries.keys()].filter((k) => k.includes('/epoch/') || k.includes('/tree/') || k.endsWith('/current'))).toEqual([])
  }, 60_000)

  it('a pending commit writes its new epoch with it: merging then writes only the small records, discarding deletes it', async () => {
    const cs = await suite()
    const { alice } = await group(200, cs)
    const store = new MapStore()
    await persist(GroupPersistence.empty(store, GID), store, alice, meta(1n, 1))
    const pendingKey = storeKeys.groupPending(GID)
    const stage = async (persistence: GroupPersistence, newState: ClientState): Promise<void> => {
      const record: PendingRecord = { epoch: 1n, intent: { kind: 'update' }, commit: new Uint8Array([1]), welcome: undefined, added: [], removed: [], ...encodeStagedPending(newState) }
      const plan = persistence.plan(alice, meta(1n, 1), newState)
      await store.write([...plan.operations, { type: 'put', key: pendingKey, value: encodeRecord(record) }])
      plan.written()
    }
    const first = await createCommit({ state: alice, cipherSuite: cs }, { wireAsPublicMessage: true })
    let loaded = await reload(store)
    await stage(loaded.persistence, first.newState)
    expect(store.entries.has(layoutKeys.tree(GID, 2n))).toBe(true)
    // The pending record holds neither tree: it is a fraction of the new state's size.
    expect(store.entries.get(pendingKey)!.length * 10).toBeLessThan(encodeGroupState(first.newState).length)

    // After a restart, the pending state is reassembled from the staged records.
    loaded = await reload(store)
    const record = decodeRecord<PendingRecord>(store.entries.get(pendingKey)!, 'pending')
    const pendingState = await loaded.persistence.loadPending(record, loaded.state, defaultClientConfig)
    expect(normalized(pendingState)).toBe(normalized(first.newState))
    // Merged: the new epoch's trees are already written.
    const merge = loaded.persistence.plan(pendingState, meta(2n, 2, ['c']))
    await store.write([...merge.operations, { type: 'delete', key: pendingKey }])
    merge.written()
    const mergedKeys = merge.operations.map((op) => op.key).sort()
    expect(mergedKeys).toEqual([storeKeys.groupMeta(GID), layoutKeys.current(GID), layoutKeys.receiver(GID, 1n), layoutKeys.seen(GID, 'c')].sort())
    expect(normalized((await reload(store)).state)).toBe(normalized(pendingState))

    // Another pending commit, discarded (another member's commit won): its staged records go.
    loaded = await reload(store)
    const second = await createCommit({ state: loaded.state, cipherSuite: cs }, { wireAsPublicMessage: true })
    const before = new Set(store.entries.keys())
    const plan = loaded.persistence.plan(loaded.state, loaded.meta, second.newState)
    await store.write(plan.operations)
    plan.written()
    expect(store.entries.has(layoutKeys.tree(GID, 3n))).toBe(true)
    const discard = loaded.persistence.plan(loaded.state, loaded.meta)
    await store.write(discard.operations)
    discard.written()
    expect(new Set(store.entries.keys())).toEqual(before)
  }, 60_000)

  it('a write that fails changes nothing: the retried change is written whole', async () => {
    const cs = await suite()
    const { alice, bob } = await group(40, cs)
    const store = new MapStore()
    const persistence = GroupPersistence.empty(store, GID)
    await persist(persistence, store, bob, meta(1n, 1))
    const one = await message(alice, 'one', cs)
    const two = await message(one.sender, 'two', cs)
    store.failNext = true
    await expect(persist(persistence, store, await receive(bob, one.message, cs), meta(1n, 2, ['d1']))).rejects.toThrow('disk full')
    expect(normalized((await reload(store)).state)).toBe(normalized(bob))
    // The group did not adopt the state the failed write held: it processes the message again, then the next.
    const afterOne = await receive(bob, one.message, cs)
    await persist(persistence, store, afterOne, meta(1n, 2, ['d1']))
    expect(normalized((await reload(store)).state)).toBe(normalized(afterOne))
    const afterTwo = await receive(afterOne, two.message, cs)
    await persist(persistence, store, afterTwo, meta(1n, 3, ['d1', 'd2']))
    expect(normalized((await reload(store)).state)).toBe(normalized(afterTwo))
  }, 30_000)

  it('keeps forward secrecy on disk: a consumed ratchet secret and its skipped-generation keys are overwritten', async () => {
    const cs = await suite()
    const { alice, bob } = await group(5, cs)
    const store = new MapStore()
    const persistence = GroupPersistence.empty(store, GID)
    await persist(persistence, store, bob, meta(1n, 1))
    const aliceNode = alice.privatePath.leafIndex * 2
    // The secret tree is lazy: the epoch starts with only the root's secret on disk. Deriving Alice's leaf (as her
    // first message makes bob do) consumes the root's and every secret on the way down.
    expect(bob.secretTree[aliceNode]).toBeUndefined()
    const [derived, consumedOnTheWay] = await materializeLeaf(bob.secretTree, aliceNode, cs.kdf)
    const onTheWay = consumedOnTheWay.map((secret) => secret.slice())
    const rootSecret = onTheWay[0]!
    expect(store.holds(rootSecret)).toBe(true)
    const generation0 = derived[aliceNode]!.application.secret.slice()
    expect(store.holds(generation0)).toBe(false)
    const m1 = await message(alice, 'one', cs)
    const m2 = await message(m1.sender, 'two', cs)
    // Generation 1 first: generation 0's secret is kept (unused) for m1, the chain moves on to generation 2.
    const afterM2 = await receive(bob, m2.message, cs)
    await persist(persistence, store, afterM2, meta(1n, 2, ['d2']))
    // The root's secret and the nodes above Alice's leaf are gone from the store.
    expect(store.holds(rootSecret)).toBe(false)
    expect(onTheWay.length).toBeGreaterThan(1)
    for (const secret of onTheWay) expect(store.holds(secret)).toBe(false)
    const kept = afterM2.secretTree[aliceNode]!.application.unusedGenerations[0]!.slice()
    expect(kept).toEqual(generation0)
    expect(store.holds(generation0)).toBe(true)
    // Generation 0 used: its secret is gone from the store.
    const afterM1 = await receive(afterM2, m1.message, cs)
    await persist(persistence, store, afterM1, meta(1n, 3, ['d2', 'd1']))
    expect(afterM1.secretTree[aliceNode]!.application.unusedGenerations[0]).toBeUndefined()
    expect(store.holds(generation0)).toBe(false)
  }, 30_000)

  it('loads a group stored in the previous layout (one state record, digests in meta) and rewrites it in one write', async () => {
    const cs = await suite()
    const { bob } = await group(5, cs)
    const store = new MapStore()
    const digests = ['aa', 'bb', 'cc']
    await store.write([
      { type: 'put', key: storeKeys.groupMeta(GID), value: encodeRecord({ status: 'active', cursor: 7, epoch: 1n, digests }) },
      { type: 'put', key: storeKeys.groupState(GID), value: encodeGroupState(bob) }
    ])
    const writes = store.batches.length
    const loaded = await reload(store)
    expect(store.batches.length).toBe(writes + 1)
    expect(normalized(loaded.state)).toBe(normalized(bob))
    expect(loaded.meta).toEqual({ status: 'active', cursor: 7, epoch: 1n, digests })
    expect(await store.get(storeKeys.groupState(GID))).toBeUndefined()
    expect(await store.get(layoutKeys.current(GID))).toBeDefined()
    expect((await store.list(layoutKeys.seenPrefix(GID))).map((e) => e.key)).toEqual(digests.map((d) => layoutKeys.seen(GID, d)))
    // The second load reads the new layout, with the replay window in order, and writes nothing.
    const again = await reload(store)
    expect(store.batches.length).toBe(writes + 1)
    expect(again.meta.digests).toEqual(digests)
    expect(normalized(again.state)).toBe(normalized(bob))
  }, 30_000)

  it('refuses a store with a secret-tree record missing (STORAGE_CORRUPT), not a silently shorter tree', async () => {
    const cs = await suite()
    const { bob } = await group(40, cs)
    const store = new MapStore()
    await persist(GroupPersistence.empty(store, GID), store, bob, meta(1n, 1))
    store.entries.delete(layoutKeys.secrets(GID, 1n, 1))
    await expect(GroupPersistence.load(store, GID, defaultClientConfig)).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' })
  }, 30_000)
})
