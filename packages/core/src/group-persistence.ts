import type { ClientConfig, ClientState, GroupContext, RatchetTree, SecretTree } from 'ts-mls'
import { decodeGroupStateWithoutTree, encodeGroupStateWithoutTree } from 'ts-mls/clientState.js'
import { contramapBufferEncoders, encode } from 'ts-mls/codec/tlsEncoder.js'
import { mapDecoders, type Decoder } from 'ts-mls/codec/tlsDecoder.js'
import { decodeUint64, uint64Encoder } from 'ts-mls/codec/number.js'
import { decodeVarLenData, decodeVarLenType, varLenDataEncoder, varLenTypeEncoder } from 'ts-mls/codec/variableLength.js'
import { decodeGroupContext, groupContextEncoder } from 'ts-mls/groupContext.js'
import { decodeOptional, optionalEncoder } from 'ts-mls/codec/optional.js'
import type { EpochReceiverData } from 'ts-mls/epochReceiverData.js'
import type { ClientStore, StoreDurability, StoreOperation } from './interfaces/client-store.js'
import { StorageError } from './errors.js'
import { decodeRecord, encodeRecord, storeKeys } from './records.js'
import { decodePendingState, decodeState, type GroupMeta, type PendingRecord } from './group-records.js'
import { decodeNode, decodeSecretTree, nodeEncoder, secretTreeEncoder } from './ts-mls-fixes.js'

/**
 * A group's state in the store as small records (docs/performance.md), so that
 * a message rewrites a few hundred bytes whatever the group's size, and a
 * commit writes the new epoch once. Under `group/<id>/`:
 *
 * - `meta`: status, cursor, epoch (the replay window is not in it);
 * - `seen/<digest>`: one record per message digest in the replay window;
 * - `current`: the current epoch's key schedule, private path, signature key,
 *   pending proposals and group context, and which past epochs are kept;
 * - `tree/<chunk>/<version>`: {@link TREE_CHUNK_NODES} nodes of a ratchet tree,
 *   shared by every epoch whose tree holds the same nodes there: a commit
 *   writes the chunks its path and proposals changed;
 * - `epoch/<n>/tree`: which version of each chunk epoch n's tree is made of;
 * - `epoch/<n>/secrets/<chunk>`: epoch n's secret tree, {@link SECRET_CHUNK_NODES}
 *   nodes a record: receiving or sending a message rewrites the one chunk
 *   holding the sender's ratchet, so the consumed secret's bytes are
 *   overwritten in the same write (forward secrecy on disk);
 * - `epoch/<n>/receiver`: for a past epoch, what decrypts its late messages.
 *
 * Each write is one atomic batch computed by comparing the state to the one
 * last written ({@link GroupPersistence.plan}): ts-mls never mutates a state
 * it has returned (a new state shares every unchanged object with the old),
 * so what changed is what is not the same object. Loading reassembles the
 * ts-mls state; a group stored in the previous layout (one `state` record and
 * the digests in `meta`) is rewritten in this one when loaded.
 */

/** Secret-tree nodes (leaves and the parents between them) per record. */
export const SECRET_CHUNK_NODES = 32

/** Ratchet-tree nodes per record. */
export const TREE_CHUNK_NODES = 32

const encodeTreeNodes = encode(varLenTypeEncoder(optionalEncoder(nodeEncoder)))
const decodeTreeNodes = decodeVarLenType(decodeOptional(decodeNode))
const encodeSecretNodes = encode(secretTreeEncoder)

/** Keys of the records above. */
export const layoutKeys = {
  current: (gid: string) => `group/${gid}/current`,
  seenPrefix: (gid: string) => `group/${gid}/seen/`,
  seen: (gid: string, digest: string) => `group/${gid}/seen/${digest}`,
  epochPrefix: (gid: string, epoch: bigint) => `group/${gid}/epoch/${epochName(epoch)}/`,
  tree: (gid: string, epoch: bigint) => `group/${gid}/epoch/${epochName(epoch)}/tree`,
  treeChunksPrefix: (gid: string) => `group/${gid}/tree/`,
  treeChunk: (gid: string, chunk: number, version: number) => `group/${gid}/tree/${String(chunk).padStart(6, '0')}/${String(version).padStart(10, '0')}`,
  receiver: (gid: string, epoch: bigint) => `group/${gid}/epoch/${epochName(epoch)}/receiver`,
  secretsPrefix: (gid: string, epoch: bigint) => `group/${gid}/epoch/${epochName(epoch)}/secrets/`,
  secrets: (gid: string, epoch: bigint, chunk: number) => `group/${gid}/epoch/${epochName(epoch)}/secrets/${String(chunk).padStart(6, '0')}`
} as const

