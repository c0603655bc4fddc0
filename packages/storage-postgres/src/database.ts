import pg from 'pg'
import { MlsToolkitError, StorageError, throwIfAborted } from '@mls/contracts'
import type { AbortOptions } from '@mls/contracts/interfaces'

/** Connection settings shared by the store and the instance bus. */
export interface PostgresConnectionInit {
  /** `postgres://user@host:port/database` */
  connectionString: string
  /**
   * The schema holding the store's tables (created on first use). Default
   * `mls`. One database can hold several stores in different schemas.
   */
  schema?: string
  /** Most pooled connections. Default 10. */
  maxConnections?: number
  /** Shown in `Symbol.toStringTag`. */
  name?: string
}

/** A `STORAGE_IO` error for input the store cannot keep (wrong types, out-of-range numbers). */
export function invalid(message: string): StorageError {
  return new StorageError('STORAGE_IO', message)
}

/** PostgreSQL error codes after which the whole transaction is retried. */
const RETRYABLE = new Set(['40001', '40P01'])

export function toStorageError(error: unknown, context: string): MlsToolkitError {
  if (MlsToolkitError.isInstance(error)) return error
  const message = error instanceof Error ? error.message : String(error)
  return new StorageError('STORAGE_IO', `${context}: ${message}`, { cause: error })
}

export function checkIdentifier(name: string, what: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw invalid(`${what} must be a lower-case SQL identifier, got ${JSON.stringify(name)}`)
  return name
}

export type Queryable = pg.PoolClient

/** A pool plus the transaction, abort and close discipline every method follows. */
export class Database {
  readonly pool: pg.Pool
  private closed = false

  constructor(init: PostgresConnectionInit) {
    this.pool = new pg.Pool({ connectionString: init.connectionString, max: init.maxConnections ?? 10 })
    // An idle pooled connection that dies (server restart) must not crash the process.
    this.pool.on('error', () => undefined)
  }

  get isClosed(): boolean {
    return this.closed
  }

  check(options?: AbortOptions): void {
    if (this.closed) throw new StorageError('STORAGE_CLOSED', 'The store is closed')
    throwIfAborted(options?.signal)
  }

  /** One statement outside any explicit transaction. */
  async query<R extends pg.QueryResultRow>(what: string, options: AbortOptions | undefined, text: string, values: unknown[] = []): Promise<R[]> {
    this.check(options)
    try {
      return (await this.pool.query<R>(text, values)).rows
    } catch (error) {
      throw toStorageError(error, what)
    }
  }

  /**
   * Run `fn` in one transaction (READ COMMITTED; the methods take the row or
   * advisory locks they need). A serialization failure or a deadlock rolls
   * back and runs `fn` again; any other error rolls back and rejects.
   */
  async transaction<T>(what: string, options: AbortOptions | undefined, fn: (client: Queryable) => Promise<T>): Promise<T> {
    this.check(options)
    for (let attempt = 1; ; attempt++) {
      let client: pg.PoolClient
      try {
        client = await this.pool.connect()
      } catch (error) {
        throw toStorageError(error, what)
      }
      try {
        await client.query('BEGIN')
        const result = await fn(client)
        await client.query('COMMIT')
        client.release()
        return result
      } catch (error) {
        let broken = false
        try {
          await client.query('ROLLBACK')
        } catch {
          broken = true
        }
        client.release(broken)
        const code = (error as { code?: unknown }).code
        if (typeof code === 'string' && RETRYABLE.has(code) && attempt < 50) {
          await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt))
          continue
        }
        throw toStorageError(error, what)
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.pool.end()
  }
}

/** A plain Uint8Array copy of a bytea value. */
export function bytesOut(value: Buffer): Uint8Array {
  return new Uint8Array(value)
}

/** A Buffer copy of caller bytes (so later mutation by the caller changes nothing). */
export function bytesIn(value: Uint8Array): Buffer {
  return Buffer.from(value)
}
