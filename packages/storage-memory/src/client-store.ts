import { writeDurability, type AbortOptions, type ClientStore, type StoreEntry, type StoreKey, type StoreOperation, type StoreWriteOptions } from '@mls/contracts/interfaces'
import { StorageError, throwIfAborted } from '@mls/contracts'

/** Options of `memoryClientStore()`. */
export interface MemoryClientStoreInit {
  /** Shown in `Symbol.toStringTag`; useful when a test holds several stores. */
  name?: string
}

class MemoryClientStore implements ClientStore {
  readonly specificationVersion = 'v1' as const
  private readonly name: string
  private readonly values = new Map<StoreKey, Uint8Array>()
  private closed = false

  constructor(init: MemoryClientStoreInit) {
    this.name = init.name ?? 'default'
  }

  get [Symbol.toStringTag](): string {
    return `MemoryClientStore(${this.name})`
  }

  private check(options?: AbortOptions): void {
    if (this.closed) throw new StorageError('STORAGE_CLOSED', 'The store is closed')
    throwIfAborted(options?.signal)
  }

  async get(key: StoreKey, options?: AbortOptions): Promise<Uint8Array | undefined> {
    this.check(options)
    const value = this.values.get(key)
    return value === undefined ? undefined : value.slice()
  }

  async list(prefix: StoreKey, options?: AbortOptions): Promise<StoreEntry[]> {
    this.check(options)
    const out: StoreEntry[] = []
    for (const [key, value] of this.values) {
      if (key.startsWith(prefix)) out.push({ key, value: value.slice() })
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  }

  async write(operations: readonly StoreOperation[], options?: StoreWriteOptions): Promise<void> {
    this.check(options)
    // Nothing here outlives the process: every durability is the same.
    writeDurability(options)
    for (const op of operations) {
      if (typeof op.key !== 'string' || (op.type === 'put' && !(op.value instanceof Uint8Array)) || (op.type !== 'put' && op.type !== 'delete')) {
        throw new StorageError('STORAGE_IO', `Invalid store operation for key ${String(op.key)}`)
      }
    }
    for (const op of operations) {
      const previous = this.values.get(op.key)
      if (op.type === 'put') this.values.set(op.key, op.value.slice())
      else this.values.delete(op.key)
      previous?.fill(0)
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    for (const value of this.values.values()) value.fill(0)
    this.values.clear()
  }

  /** Test hook: every stored byte, to prove deleted secrets are gone. */
  rawSnapshot(): Uint8Array[] {
    return [...this.values.values()]
  }
}

/** A client store in memory: state lives as long as the object. Overwritten and deleted values are zeroed. */
export function memoryClientStore(init: MemoryClientStoreInit = {}): ClientStore & {
  /** Test hook: every stored byte, to prove deleted secrets are gone. */
  rawSnapshot(): Uint8Array[]
} {
  return new MemoryClientStore(init)
}