function epochName(epoch: bigint): string {
  return epoch.toString().padStart(20, '0')
}

/** `current`: the epoch's state without the trees, and the past epochs kept. */
interface CurrentRecord {
  epoch: bigint
  history: bigint[]
  state: Uint8Array
}

/** `epoch/<n>/receiver`: what, besides the trees, decrypts a past epoch's messages. */
interface ReceiverRecord {
  senderDataSecret: Uint8Array
  resumptionPsk: Uint8Array
  groupContext: GroupContext
}

// Both are TLS-encoded (as ts-mls encodes its own state), so secrets are stored as their raw bytes.
const encodeCurrent = encode(
  contramapBufferEncoders([uint64Encoder, varLenTypeEncoder(uint64Encoder), varLenDataEncoder], (r: CurrentRecord) => [r.epoch, r.history, r.state] as const)
)
const decodeCurrent: Decoder<CurrentRecord> = mapDecoders([decodeUint64, decodeVarLenType(decodeUint64), decodeVarLenData], (epoch, history, state) => ({ epoch, history, state }))
const encodeReceiver = encode(
  contramapBufferEncoders(
    [varLenDataEncoder, varLenDataEncoder, groupContextEncoder],
    (r: ReceiverRecord) => [r.senderDataSecret, r.resumptionPsk, r.groupContext] as const
  )
)
const decodeReceiver: Decoder<ReceiverRecord> = mapDecoders(
  [decodeVarLenData, decodeVarLenData, decodeGroupContext],
  (senderDataSecret, resumptionPsk, groupContext) => ({ senderDataSecret, resumptionPsk, groupContext })
)

/** Decode a whole record with `decoder`, or fail as `STORAGE_CORRUPT`. */
function decodeWhole<T>(decoder: Decoder<T>, bytes: Uint8Array, what: string): T {
  let decoded: [T, number] | undefined
  try {
    decoded = decoder(bytes, 0)
  } catch (cause) {
    throw new StorageError('STORAGE_CORRUPT', `Stored ${what} could not be decoded`, { cause })
  }
  if (decoded === undefined || decoded[1] !== bytes.length) throw new StorageError('STORAGE_CORRUPT', `Stored ${what} could not be decoded`)
  return decoded[0]
}

/** `meta` as stored: the replay window lives in `seen/`. */
type StoredMeta = Omit<GroupMeta, 'digests'> & { digests?: string[] }

/** One epoch as last written: the objects its records were encoded from. */
interface WrittenEpoch {
  tree: RatchetTree
  secretTree: SecretTree
  receiver: { senderDataSecret: Uint8Array; resumptionPsk: Uint8Array; groupContext: GroupContext } | undefined
}

/** `epoch/<n>/tree`: the tree's length and the version of each of its chunks. */
interface TreeIndex {
  length: number
  versions: number[]
}

/** An epoch's ratchet tree as written: the tree and its chunks' versions. */
interface WrittenTree {
  tree: RatchetTree
  versions: number[]
}

/** What the store holds, as the objects it was encoded from. */
interface Written {
  meta: GroupMeta | undefined
  state: ClientState | undefined
  epochs: Map<bigint, WrittenEpoch>
  trees: Map<bigint, WrittenTree>
  /** Above every tree-chunk version in use. */
  nextTreeVersion: number
  /** Digest → its position in the replay window. */
  seen: Map<string, number>
  nextSeen: number
}

/**
 * How durable a group write must be (`StoreDurability`). `relaxed` when it records processing an entry of the
 * channel's log (`seq` known): a power loss that undoes it leaves the cursor before the entry, which is fetched
 * and processed again. `strict` otherwise: what this member creates (a message or commit before it is posted,
 * which must never reuse a key), and what an application handed to `receive()` itself (nothing could redeliver it).
 */
