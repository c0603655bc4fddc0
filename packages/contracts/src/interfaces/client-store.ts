import type { AbortOptions } from './common.js'

/** The only client store contract version this release of core understands. */
export const CLIENT_STORE_SPECIFICATION_VERSION = 'v1' as const

/**
 * Keys are strings built by core (for example `identity`,
 * `keypackage/<ref-hex>`, `group/<group-id-hex>/state`). Adapters treat them as
 * opaque, compare them as byte strings, and never parse them.
 */
export type StoreKey = string

/** One step of an atomic write. */
export type StoreOperation =
  | {
      /** Store `value` under `key`, replacing what was there. */
      readonly type: 'put'
      /** The key to write. */
      readonly key: StoreKey
      /** The bytes to store. */
      readonly value: Uint8Array
    }
  | {
      /** Remove `key` (nothing happens when it is absent). */
      readonly type: 'delete'
      /** The key to remove. */
      readonly key: StoreKey
    }

/** A stored value with its key, as `list` returns it. */
export interface StoreEntry {
  /** The entry's key. */
  readonly key: StoreKey
  /** A copy of the stored bytes. */
  readonly value: Uint8Array
}

/**
 * Durable state of one client: its identity, private KeyPackages, group
 * states and channel cursors. Values are opaque bytes; adapters never see MLS
 * types.
 *
 * Semantics (every adapter, proven by `@mls/conformance/storage`):
 * - A missing value is `undefined`; an empty listing is `[]`.
 * - `write` is atomic: after it resolves every operation is durable; if it
 *   rejects (or the process dies during it) none is visible. Operations apply
 *   in order, so a later put of the same key wins.
 * - Returned bytes are a copy: mutating them does not change what is stored,
 *   and mutating a value after passing it to `write` does not either.
 * - Deletion is secure where the backend allows it: the bytes of a deleted or
 *   overwritten value are overwritten (memory: zeroed; SQLite:
 *   `secure_delete`). Adapters document where they cannot guarantee this.
 * - I/O failures reject with an error whose `code` is `STORAGE_IO`; an aborted
 *   call rejects with `ABORTED`; use after `close()` rejects with
 *   `STORAGE_CLOSED`.
 */
export interface ClientStore {
  /** Contract version; core refuses stores with a version it does not know. */
  readonly specificationVersion: typeof CLIENT_STORE_SPECIFICATION_VERSION
  /** The adapter's name for logs, e.g. `SqliteClientStore`. */
  readonly [Symbol.toStringTag]: string
  /** The value under `key`, or `undefined`. */
  get(key: StoreKey, options?: AbortOptions): Promise<Uint8Array | undefined>
  /** Every entry whose key starts with `prefix`, sorted by key; `[]` when none. */
  list(prefix: StoreKey, options?: AbortOptions): Promise<StoreEntry[]>
  /** Apply all operations atomically, in order. */
  write(operations: readonly StoreOperation[], options?: AbortOptions): Promise<void>
  /** Release resources. Idempotent. Later calls reject with `STORAGE_CLOSED`. */
  close(): Promise<void>
}
