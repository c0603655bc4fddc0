import { writeDurability, type AbortOptions, type ClientStore, type StoreEntry, type StoreKey, type StoreOperation, type StoreWriteOptions } from '@mls/contracts/interfaces'
import { StorageError, throwIfAborted } from '@mls/contracts'

/**
 * Version of the IndexedDB database layout this release writes (the
 * database's IndexedDB version). Version 1: one object store `entries` whose
 * keys are the UTF-8 bytes of the store key (an ArrayBuffer, so IndexedDB
 * orders them as byte strings) and whose values are ArrayBuffers.
 */
export const INDEXEDDB_CLIENT_STORE_SCHEMA_VERSION = 1

const ENTRIES = 'entries'

/** What `openIndexedDbClientStore` needs. */
export interface IndexedDbClientStoreInit {
  /** The IndexedDB database name (one per client on an origin). */
  name: string
  /** The IndexedDB factory; defaults to `globalThis.indexedDB`. */
  indexedDB?: IDBFactory
}

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

function invalid(message: string): StorageError {
  return new StorageError('STORAGE_IO', message)
}

function io(what: string, error: unknown): StorageError {
  const reason = error instanceof Error || (typeof DOMException !== 'undefined' && error instanceof DOMException) ? `${error.name}: ${error.message}` : String(error)
  return new StorageError('STORAGE_IO', `IndexedDB ${what} failed: ${reason}`, { cause: error })
}

/** The UTF-8 bytes of a key, as an ArrayBuffer; refuses strings that do not round-trip (lone surrogates). */
function encodeKey(key: unknown): ArrayBuffer {
  if (typeof key !== 'string') throw invalid(`Store keys must be strings, got ${typeof key}`)
  const bytes = encoder.encode(key)
  if (decoder.decode(bytes) !== key) throw invalid('Store keys must be well-formed Unicode (no lone surrogates)')
  return copyBuffer(bytes)
}

/** A fresh ArrayBuffer holding exactly `bytes`. */
function copyBuffer(bytes: Uint8Array): ArrayBuffer {
  const out = new ArrayBuffer(bytes.byteLength)
  new Uint8Array(out).set(bytes)
  return out
}

/** The smallest byte string greater than every string that starts with `prefix`; undefined when there is none. */
function prefixEnd(prefix: ArrayBuffer): ArrayBuffer | undefined {
  const end = new Uint8Array(prefix).slice()
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] !== 0xff) {
      end[i] = (end[i] as number) + 1
      return copyBuffer(end.subarray(0, i + 1))
    }
  }
  return undefined
}

function valueOut(stored: unknown): Uint8Array {
  if (stored instanceof ArrayBuffer) return new Uint8Array(stored.slice(0))
  throw new StorageError('STORAGE_IO', 'A stored value is not an ArrayBuffer: the database was not written by this store')
}

function request<T>(req: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error)
  })
}

/** Resolve when the transaction commits, reject when it aborts or fails. */
function completion(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve()
    tx.onerror = () => reject(tx.error ?? new Error('transaction error'))
    tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'))
  })
}

type Operation = { type: 'put'; key: ArrayBuffer; value: ArrayBuffer } | { type: 'delete'; key: ArrayBuffer }

class IndexedDbClientStore implements ClientStore {
  readonly specificationVersion = 'v1' as const
  private closed = false

  constructor(
    private readonly db: IDBDatabase,
    private readonly name: string
  ) {
    // Another tab upgrading or deleting the database: let it, and fail later calls cleanly.
    db.onversionchange = () => {
      void this.close()
    }
  }

  get [Symbol.toStringTag](): string {
    return `IndexedDbClientStore(${this.name})`
  }

  private check(options?: AbortOptions): void {
    if (this.closed) throw new StorageError('STORAGE_CLOSED', 'The store is closed')
    throwIfAborted(options?.signal)
  }

  async get(key: StoreKey, options?: AbortOptions): Promise<Uint8Array | undefined> {
    this.check(options)
    const encoded = encodeKey(key)
    try {
      const tx = this.db.transaction(ENTRIES, 'readonly')
      const stored = await request(tx.objectStore(ENTRIES).get(encoded))
      return stored === undefined ? undefined : valueOut(stored)
    } catch (error) {
      if (error instanceof StorageError) throw error
      throw io('get', error)
    }
  }