export function durabilityFor(seq: number | undefined): StoreDurability {
  return seq === undefined ? 'strict' : 'relaxed'
}

/** A computed write: apply `operations` in one `store.write`, then call `written()`. */
export interface PersistencePlan {
  readonly operations: StoreOperation[]
  /** Record that the operations are durable. */
  written(): void
}

/** The epochs a state holds (current and past) with what each is stored from. */
function epochsOf(state: ClientState): Map<bigint, WrittenEpoch> {
  const epochs = new Map<bigint, WrittenEpoch>()
  for (const [epoch, data] of state.historicalReceiverData) {
    epochs.set(epoch, {
      tree: data.ratchetTree,
      secretTree: data.secretTree,
      receiver: { senderDataSecret: data.senderDataSecret, resumptionPsk: data.resumptionPsk, groupContext: data.groupContext }
    })
  }
  epochs.set(state.groupContext.epoch, { tree: state.ratchetTree, secretTree: state.secretTree, receiver: undefined })
  return epochs
}

function chunkCount(tree: SecretTree): number {
  return Math.ceil(tree.length / SECRET_CHUNK_NODES)
}

/** True when nodes [chunk * size, (chunk + 1) * size) of `a` and `b` are the same objects (and both trees have the same number there). */
function sameChunk<T>(a: readonly T[], b: readonly T[], chunk: number, size: number): boolean {
  const start = chunk * size
  const end = Math.min(start + size, b.length)
  if (Math.min(start + size, a.length) !== end) return false
  for (let i = start; i < end; i++) if (a[i] !== b[i]) return false
  return true
}

function chunkChanged(before: SecretTree, after: SecretTree, chunk: number): boolean {
  const end = Math.min((chunk + 1) * SECRET_CHUNK_NODES, Math.max(before.length, after.length))
  for (let i = chunk * SECRET_CHUNK_NODES; i < end; i++) if (before[i] !== after[i]) return true
  return false
}

/** True when the parts of `current` other than the trees are the same objects. */
function sameCurrent(a: ClientState, b: ClientState): boolean {
  return (
    a.groupContext === b.groupContext &&
    a.keySchedule === b.keySchedule &&
    a.privatePath === b.privatePath &&
    a.signaturePrivateKey === b.signaturePrivateKey &&
    a.unappliedProposals === b.unappliedProposals &&
    a.confirmationTag === b.confirmationTag &&
    a.groupActiveState === b.groupActiveState &&
    sameKeys(a.historicalReceiverData, b.historicalReceiverData)
  )
}

function sameKeys(a: Map<bigint, unknown>, b: Map<bigint, unknown>): boolean {
  if (a.size !== b.size) return false
  for (const key of a.keys()) if (!b.has(key)) return false
  return true
}

function encodeMeta(meta: GroupMeta): Uint8Array {
  const { digests: _digests, ...stored } = meta
  return encodeRecord(stored)
}

function sameMeta(a: GroupMeta, b: GroupMeta): boolean {
  return a.status === b.status && a.cursor === b.cursor && a.epoch === b.epoch && a.failure === b.failure
}

/** The persistence of one group: computes each write from what changed since the last one. */
export class GroupPersistence {
  private readonly store: ClientStore
  private readonly groupIdHex: string
  private written: Written
  private readonly trees: TreeLoader

  private constructor(store: ClientStore, groupIdHex: string, written: Written, trees?: TreeLoader) {
    this.store = store
    this.groupIdHex = groupIdHex
    this.written = written
    this.trees = trees ?? new TreeLoader(store, groupIdHex)
  }

