import { StorageError } from '../errors.js'
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
 * How durable a `write` must be when it resolves.
 * - `strict` (the default): it survives a crash of the process and a loss of
 *   power or of the operating system.
 * - `relaxed`: it survives a crash of the process; a loss of power may undo
 *   it. What such a loss undoes is always a suffix: the relaxed writes made
 *   since the last strict write, newest first. A strict write therefore also
 *   makes every write before it durable. Core asks for it only where what is
 *   written can be rebuilt: processing what the Group Channel ordered (the
 *   cursor moves with it, so the messages are fetched and processed again).
 *
 * An adapter may treat every write as `strict`.
 */
export type StoreDurability = 'strict' | 'relaxed'

/** Options of `ClientStore.write`. */
export interface StoreWriteOptions extends AbortOptions {
  /** See `StoreDurability`; `strict` when absent. */
  durability?: StoreDurability
}

/** The durability a `write` asks for (`strict` when absent); `INVALID_ARGUMENT` for an unknown one. For adapters. */
export function writeDurability(options: StoreWriteOptions | undefined): StoreDurability {
  const durability = options?.durability ?? 'strict'
  if (durability !== 'strict' && durability !== 'relaxed') throw new StorageError('INVALID_ARGUMENT', `Unknown durability ${String(durability)}`)
  return durability
}

/**
 * Durable state of one client: its identity, private KeyPackages, group
 * states and channel cursors. Values are opaque bytes; adapters never see MLS
 * types.
 *
 * Semantics (every adapter, proven by `@mls/conformance/storage`):
 * - A missing value is `undefined`; an empty listing is `[]`.
 * - `write` is atomic: after it resolves every operation is durable (as
 *   `StoreDurability` says); if it rejects (or the process dies during it)
 *   none is visible. Operations apply
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
  /** Apply all operations atomically, in order, as durably as `options.durability` asks. */
  write(operations: readonly StoreOperation[], options?: StoreWriteOptions): Promise<void>
  /** Release resources. Idempotent. Later calls reject with `STORAGE_CLOSED`. */
  close(): Promise<void>
}
