import { statSync } from 'node:fs'
import { StorageError } from '@mls/contracts'
import { writeDurability, type AbortOptions, type ClientStore, type StoreEntry, type StoreKey, type StoreOperation, type StoreWriteOptions } from '@mls/contracts/interfaces'
import type { Connection, Migration, SchemaDefinition, SecureDeletionMode, SqliteStoreInit } from './database.js'
import { SqliteStoreBase, bytesOut, invalid, isMemoryPath, openDatabase } from './database.js'
import { WalCheckpointer } from './wal-checkpointer.js'

/** Options of `sqliteClientStore()`: the file path, SQLite settings (see `SqliteStoreInit`) and when secure deletion completes. */
export interface SqliteClientStoreInit extends SqliteStoreInit {
  /**
   * When values deleted or overwritten by a `write` leave the files:
   * `background` (default) soon after the write resolves (at most 100 ms), in a worker
   * thread (`flushSqliteClientStore` waits for it); `immediate` before it resolves.
   */
  secureDeletion?: SecureDeletionMode
}

/** What `sqliteClientStore()` returns: a `ClientStore` with `flush()` (see `flushSqliteClientStore`). */
export interface SqliteClientStore extends ClientStore {
  /** See `flushSqliteClientStore`. */
  flush(options?: AbortOptions): Promise<void>
}

/**
 * Schema version 1 of the client store: one table of opaque values. Keys are
 * stored as their UTF-8 bytes, so SQLite orders them as byte strings (the
 * order `list` promises) and a prefix is a byte range.
 */
const v1: Migration = (db) => {
  db.exec(`
    CREATE TABLE entries (
      key BLOB NOT NULL UNIQUE,
      value BLOB NOT NULL
    ) STRICT;
  `)
}

export const CLIENT_SCHEMA: SchemaDefinition = {
  kind: 'client store',
  // 'MLSC'
  applicationId: 0x4d4c5343,
  migrations: [v1]
}

/** The client store schema version this release writes (`PRAGMA user_version`). */
export const SQLITE_CLIENT_STORE_SCHEMA_VERSION = CLIENT_SCHEMA.migrations.length

/** The UTF-8 bytes of a key; refuses strings that do not round-trip (lone surrogates). */
function encodeKey(key: unknown): Buffer {
  if (typeof key !== 'string') throw invalid(`Store keys must be strings, got ${typeof key}`)
  const bytes = Buffer.from(key, 'utf8')
  if (bytes.toString('utf8') !== key) throw invalid('Store keys must be well-formed Unicode (no lone surrogates)')
  return bytes
}

/** The smallest byte string greater than every string that starts with `prefix`; undefined when there is none. */
function prefixEnd(prefix: Buffer): Buffer | undefined {
  const end = Buffer.from(prefix)
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] !== 0xff) {
      end[i] = (end[i] as number) + 1
      return end.subarray(0, i + 1)
    }
  }
  return undefined
}

type Operation = { type: 'put'; key: Buffer; value: Uint8Array } | { type: 'delete'; key: Buffer }

function prepareStatements(db: Connection) {
  return {
    get: db.prepare<[Buffer], { value: Buffer }>('SELECT value FROM entries WHERE key = ?'),
    listFrom: db.prepare<[Buffer], { key: Buffer; value: Buffer }>('SELECT key, value FROM entries WHERE key >= ? ORDER BY key'),
    listRange: db.prepare<[Buffer, Buffer], { key: Buffer; value: Buffer }>('SELECT key, value FROM entries WHERE key >= ? AND key < ? ORDER BY key'),
    update: db.prepare<[Uint8Array, Buffer]>('UPDATE entries SET value = ? WHERE key = ?'),
    insert: db.prepare<[Buffer, Uint8Array]>('INSERT INTO entries (key, value) VALUES (?, ?)'),
    delete: db.prepare<[Buffer]>('DELETE FROM entries WHERE key = ?')
  }
}

class SqliteClientStoreImpl extends SqliteStoreBase implements SqliteClientStore {
  readonly specificationVersion = 'v1' as const
  private readonly sql: ReturnType<typeof prepareStatements>
  /** Whether `strict` writes sync the WAL (`synchronous: 'full'`); only then do `relaxed` ones differ. */
  private readonly syncsEachWrite: boolean
  /** Whether the connection is at `synchronous = NORMAL` for relaxed writes (switched back for the next strict one). */
  private relaxedNow = false

  constructor(db: Connection, init: SqliteClientStoreInit, checkpointer: WalCheckpointer | undefined, leftoverWal: boolean) {
    super(db, init.path, `SqliteClientStore(${init.name ?? init.path})`, checkpointer)
    this.sql = prepareStatements(db)
    this.syncsEachWrite = (init.synchronous ?? 'full') === 'full'
    if (leftoverWal) this.truncateLeftoverWal()
  }

  async get(key: StoreKey, options?: AbortOptions): Promise<Uint8Array | undefined> {
    return this.run('get', options, () => {
      const row = this.sql.get.get(encodeKey(key))
      return row === undefined ? undefined : bytesOut(row.value)
    })
  }