  /**
   * The new state of a stored pending commit. A record written with
   * `encodeStagedPending` is reassembled from its epoch's tree and secret-tree
   * records, which become part of what this persistence knows is written;
   * older records hold the whole state.
   */
  async loadPending(record: PendingRecord, current: ClientState | undefined, clientConfig: ClientConfig): Promise<ClientState> {
    if (record.staged === undefined) return decodePendingState(record, current, clientConfig)
    const epoch = record.staged
    const tree = await this.trees.load(epoch)
    const secretTree = await loadSecretTree(this.store, this.groupIdHex, epoch)
    const decoded = decodeWhole(decodeGroupStateWithoutTree(tree), record.newState, 'pending commit state')
    const state = decodePendingState({ ...record, newState: new Uint8Array() }, current, clientConfig, { ...decoded, secretTree, clientConfig })
    const written = this.written
    const epochs = new Map(written.epochs).set(epoch, { tree, secretTree, receiver: undefined })
    const trees = new Map(written.trees).set(epoch, this.trees.loaded.get(epoch)!)
    this.written = { ...written, epochs, trees, nextTreeVersion: Math.max(written.nextTreeVersion, this.trees.nextVersion) }
    return state
  }

  /** A group not yet in the store: the first plan writes everything. */
  static empty(store: ClientStore, groupIdHex: string): GroupPersistence {
    return new GroupPersistence(store, groupIdHex, {
      meta: undefined,
      state: undefined,
      epochs: new Map(),
      trees: new Map(),
      nextTreeVersion: 0,
      seen: new Map(),
      nextSeen: 0
    })
  }

  /**
   * Load a group: its meta and reassembled state, or `undefined` when the
   * store holds no such group. A group in the previous layout is rewritten in
   * this one (one atomic write) before this resolves.
   */
  static async load(
    store: ClientStore,
    groupIdHex: string,
    clientConfig: ClientConfig
  ): Promise<{ persistence: GroupPersistence; meta: GroupMeta; state: ClientState | undefined } | undefined> {
    const metaBytes = await store.get(storeKeys.groupMeta(groupIdHex))
    if (metaBytes === undefined) return undefined
    const stored = decodeRecord<StoredMeta>(metaBytes, 'group meta')
    const legacyState = await store.get(storeKeys.groupState(groupIdHex))
    if (stored.digests !== undefined || legacyState !== undefined) {
      // The previous layout: the whole state in one record, the replay window in meta.
      const meta: GroupMeta = { ...stored, digests: stored.digests ?? [] }
      const state = legacyState === undefined ? undefined : decodeState(legacyState, clientConfig)
      const persistence = GroupPersistence.empty(store, groupIdHex)
      const plan = persistence.plan(state, meta)
      await store.write([...plan.operations, { type: 'delete', key: storeKeys.groupState(groupIdHex) }])
      plan.written()
      return { persistence, meta, state }
    }
    const seenPrefix = layoutKeys.seenPrefix(groupIdHex)
    const seen = new Map<string, number>()
    for (const entry of await store.list(seenPrefix)) seen.set(entry.key.slice(seenPrefix.length), decodeRecord<number>(entry.value, 'replay window'))
    const digests = [...seen].sort((a, b) => a[1] - b[1]).map(([digest]) => digest)
    const meta: GroupMeta = { ...stored, digests }
    const nextSeen = Math.max(-1, ...seen.values()) + 1
    const currentBytes = await store.get(layoutKeys.current(groupIdHex))
    if (currentBytes === undefined) {
      const written: Written = { meta, state: undefined, epochs: new Map(), trees: new Map(), nextTreeVersion: 0, seen, nextSeen }
      return { persistence: new GroupPersistence(store, groupIdHex, written), meta, state: undefined }
    }
    const current = decodeWhole(decodeCurrent, currentBytes, 'group state')
    const trees = new TreeLoader(store, groupIdHex)
    const tree = await trees.load(current.epoch)
    const secretTree = await loadSecretTree(store, groupIdHex, current.epoch)
    const decoded = decodeWhole(decodeGroupStateWithoutTree(tree), current.state, 'group state')
    const historicalReceiverData = new Map<bigint, EpochReceiverData>()
    for (const epoch of current.history) {
      const receiverBytes = await store.get(layoutKeys.receiver(groupIdHex, epoch))
      if (receiverBytes === undefined) throw new StorageError('STORAGE_CORRUPT', `The receiver record of epoch ${epoch} is missing`)
      const receiver = decodeWhole(decodeReceiver, receiverBytes, `receiver data of epoch ${epoch}`)
      historicalReceiverData.set(epoch, {
        resumptionPsk: receiver.resumptionPsk,
        senderDataSecret: receiver.senderDataSecret,
        groupContext: receiver.groupContext,
        ratchetTree: await trees.load(epoch),
        secretTree: await loadSecretTree(store, groupIdHex, epoch)
      })
    }
    const state: ClientState = { ...decoded, secretTree, historicalReceiverData, clientConfig }
    const written: Written = { meta, state, epochs: epochsOf(state), trees: trees.loaded, nextTreeVersion: trees.nextVersion, seen, nextSeen }
    const persistence = new GroupPersistence(store, groupIdHex, written, trees)
    return { persistence, meta, state }
  }

