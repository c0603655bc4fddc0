import type { AbortOptions, ClientStore, StoreEntry, StoreKey, StoreOperation, StoreWriteOptions } from '@mls/core/interfaces'

/** A client store whose relaxed writes a simulated power loss can undo. */
export interface PowerLossStore extends ClientStore {
  /** Relaxed writes since the last strict one: what a power loss may undo. */
  readonly undoable: number
  /**
   * A power loss: undo the newest relaxed writes, keeping the first `keep` of
   * those since the last strict write (the contract of `StoreDurability`: a
   * loss undoes a suffix of relaxed writes, never a strict one).
   */
  losePower(keep: number): Promise<void>
}

/**
 * Wraps a store (one that outlives a process, like a memory store kept open
 * across simulated restarts) so that a power loss can be simulated: each
 * relaxed write records the values it replaces, a strict write forgets them
 * (everything before it is durable), and `losePower` puts the replaced values
 * back, newest first. Writes are applied one at a time, so each undo record
 * matches the write it undoes.
 */
export function powerLossStore(inner: ClientStore): PowerLossStore {
  /** Per relaxed write since the last strict one: each key it touched and the value it had before. */
  const undo: { key: StoreKey; before: Uint8Array | undefined }[][] = []
  let queue: Promise<unknown> = Promise.resolve()
  const serially = <T>(run: () => Promise<T>): Promise<T> => {
    const result = queue.then(run)
    queue = result.catch(() => undefined)
    return result
  }
  return {
    specificationVersion: inner.specificationVersion,
    [Symbol.toStringTag]: `PowerLoss${inner[Symbol.toStringTag]}`,
    get undoable() {
      return undo.length
    },
    get: (key: StoreKey, o?: AbortOptions) => inner.get(key, o),
    list: (prefix: StoreKey, o?: AbortOptions): Promise<StoreEntry[]> => inner.list(prefix, o),
    write: (operations: readonly StoreOperation[], o?: StoreWriteOptions) =>
      serially(async () => {
        if (o?.durability !== 'relaxed') {
          await inner.write(operations, o)
          undo.length = 0
          return
        }
        const keys = [...new Set(operations.map((op) => op.key))]
        const before = await Promise.all(keys.map(async (key) => ({ key, before: await inner.get(key) })))
        await inner.write(operations, o)
        undo.push(before)
      }),
    losePower: (keep: number) =>
      serially(async () => {
        while (undo.length > Math.max(0, keep)) {
          const record = undo.pop()!
          await inner.write(record.map(({ key, before }) => (before === undefined ? { type: 'delete' as const, key } : { type: 'put' as const, key, value: before })))
        }
        undo.length = 0
      }),
    close: () => inner.close()
  }
}
