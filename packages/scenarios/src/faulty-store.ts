import { StorageError } from '@mls/core'
import type { AbortOptions, ClientStore, StoreEntry, StoreKey, StoreOperation, StoreWriteOptions } from '@mls/core/interfaces'

/** Faults a `faultyStore` injects; tests and the simulator set them at any time. */
export interface StoreFaults {
  /** The next this-many writes fail with `STORAGE_IO` (and change nothing). */
  failWrites: number
  /** The next this-many reads (`get`, `list`) fail with `STORAGE_IO`. */
  failReads: number
  /** Fail a write (with `STORAGE_IO`, changing nothing) when this returns true. */
  failWriteWhen: ((operations: readonly StoreOperation[]) => boolean) | undefined
  /** Runs after each write succeeded (for example to cut the network at an exact point). */
  afterWrite: ((operations: readonly StoreOperation[]) => void) | undefined
  /** Failures injected so far. */
  injected: number
  /** Once set, every call fails with `STORAGE_CLOSED`: a crashed process's leftovers can no longer write. */
  fenced: boolean
}

/**
 * A client store that fails on demand, as a disk or a database connection
 * would: a failed write changes nothing (the contract of `ClientStore.write`).
 * `close()` is not forwarded when `keepOpen` is set, so a "restarted" client
 * can reopen the same store.
 */
export function faultyStore(inner: ClientStore, options: { keepOpen?: boolean } = {}): ClientStore & { faults: StoreFaults } {
  const faults: StoreFaults = { failWrites: 0, failReads: 0, failWriteWhen: undefined, afterWrite: undefined, injected: 0, fenced: false }
  const fence = (): void => {
    if (faults.fenced) throw new StorageError('STORAGE_CLOSED', 'The process that opened this store crashed')
  }
  const failRead = (): void => {
    fence()
    if (faults.failReads > 0) {
      faults.failReads--
      faults.injected++
      throw new StorageError('STORAGE_IO', 'Injected read failure')
    }
  }
  return {
    specificationVersion: inner.specificationVersion,
    [Symbol.toStringTag]: `Faulty${inner[Symbol.toStringTag]}`,
    faults,
    async get(key: StoreKey, o?: AbortOptions): Promise<Uint8Array | undefined> {
      failRead()
      return inner.get(key, o)
    },
    async list(prefix: StoreKey, o?: AbortOptions): Promise<StoreEntry[]> {
      failRead()
      return inner.list(prefix, o)
    },
    async write(operations: readonly StoreOperation[], o?: StoreWriteOptions): Promise<void> {
      fence()
      if (faults.failWrites > 0 || faults.failWriteWhen?.(operations) === true) {
        if (faults.failWrites > 0) faults.failWrites--
        faults.injected++
        throw new StorageError('STORAGE_IO', 'Injected write failure')
      }
      await inner.write(operations, o)
      faults.afterWrite?.(operations)
    },
    async close(): Promise<void> {
      if (options.keepOpen !== true) await inner.close()
    }
  }
}