  /**
   * The operations that take the store from what was last written to
   * (`state`, `meta`); `undefined` state deletes every state record (a
   * removed group). Call `written()` once they are durable; a plan that is
   * not written changes nothing.
   */
  plan(state: ClientState | undefined, meta: GroupMeta, staged?: ClientState): PersistencePlan {
    const gid = this.groupIdHex
    const before = this.written
    const operations: StoreOperation[] = []
    if (before.meta === undefined || !sameMeta(before.meta, meta)) {
      operations.push({ type: 'put', key: storeKeys.groupMeta(gid), value: encodeMeta(meta) })
    }
    // The replay window: one record per digest (added and dropped ones are applied to `seen` once written).
    const keep = new Set(meta.digests)
    const dropped: string[] = []
    for (const digest of before.seen.keys()) {
      if (keep.has(digest)) continue
      dropped.push(digest)
      operations.push({ type: 'delete', key: layoutKeys.seen(gid, digest) })
    }
    const added: string[] = []
    for (const digest of meta.digests) {
      if (before.seen.has(digest)) continue
      added.push(digest)
      operations.push({ type: 'put', key: layoutKeys.seen(gid, digest), value: encodeRecord(before.nextSeen + added.length - 1) })
    }
    const epochs = state === undefined ? new Map<bigint, WrittenEpoch>() : epochsOf(state)
    // A pending commit's new epoch: its tree and secret tree are written now, so merging it writes little.
    if (state !== undefined && staged !== undefined && !epochs.has(staged.groupContext.epoch)) {
      epochs.set(staged.groupContext.epoch, { tree: staged.ratchetTree, secretTree: staged.secretTree, receiver: undefined })
    }
    for (const [epoch, old] of before.epochs) {
      const now = epochs.get(epoch)
      if (now === undefined) {
        operations.push(...this.deleteEpoch(epoch, old))
      } else {
        operations.push(...this.updateEpoch(epoch, old, now))
      }
    }
    for (const [epoch, now] of epochs) {
      if (!before.epochs.has(epoch)) operations.push(...this.writeEpoch(epoch, now))
    }
    const { trees, nextTreeVersion } = this.planTrees(epochs, operations)
    if (state === undefined) {
      if (before.state !== undefined) operations.push({ type: 'delete', key: layoutKeys.current(gid) })
    } else if (before.state === undefined || !sameCurrent(before.state, state)) {
      const record: CurrentRecord = {
        epoch: state.groupContext.epoch,
        history: [...state.historicalReceiverData.keys()],
        state: encodeGroupStateWithoutTree({ ...state, secretTree: [], historicalReceiverData: new Map() })
      }
      operations.push({ type: 'put', key: layoutKeys.current(gid), value: encodeCurrent(record) })
    }
    return {
      operations,
      written: () => {
        const seen = this.written.seen
        for (const digest of dropped) seen.delete(digest)
        added.forEach((digest, i) => seen.set(digest, before.nextSeen + i))
        this.written = { meta, state, epochs, trees, nextTreeVersion, seen, nextSeen: before.nextSeen + added.length }
      }
    }
  }

