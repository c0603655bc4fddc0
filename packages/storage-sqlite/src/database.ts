import Database from 'better-sqlite3'
import { MlsToolkitError, StorageError, throwIfAborted } from '@mls/contracts'
import type { AbortOptions } from '@mls/contracts/interfaces'
import type { WalCheckpointer } from './wal-checkpointer.js'

/** A better-sqlite3 connection, as the stores hold it. */
export type Connection = Database.Database

/**
 * One schema step: `migrations[n]` takes a database from schema version `n`
 * to `n + 1`. It runs inside the opening transaction, so a failed migration
 * leaves the file as it was.
 */
export type Migration = (db: Connection) => void

/** How SQLite syncs a committed transaction to the disk. */
export type SynchronousMode = 'full' | 'normal'

/** Options both SQLite stores accept. */
export interface SqliteStoreInit {
  /** The database file, or `:memory:` for a private in-memory database (no durability, no WAL). */
  path: string
  /** Shown in `Symbol.toStringTag`; the path when omitted. */
  name?: string
  /**
   * `full` (default): every resolved write survives a power loss (the WAL is
   * fsynced on each commit). `normal`: a resolved write survives a crash of
   * the process but the last transactions may roll back on a power loss; see
   * docs/storage.md for the measured difference.
   */
  synchronous?: SynchronousMode
  /** How long a write waits for another connection's lock before failing with `STORAGE_IO`. Default 5000 ms. */
  busyTimeoutMs?: number
  /**
   * Most memory SQLite's page cache may hold, in KiB (`PRAGMA cache_size =
   * -n`). The cache fills as the database grows, up to this size, then stays:
   * a server's memory rises by up to this much before it is flat. Default
   * 16000 (the default better-sqlite3 compiles SQLite with).
   */
  cacheSizeKib?: number
}

/**
 * When the WAL truncation that completes secure deletion runs (client store;
 * the server store always truncates before its deleting calls resolve).
 * `background` (default): in a worker thread soon after the deleting
 * `write` resolves; `flushSqliteClientStore` and `close()` wait for it. `immediate`: before
 * the deleting `write` resolves (one checkpoint per such write, 10-50 ms on a
 * busy disk). See docs/storage.md.
 */
export type SecureDeletionMode = 'background' | 'immediate'

export interface SchemaDefinition {
  /** What the file holds, for error messages: `server store`, `client store`. */
  readonly kind: string
  /** `PRAGMA application_id`: tells a server store file from a client store file. */
  readonly applicationId: number
  /** `migrations.length` is the schema version this release writes. */
  readonly migrations: readonly Migration[]
}

const CORRUPT = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB'])

function sqliteCode(error: unknown): string | undefined {
  return error instanceof Database.SqliteError ? error.code : undefined
}

/** Wrap anything a SQLite call threw as a `StorageError`; toolkit errors pass through. */
export function toStorageError(error: unknown, context: string): MlsToolkitError {
  if (MlsToolkitError.isInstance(error)) return error
  const code = sqliteCode(error)
  const message = error instanceof Error ? error.message : String(error)
  return new StorageError('STORAGE_IO', `${context}: ${message}`, {
    cause: error,
    ...(code === undefined ? {} : { details: { sqliteCode: code } })
  })
}

/** A `STORAGE_IO` error for input the store cannot keep (wrong types, out-of-range numbers). */
export function invalid(message: string): StorageError {
  return new StorageError('STORAGE_IO', message)
}

export function isMemoryPath(path: string): boolean {
  return path === ':memory:' || path === ''
}

/**
 * True when better-sqlite3's compiled addon is absent or unloadable: pnpm 10
 * skips install scripts unless allowed, so the addon was never built, or it
 * was built for another Node.js version.
 */
export function isMissingNativeBinding(error: unknown): boolean {
  if (!(error instanceof Error)) return false
  const code = (error as { code?: unknown }).code
  return (
    code === 'ERR_DLOPEN_FAILED' ||
    /Could not locate the bindings file|NODE_MODULE_VERSION|better_sqlite3\.node/.test(error.message)
  )
}

/** The error a user sees when better-sqlite3's addon is missing, naming the fix. */
export function missingNativeBinding(cause: unknown): StorageError {
  return new StorageError(
    'STORAGE_IO',
    'better-sqlite3 has no native binding for this Node.js: its install script did not run or was built for another Node.js version. ' +
      'With pnpm 10, allow its build: add "pnpm": { "onlyBuiltDependencies": ["better-sqlite3"] } to your package.json (or run `pnpm approve-builds`), then `pnpm rebuild better-sqlite3`. ' +
      'With npm: `npm rebuild better-sqlite3` (it needs python3, make and a C++ compiler when no prebuilt binary can be downloaded).',
    { cause, details: { reason: 'native-binding-missing', package: 'better-sqlite3' } }
  )
}

