// The web chat's message history at rest: one IndexedDB database per device,
// each group's log sealed with AES-256-GCM under that group's own WebCrypto key.
// The keys are generated non-extractable: script on the page can use them
// (while it runs) but never read their bytes, so the stored values are
// ciphertext to anything that dumps storage. docs/apps.md says what this
// protects against and what it does not.

const KEYS = 'keys'
const LOGS = 'logs'
const IV_BYTES = 12

/** One group's log as stored: a random nonce and the AES-GCM ciphertext of the log's JSON, bound to the group id. */
interface SealedLog {
  readonly iv: Uint8Array<ArrayBuffer>
  readonly ciphertext: ArrayBuffer
}

function request<T>(operation: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    operation.onsuccess = () => resolve(operation.result)
    operation.onerror = () => reject(operation.error ?? new Error('IndexedDB request failed'))
  })
}

function completion(transaction: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve()
    transaction.onerror = () => reject(transaction.error ?? new Error('IndexedDB transaction failed'))
    transaction.onabort = () => reject(transaction.error ?? new Error('IndexedDB transaction aborted'))
  })
}

/**
 * Each group's history, encrypted at rest in IndexedDB under a per-group,
 * non-extractable AES-GCM key kept beside it. `delete` removes a group's key
 * and its log in one transaction.
 */
export class EncryptedHistory<Log> {
  /** Writes per group, chained so the last `save` called is the one stored. */
  private readonly writes = new Map<string, Promise<void>>()

  private constructor(private readonly database: IDBDatabase) {}

  /** Open (or create) the history database `name`. */
  static async open<Log>(name: string): Promise<EncryptedHistory<Log>> {
    const opening = indexedDB.open(name, 1)
    opening.onupgradeneeded = () => {
      opening.result.createObjectStore(KEYS)
      opening.result.createObjectStore(LOGS)
    }
    return new EncryptedHistory<Log>(await request(opening))
  }

  /** Every stored group's log, decrypted. A log whose key is gone or that fails to authenticate is left out. */
  async loadAll(): Promise<Map<string, Log>> {
    const transaction = this.database.transaction([KEYS, LOGS], 'readonly')
    const keys = transaction.objectStore(KEYS)
    const logs = transaction.objectStore(LOGS)
    const [groupIds, sealed] = await Promise.all([request(logs.getAllKeys()), request(logs.getAll() as IDBRequest<SealedLog[]>)])
    const cryptoKeys = await Promise.all(groupIds.map((groupId) => request(keys.get(groupId) as IDBRequest<CryptoKey | undefined>)))
    const result = new Map<string, Log>()
    for (const [index, groupId] of groupIds.entries()) {
      const key = cryptoKeys[index]
      if (key === undefined || typeof groupId !== 'string') continue
      try {
        result.set(groupId, await this.unseal(key, groupId, sealed[index]!))
      } catch {
        // Tampered with or written under another key: not history this device can vouch for.
      }
    }
    return result
  }

  /** Seal and store a group's log (the whole log; a chat's log is small). */
  save(groupId: string, log: Log): Promise<void> {
    const plaintext = new TextEncoder().encode(JSON.stringify(log))
    return this.chain(groupId, async () => {
      const key = await this.keyFor(groupId)
      const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES))
      const ciphertext = await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: new TextEncoder().encode(groupId) }, key, plaintext)
      const transaction = this.database.transaction(LOGS, 'readwrite')
      transaction.objectStore(LOGS).put({ iv, ciphertext } satisfies SealedLog, groupId)
      await completion(transaction)
    })
  }

  /** Delete a group's log and its key (after leaving or being removed). */
  delete(groupId: string): Promise<void> {
    return this.chain(groupId, async () => {
      const transaction = this.database.transaction([KEYS, LOGS], 'readwrite')
      transaction.objectStore(KEYS).delete(groupId)
      transaction.objectStore(LOGS).delete(groupId)
      await completion(transaction)
    })
  }

  close(): void {
    this.database.close()
  }

  private chain(groupId: string, write: () => Promise<void>): Promise<void> {
    const next = (this.writes.get(groupId) ?? Promise.resolve()).catch(() => undefined).then(write)
    this.writes.set(groupId, next)
    return next
  }

  private async keyFor(groupId: string): Promise<CryptoKey> {
    const existing = await request(this.database.transaction(KEYS, 'readonly').objectStore(KEYS).get(groupId) as IDBRequest<CryptoKey | undefined>)
    if (existing !== undefined) return existing
    const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt'])
    const transaction = this.database.transaction(KEYS, 'readwrite')
    transaction.objectStore(KEYS).put(key, groupId)
    await completion(transaction)
    return key
  }

  private async unseal(key: CryptoKey, groupId: string, sealed: SealedLog): Promise<Log> {
    const plaintext = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: sealed.iv, additionalData: new TextEncoder().encode(groupId) }, key, sealed.ciphertext)
    return JSON.parse(new TextDecoder().decode(plaintext)) as Log
  }
}