  /**
   * The epochs' ratchet trees: an epoch whose tree is the object last written
   * keeps its chunks; another one (a new epoch) shares each chunk whose nodes
   * are the same objects as in the tree last written for it or for the last
   * written current epoch, and gets a new version of the others. Chunk
   * versions no kept epoch uses any more are deleted.
   */
  private planTrees(epochs: Map<bigint, WrittenEpoch>, operations: StoreOperation[]): { trees: Map<bigint, WrittenTree>; nextTreeVersion: number } {
    const gid = this.groupIdHex
    const before = this.written
    const reference = before.state === undefined ? undefined : before.trees.get(before.state.groupContext.epoch)
    const trees = new Map<bigint, WrittenTree>()
    let nextTreeVersion = before.nextTreeVersion
    let changed = epochs.size !== before.trees.size
    for (const [epoch, now] of epochs) {
      const old = before.trees.get(epoch)
      if (old !== undefined && old.tree === now.tree) {
        trees.set(epoch, old)
        continue
      }
      changed = true
      const base = old ?? reference
      const versions: number[] = []
      for (let chunk = 0; chunk < Math.ceil(now.tree.length / TREE_CHUNK_NODES); chunk++) {
        const shared = base?.versions[chunk]
        if (base !== undefined && shared !== undefined && sameChunk(base.tree, now.tree, chunk, TREE_CHUNK_NODES)) {
          versions.push(shared)
          continue
        }
        const version = nextTreeVersion++
        versions.push(version)
        const nodes = now.tree.slice(chunk * TREE_CHUNK_NODES, (chunk + 1) * TREE_CHUNK_NODES)
        operations.push({ type: 'put', key: layoutKeys.treeChunk(gid, chunk, version), value: encodeTreeNodes(nodes) })
      }
      trees.set(epoch, { tree: now.tree, versions })
      const index: TreeIndex = { length: now.tree.length, versions }
      operations.push({ type: 'put', key: layoutKeys.tree(gid, epoch), value: encodeRecord(index) })
    }
    if (changed) {
      const live = new Set<string>()
      for (const { versions } of trees.values()) versions.forEach((version, chunk) => live.add(layoutKeys.treeChunk(gid, chunk, version)))
      const dropped = new Set<string>()
      for (const { versions } of before.trees.values()) {
        versions.forEach((version, chunk) => {
          const key = layoutKeys.treeChunk(gid, chunk, version)
          if (!live.has(key)) dropped.add(key)
        })
      }
      for (const key of dropped) operations.push({ type: 'delete', key })
    }
    return { trees, nextTreeVersion }
  }

  private writeEpoch(epoch: bigint, now: WrittenEpoch): StoreOperation[] {
    const ops: StoreOperation[] = []
    for (let chunk = 0; chunk < chunkCount(now.secretTree); chunk++) ops.push(this.putChunk(epoch, now.secretTree, chunk))
    if (now.receiver !== undefined) ops.push(this.putReceiver(epoch, now.receiver))
    return ops
  }

  private updateEpoch(epoch: bigint, old: WrittenEpoch, now: WrittenEpoch): StoreOperation[] {
    const gid = this.groupIdHex
    const ops: StoreOperation[] = []
    if (old.secretTree !== now.secretTree) {
      const chunks = chunkCount(now.secretTree)
      for (let chunk = 0; chunk < chunks; chunk++) {
        if (chunkChanged(old.secretTree, now.secretTree, chunk)) ops.push(this.putChunk(epoch, now.secretTree, chunk))
      }
      for (let chunk = chunks; chunk < chunkCount(old.secretTree); chunk++) ops.push({ type: 'delete', key: layoutKeys.secrets(gid, epoch, chunk) })
    }
    if (now.receiver === undefined) {
      if (old.receiver !== undefined) ops.push({ type: 'delete', key: layoutKeys.receiver(gid, epoch) })
    } else if (
      old.receiver === undefined ||
      old.receiver.senderDataSecret !== now.receiver.senderDataSecret ||
      old.receiver.resumptionPsk !== now.receiver.resumptionPsk ||
      old.receiver.groupContext !== now.receiver.groupContext
    ) {
      ops.push(this.putReceiver(epoch, now.receiver))
    }
    return ops
  }