/**
 * Open (creating if needed) a database, set the pragmas every store relies on
 * and bring its schema to the current version.
 *
 * Errors: `STORAGE_IO` when the file cannot be opened or better-sqlite3's
 * native binding is missing (`details.reason === 'native-binding-missing'`), `STORAGE_CORRUPT` when
 * it is not a SQLite database, `INVALID_ARGUMENT` when it holds another kind
 * of store, `UNSUPPORTED_SPECIFICATION` when its schema is newer than this
 * release understands.
 */
export function openDatabase(init: SqliteStoreInit, schema: SchemaDefinition): Connection {
  if (typeof init.path !== 'string') throw new StorageError('INVALID_ARGUMENT', 'path must be a string')
  const synchronous = init.synchronous ?? 'full'
  if (synchronous !== 'full' && synchronous !== 'normal') throw new StorageError('INVALID_ARGUMENT', `Unknown synchronous mode ${String(synchronous)}`)
  const cacheSizeKib = init.cacheSizeKib
  if (cacheSizeKib !== undefined && (!Number.isSafeInteger(cacheSizeKib) || cacheSizeKib < 1)) {
    throw new StorageError('INVALID_ARGUMENT', `cacheSizeKib must be a positive integer, got ${String(cacheSizeKib)}`)
  }
  let db: Connection
  try {
    db = new Database(init.path, { timeout: init.busyTimeoutMs ?? 5000 })
  } catch (error) {
    if (isMissingNativeBinding(error)) throw missingNativeBinding(error)
    throw toStorageError(error, `Cannot open ${schema.kind} at ${init.path}`)
  }
  try {
    // secure_delete first: it must hold for every page freed from here on.
    if (db.pragma('secure_delete = ON', { simple: true }) !== 1) throw invalid('This SQLite build does not support secure_delete')
    db.pragma('foreign_keys = ON')
    // Sorts and temporary tables stay in memory, never in a temp file that secure_delete does not cover.
    db.pragma('temp_store = MEMORY')
    if (!isMemoryPath(init.path)) {
      const mode = db.pragma('journal_mode = WAL', { simple: true })
      if (mode !== 'wal') throw invalid(`Cannot switch ${init.path} to WAL journal mode (got ${String(mode)})`)
    }
    db.pragma(`synchronous = ${synchronous === 'full' ? 'FULL' : 'NORMAL'}`)
    if (cacheSizeKib !== undefined) db.pragma(`cache_size = -${cacheSizeKib}`)
    migrate(db, schema)
    return db
  } catch (error) {
    db.close()
    if (CORRUPT.has(sqliteCode(error) ?? '')) {
      throw new StorageError('STORAGE_CORRUPT', `${init.path} is not a readable SQLite database`, { cause: error })
    }
    throw toStorageError(error, `Cannot open ${schema.kind} at ${init.path}`)
  }
}

/**
 * Bring the schema to `schema.migrations.length`, in one transaction.
 * Refuses a file with a newer schema (`UNSUPPORTED_SPECIFICATION`) and a file
 * that holds something else (`INVALID_ARGUMENT`). Returns the version found.
 */
export function migrate(db: Connection, schema: SchemaDefinition): number {
  const target = schema.migrations.length
  const run = db.transaction((): number => {
    const version = db.pragma('user_version', { simple: true }) as number
    const applicationId = db.pragma('application_id', { simple: true }) as number
    if (applicationId !== schema.applicationId) {
      const tables = db.prepare<[], { n: number }>("SELECT count(*) AS n FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'").get()?.n ?? 0
      if (applicationId !== 0 || version !== 0 || tables !== 0) {
        throw new StorageError('INVALID_ARGUMENT', `The database does not hold an @mls/storage-sqlite ${schema.kind}`, {
          details: { applicationId, userVersion: version }
        })
      }
    }
    if (version > target) {
      throw new StorageError(
        'UNSUPPORTED_SPECIFICATION',
        `The ${schema.kind} database has schema version ${version}; this release of @mls/storage-sqlite understands up to ${target}`,
        { details: { schemaVersion: version, supportedVersion: target } }
      )
    }
    for (let v = version; v < target; v++) (schema.migrations[v] as Migration)(db)
    if (version !== target) db.pragma(`user_version = ${target}`)
    if (applicationId !== schema.applicationId) db.pragma(`application_id = ${schema.applicationId}`)
    return version
  })
  return run.immediate()
}

/**
 * What both stores share: the connection, the closed state, error wrapping,
 * and the WAL truncation that completes secure deletion: before the deleting
 * call resolves, or (with a `WalCheckpointer`) in a worker thread soon after
 * it, which `flush()` and `close()` wait for.
 */
export abstract class SqliteStoreBase {
  private readonly tag: string
  protected db: Connection | undefined
  private readonly memory: boolean
  private truncatePending = false
  private readonly checkpointer: WalCheckpointer | undefined