  async list(prefix: StoreKey, options?: AbortOptions): Promise<StoreEntry[]> {
    return this.run('list', options, () => {
      const start = encodeKey(prefix)
      const end = prefixEnd(start)
      const rows = end === undefined ? this.sql.listFrom.all(start) : this.sql.listRange.all(start, end)
      return rows.map((r) => ({ key: r.key.toString('utf8'), value: bytesOut(r.value) }))
    })
  }

  async write(operations: readonly StoreOperation[], options?: StoreWriteOptions): Promise<void> {
    const durability = writeDurability(options)
    return this.run('write', options, (db) => {
      if (!Array.isArray(operations)) throw invalid('operations must be an array')
      // A relaxed write commits without syncing the WAL (synchronous = NORMAL). The WAL is one append-only file
      // whose frames carry chained checksums, so a power loss can only undo a suffix of it: the next strict
      // write's sync, or the next checkpoint's, makes every earlier write durable too.
      const relaxed = durability === 'relaxed' && this.syncsEachWrite
      if (relaxed !== this.relaxedNow) {
        db.pragma(`synchronous = ${relaxed ? 'NORMAL' : 'FULL'}`)
        this.relaxedNow = relaxed
      }
      const ops: Operation[] = operations.map((op: StoreOperation) => {
        if (op.type === 'put') {
          if (!(op.value instanceof Uint8Array)) throw invalid(`The value for key ${String(op.key)} must be a Uint8Array`)
          return { type: 'put', key: encodeKey(op.key), value: op.value }
        }
        if (op.type === 'delete') return { type: 'delete', key: encodeKey(op.key) }
        throw invalid(`Unknown store operation ${String((op as { type: unknown }).type)}`)
      })
      const removed = db
        .transaction((): boolean => {
          let removed = false
          for (const op of ops) {
            if (op.type === 'delete') {
              removed = this.sql.delete.run(op.key).changes > 0 || removed
            } else if (this.sql.update.run(op.value, op.key).changes > 0) {
              removed = true
            } else {
              this.sql.insert.run(op.key, op.value)
            }
          }
          return removed
        })
        .immediate()
      if (removed) this.requestTruncate()
    })
  }
}

/**
 * A client store in one SQLite file (better-sqlite3). `write` is one
 * transaction; WAL with `synchronous = FULL` by default. Deleted and
 * overwritten values are overwritten in the file: `secure_delete` zeroes them
 * in the pages the transaction writes, and a truncating WAL checkpoint removes
 * the older page versions, in a worker thread soon after `write` resolves
 * (`flushSqliteClientStore(store)` and `close()` wait for it) or, with `secureDeletion:
 * 'immediate'`, before `write` resolves. Opening is synchronous and throws
 * (see `openDatabase`; `INVALID_ARGUMENT` for an unknown `secureDeletion`).
 */
export function sqliteClientStore(init: SqliteClientStoreInit): ClientStore {
  return openClientStore(init)
}

/**
 * Resolve once every value deleted or overwritten by a `write` to `store`
 * that resolved before this call is gone from the database file and its WAL
 * (`close()` does the same before it releases the file). With
 * `secureDeletion: 'background'` this waits for (or starts) the worker's
 * checkpoint, and truncates on the store's own connection if the worker could
 * not. Errors: `INVALID_ARGUMENT` when `store` was not opened by
 * `sqliteClientStore()`; `STORAGE_CLOSED` after close; `STORAGE_IO` with
 * `details.reason === 'checkpoint-busy'` when another connection on the file
 * still reads an old snapshot.
 */
export async function flushSqliteClientStore(store: ClientStore, options?: AbortOptions): Promise<void> {
  if (!(store instanceof SqliteClientStoreImpl)) throw new StorageError('INVALID_ARGUMENT', 'The store was not opened by sqliteClientStore()')
  return store.flush(options)
}

/** `sqliteClientStore`, with the checkpoint worker's driver module replaceable (tests). */
export function openClientStore(init: SqliteClientStoreInit, driver?: string): SqliteClientStore {
  const mode = init.secureDeletion ?? 'background'
  if (mode !== 'background' && mode !== 'immediate') throw new StorageError('INVALID_ARGUMENT', `Unknown secureDeletion mode ${String(mode)}`)
  const leftoverWal = !isMemoryPath(init.path) && walSize(init.path) > 0
  const db = openDatabase(init, CLIENT_SCHEMA)
  const checkpointer =
    mode === 'background' && !isMemoryPath(init.path)
      ? new WalCheckpointer(init.path, init.synchronous ?? 'full', init.busyTimeoutMs ?? 5000, driver)
      : undefined
  return new SqliteClientStoreImpl(db, init, checkpointer, leftoverWal)
}

/** The size of the database's WAL file; 0 when there is none. */
function walSize(path: string): number {
  try {
    return statSync(`${path}-wal`).size
  } catch {
    return 0
  }
}