  private deleteEpoch(epoch: bigint, old: WrittenEpoch): StoreOperation[] {
    const gid = this.groupIdHex
    const ops: StoreOperation[] = [{ type: 'delete', key: layoutKeys.tree(gid, epoch) }]
    for (let chunk = 0; chunk < chunkCount(old.secretTree); chunk++) ops.push({ type: 'delete', key: layoutKeys.secrets(gid, epoch, chunk) })
    if (old.receiver !== undefined) ops.push({ type: 'delete', key: layoutKeys.receiver(gid, epoch) })
    return ops
  }

  private putChunk(epoch: bigint, tree: SecretTree, chunk: number): StoreOperation {
    const nodes = tree.slice(chunk * SECRET_CHUNK_NODES, (chunk + 1) * SECRET_CHUNK_NODES)
    return { type: 'put', key: layoutKeys.secrets(this.groupIdHex, epoch, chunk), value: encodeSecretNodes(nodes) }
  }

  private putReceiver(epoch: bigint, receiver: NonNullable<WrittenEpoch['receiver']>): StoreOperation {
    return { type: 'put', key: layoutKeys.receiver(this.groupIdHex, epoch), value: encodeReceiver(receiver) }
  }
}

/**
 * A pending commit's new state for its record: without the trees, whose
 * records `plan(…, staged)` writes under the new epoch, and without the past
 * epochs' receiver data, which the current state holds.
 */
export function encodeStagedPending(newState: ClientState): Pick<PendingRecord, 'newState' | 'history' | 'staged'> {
  return {
    newState: encodeGroupStateWithoutTree({ ...newState, secretTree: [], historicalReceiverData: new Map() }),
    history: [...newState.historicalReceiverData.keys()],
    staged: newState.groupContext.epoch
  }
}

/** Reads epochs' ratchet trees, decoding each chunk version once (epochs sharing it share its node objects). */
class TreeLoader {
  readonly loaded = new Map<bigint, WrittenTree>()
  nextVersion = 0
  private chunks: Map<string, Uint8Array> | undefined
  private readonly decoded = new Map<string, RatchetTree>()

  constructor(
    private readonly store: ClientStore,
    private readonly gid: string
  ) {}

  async load(epoch: bigint): Promise<RatchetTree> {
    const indexBytes = await this.store.get(layoutKeys.tree(this.gid, epoch))
    if (indexBytes === undefined) throw new StorageError('STORAGE_CORRUPT', `The ratchet tree of epoch ${epoch} is missing`)
    const index = decodeRecord<TreeIndex>(indexBytes, `ratchet tree index of epoch ${epoch}`)
    this.chunks ??= new Map((await this.store.list(layoutKeys.treeChunksPrefix(this.gid))).map((entry) => [entry.key, entry.value]))
    const tree: RatchetTree = []
    index.versions.forEach((version, chunk) => {
      const key = layoutKeys.treeChunk(this.gid, chunk, version)
      let nodes = this.decoded.get(key)
      if (nodes === undefined) {
        const bytes = this.chunks?.get(key)
        if (bytes === undefined) throw new StorageError('STORAGE_CORRUPT', `A ratchet-tree record of epoch ${epoch} is missing`)
        nodes = decodeWhole(decodeTreeNodes, bytes, `ratchet tree of epoch ${epoch}`)
        this.decoded.set(key, nodes)
      }
      tree.push(...nodes)
      this.nextVersion = Math.max(this.nextVersion, version + 1)
    })
    if (tree.length !== index.length) throw new StorageError('STORAGE_CORRUPT', `The ratchet tree of epoch ${epoch} has ${tree.length} nodes, not ${index.length}`)
    this.loaded.set(epoch, { tree, versions: index.versions })
    return tree
  }
}

async function loadSecretTree(store: ClientStore, gid: string, epoch: bigint): Promise<SecretTree> {
  const tree: SecretTree = []
  const entries = await store.list(layoutKeys.secretsPrefix(gid, epoch))
  for (const [chunk, entry] of entries.entries()) {
    if (entry.key !== layoutKeys.secrets(gid, epoch, chunk)) throw new StorageError('STORAGE_CORRUPT', `A secret-tree record of epoch ${epoch} is missing`)
    tree.push(...decodeWhole(decodeSecretTree, entry.value, `secret tree of epoch ${epoch}`))
  }
  return tree
}