  async list(prefix: StoreKey, options?: AbortOptions): Promise<StoreEntry[]> {
    this.check(options)
    const start = encodeKey(prefix)
    const end = prefixEnd(start)
    try {
      const tx = this.db.transaction(ENTRIES, 'readonly')
      const entries = tx.objectStore(ENTRIES)
      const range = end === undefined ? IDBKeyRange.lowerBound(start) : IDBKeyRange.bound(start, end, false, true)
      // One transaction for keys and values: both reads see the same snapshot.
      const [keys, values] = await Promise.all([request(entries.getAllKeys(range)), request(entries.getAll(range))])
      if (keys.length !== values.length) throw new StorageError('STORAGE_IO', 'IndexedDB returned keys and values of different lengths')
      return keys.map((key, i) => {
        if (!(key instanceof ArrayBuffer)) throw new StorageError('STORAGE_IO', 'A stored key is not binary: the database was not written by this store')
        return { key: decoder.decode(key), value: valueOut(values[i]) }
      })
    } catch (error) {
      if (error instanceof StorageError) throw error
      throw io('list', error)
    }
  }

  async write(operations: readonly StoreOperation[], options?: StoreWriteOptions): Promise<void> {
    this.check(options)
    // Every write is strict, `relaxed` included: IndexedDB's own relaxed durability does not promise that a
    // power loss undoes only the newest transactions, which the contract requires (docs/storage.md).
    writeDurability(options)
    // Validate and copy everything before the transaction opens: a bad batch changes nothing.
    if (!Array.isArray(operations)) throw invalid('operations must be an array')
    const ops: Operation[] = operations.map((op: StoreOperation) => {
      if (op.type === 'put') {
        if (!(op.value instanceof Uint8Array)) throw invalid(`The value for key ${String(op.key)} must be a Uint8Array`)
        return { type: 'put', key: encodeKey(op.key), value: copyBuffer(op.value) }
      }
      if (op.type === 'delete') return { type: 'delete', key: encodeKey(op.key) }
      throw invalid(`Unknown store operation ${String((op as { type: unknown }).type)}`)
    })
    try {
      // `strict`: the transaction completes only after the data is flushed to disk.
      const tx = this.db.transaction(ENTRIES, 'readwrite', { durability: 'strict' })
      const done = completion(tx)
      const entries = tx.objectStore(ENTRIES)
      for (const op of ops) {
        if (op.type === 'put') {
          entries.put(op.value, op.key)
        } else {
          entries.delete(op.key)
        }
      }
      await done
    } catch (error) {
      throw io('write', error)
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.db.close()
  }
}

/**
 * Open (creating on first use) the client store in the IndexedDB database
 * `name`. Each `write` is one `readwrite` transaction with `strict`
 * durability: atomic, and durable when it resolves; tabs of one origin share
 * the database, and IndexedDB serializes their overlapping transactions.
 * Deleted values are removed from IndexedDB, but the browser's storage engine
 * may keep their bytes on disk until it compacts (docs/storage.md reports
 * what Chromium keeps).
 */
export async function openIndexedDbClientStore(init: IndexedDbClientStoreInit): Promise<ClientStore> {
  const factory = init.indexedDB ?? globalThis.indexedDB
  if (factory === undefined) throw new StorageError('STORAGE_IO', 'IndexedDB is not available in this environment')
  if (typeof init.name !== 'string' || init.name === '') throw invalid('The IndexedDB database name must be a non-empty string')
  let db: IDBDatabase
  try {
    const req = factory.open(init.name, INDEXEDDB_CLIENT_STORE_SCHEMA_VERSION)
    req.onupgradeneeded = (event) => {
      if (event.oldVersion === 0) req.result.createObjectStore(ENTRIES)
    }
    req.onblocked = () => undefined
    db = await request(req)
  } catch (error) {
    // A database written by a newer release (higher version) lands here: VersionError.
    throw io(`open of database ${init.name}`, error)
  }
  if (!db.objectStoreNames.contains(ENTRIES)) {
    db.close()
    throw new StorageError('STORAGE_IO', `The IndexedDB database ${init.name} has no ${ENTRIES} store: it was not written by this store`)
  }
  return new IndexedDbClientStore(db, init.name)
}

/** Delete the IndexedDB database `name` (every connection to it must be closed first). */
export async function deleteIndexedDbClientStore(name: string, factory: IDBFactory = globalThis.indexedDB): Promise<void> {
  try {
    await request(factory.deleteDatabase(name))
  } catch (error) {
    throw io(`deletion of database ${name}`, error)
  }
}