  constructor(db: Connection, path: string, tag: string, checkpointer?: WalCheckpointer) {
    this.tag = tag
    this.db = db
    this.memory = isMemoryPath(path)
    this.checkpointer = this.memory ? undefined : checkpointer
  }

  /**
   * The WAL holds frames from before this connection (the last process
   * stopped without `close()`): they may hold values it deleted, so truncate
   * it after the next call (or in the background).
   */
  protected truncateLeftoverWal(): void {
    if (this.memory) return
    if (this.checkpointer === undefined) this.truncatePending = true
    else this.checkpointer.request()
  }

  get [Symbol.toStringTag](): string {
    return this.tag
  }

  /**
   * Run `fn` against the open connection: `STORAGE_CLOSED` after close,
   * `ABORTED` for an aborted signal (before anything runs), and every other
   * failure wrapped as a `StorageError`. `fn` is synchronous, so calls from
   * concurrent async callers never interleave.
   */
  protected async run<T>(what: string, options: AbortOptions | undefined, fn: (db: Connection) => T): Promise<T> {
    const db = this.db
    if (db === undefined) throw new StorageError('STORAGE_CLOSED', 'The store is closed')
    throwIfAborted(options?.signal)
    try {
      return fn(db)
    } catch (error) {
      throw toStorageError(error, what)
    } finally {
      const checkpointer = this.checkpointer
      if (checkpointer !== undefined && checkpointer.broken && !checkpointer.clean) {
        // The worker failed: what it left undone is truncated here, and so is every later deletion.
        this.truncatePending = true
        checkpointer.markClean()
      }
      if (this.truncatePending) {
        if (checkpointer === undefined || checkpointer.broken) {
          this.truncateWal(db)
        } else {
          this.truncatePending = false
          checkpointer.request()
        }
      }
    }
  }

  /**
   * Resolve once every value deleted or overwritten by a call that resolved
   * before this one is gone from the database file and its WAL: wait for the
   * background checkpoint, and truncate the WAL here if it did not complete.
   * Errors: `STORAGE_CLOSED` after close; `STORAGE_IO` with
   * `details.reason === 'checkpoint-busy'` when another connection still reads
   * an old snapshot, so the old page versions cannot leave the WAL yet.
   */
  async flush(options?: AbortOptions): Promise<void> {
    if (this.db === undefined) throw new StorageError('STORAGE_CLOSED', 'The store is closed')
    throwIfAborted(options?.signal)
    const checkpointer = this.checkpointer
    // Later writes are not waited for: under a steady stream of them the worker may never be idle.
    if (checkpointer !== undefined && !checkpointer.broken && (await checkpointer.reach(checkpointer.latest))) return
    const db = this.db
    if (db === undefined) throw new StorageError('STORAGE_CLOSED', 'The store is closed')
    if (!this.truncatePending && (checkpointer === undefined || checkpointer.clean)) return
    let busy: boolean
    try {
      busy = (db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[])[0]?.busy !== 0
    } catch (error) {
      throw toStorageError(error, 'flush')
    }
    if (busy) {
      throw new StorageError('STORAGE_IO', 'Another connection reads an old snapshot of the database: deleted values cannot leave the WAL yet', {
        details: { reason: 'checkpoint-busy' }
      })
    }
    this.truncatePending = false
    this.checkpointer?.markClean()
  }

  /**
   * Ask for the WAL to be checkpointed and truncated before the current call
   * resolves. `secure_delete` zeroes freed content in the page versions it
   * writes, but earlier versions of those pages stay in the WAL (and in the
   * main file until a checkpoint); a TRUNCATE checkpoint copies the zeroed
   * pages into the main file and empties the WAL.
   */
  protected requestTruncate(): void {
    if (!this.memory) this.truncatePending = true
  }

  private truncateWal(db: Connection): void {
    try {
      const result = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[]
      // busy: another connection still reads an old snapshot; retry after the next call.
      this.truncatePending = result[0]?.busy !== 0
    } catch {
      // The transaction is committed; a failed checkpoint only delays secure deletion. Retry after the next call.
    }
  }

  /** Release the connection (SQLite checkpoints and removes the WAL when it closes the last one). Idempotent. */
  async close(): Promise<void> {
    const db = this.db
    if (db === undefined) return
    this.db = undefined
    try {
      if (this.checkpointer !== undefined) {
        await this.checkpointer.close()
        if (!this.checkpointer.clean) this.truncatePending = true
      }
      if (this.truncatePending) this.truncateWal(db)
      db.close()
    } catch (error) {
      throw toStorageError(error, 'Cannot close the database')
    }
  }
}

/** A BLOB as a plain `Uint8Array` the caller owns (better-sqlite3 returns a fresh Buffer per read). */
export function bytesOut(buffer: Buffer): Uint8Array {
  return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength)
}
