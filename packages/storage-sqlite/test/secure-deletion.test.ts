import { afterAll, describe, expect, it, vi } from 'vitest'
import { copyFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { ClientStore } from '@mls/contracts/interfaces'
import { flushSqliteClientStore, sqliteClientStore } from '../src/index.js'
import { openClientStore } from '../src/client-store.js'
import { fileBytes, removeDir, tempDir } from './helpers.js'

// The client store's default secure deletion: the truncating WAL checkpoint
// runs in a worker thread after a deleting write resolves; flush() and
// close() wait for it (docs/storage.md, "Secure deletion").

const dir = tempDir('secure-deletion')
afterAll(() => removeDir(dir))
let counter = 0
const freshPath = (): string => join(dir, `client-${++counter}.db`)

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).includes(Buffer.from(needle))
}

/** A recognisable value: `label|label|...`, `size` bytes. */
const secret = (label: string, size = 96): Uint8Array => {
  const out = Buffer.alloc(size)
  out.write(`${label}|`.repeat(size), 'latin1')
  return new Uint8Array(out)
}

describe('background secure deletion (client store default)', () => {
  it('after flushSqliteClientStore(), deleted and overwritten secrets are in none of the -db, -wal and -shm files; kept values are', async () => {
    const path = freshPath()
    const store = sqliteClientStore({ path })
    await store.write([
      { type: 'put', key: 'ratchet', value: secret('ratchet-0') },
      { type: 'put', key: 'key/1', value: secret('key-1') },
      { type: 'put', key: 'keep', value: secret('keep') }
    ])
    // Checkpointed into the main file first, so the secrets are in both the main file and (next) the WAL's history.
    await flushSqliteClientStore(store)
    expect(contains(fileBytes(path), secret('ratchet-0'))).toBe(true)
    for (let i = 1; i <= 20; i++) {
      await store.write([
        { type: 'put', key: 'ratchet', value: secret(`ratchet-${i}`) },
        { type: 'delete', key: `key/${i}` },
        { type: 'put', key: `key/${i + 1}`, value: secret(`key-${i + 1}`) }
      ])
    }
    await flushSqliteClientStore(store)
    const raw = fileBytes(path)
    for (let i = 0; i < 20; i++) expect(contains(raw, secret(`ratchet-${i}`)), `ratchet-${i}`).toBe(false)
    for (let i = 1; i <= 20; i++) expect(contains(raw, secret(`key-${i}`)), `key-${i}`).toBe(false)
    expect(contains(raw, secret('ratchet-20'))).toBe(true)
    expect(contains(raw, secret('key-21'))).toBe(true)
    expect(contains(raw, secret('keep'))).toBe(true)
    await store.close()
  })

  it('without flushSqliteClientStore(), the worker removes a deleted secret on its own, and the write was durable before that', async () => {
    const path = freshPath()
    const store = sqliteClientStore({ path })
    await store.write([{ type: 'put', key: 'epoch-secret', value: secret('epoch-secret') }])
    await store.write([{ type: 'delete', key: 'epoch-secret' }])
    // The write did not truncate before resolving (the checkpoint waits for writes to pause, on a timer that cannot have run yet)...
    expect(contains(fileBytes(path), secret('epoch-secret'))).toBe(true)
    // ...but it is committed: a second connection already sees the deletion.
    const reader = new Database(path, { readonly: true })
    expect(reader.prepare("SELECT count(*) AS n FROM entries WHERE key = CAST('epoch-secret' AS BLOB)").get()).toEqual({ n: 0 })
    reader.close()
    // Nobody asks and nothing else is written: the worker's checkpoint alone makes the bytes leave the files.
    await vi.waitFor(() => expect(contains(fileBytes(path), secret('epoch-secret'))).toBe(false), { timeout: 20_000, interval: 5 })
    await store.close()
  })

  it('close() waits for the pending checkpoint: nothing deleted is left in the files after it', async () => {
    const path = freshPath()
    const store = sqliteClientStore({ path })
    await store.write([{ type: 'put', key: 'a', value: secret('closing-a') }])
    await flushSqliteClientStore(store)
    // Another open connection (reading nothing) keeps SQLite from removing the WAL when the store closes: the store must empty it itself.
    const other = new Database(path, { readonly: true })
    expect(other.prepare('SELECT count(*) AS n FROM entries').get()).toEqual({ n: 1 })
    await store.write([{ type: 'put', key: 'a', value: secret('closing-b') }])
    await store.close()
    const raw = fileBytes(path)
    other.close()
    expect(contains(raw, secret('closing-a'))).toBe(false)
    expect(contains(raw, secret('closing-b'))).toBe(true)
  })

  it('keeps every write atomic and readable while checkpoints run beside it', async () => {
    const path = freshPath()
    const store = sqliteClientStore({ path })
    for (let i = 0; i < 200; i++) {
      await store.write([
        { type: 'put', key: 'pair/a', value: secret(`pair-${i}`, 40) },
        { type: 'put', key: 'pair/b', value: secret(`pair-${i}`, 40) },
        { type: 'put', key: `log/${String(i).padStart(4, '0')}`, value: secret(`log-${i}`, 40) },
        ...(i >= 3 ? [{ type: 'delete' as const, key: `log/${String(i - 3).padStart(4, '0')}` }] : [])
      ])
      expect(await store.get('pair/a')).toEqual(secret(`pair-${i}`, 40))
      expect(await store.get('pair/b')).toEqual(secret(`pair-${i}`, 40))
    }
    expect((await store.list('log/')).map((e) => e.key)).toEqual(['log/0197', 'log/0198', 'log/0199'])
    await flushSqliteClientStore(store)
    const raw = fileBytes(path)
    expect(contains(raw, secret('pair-198', 40))).toBe(false)
    expect(contains(raw, secret('log-196', 40))).toBe(false)
    expect(contains(raw, secret('log-197', 40))).toBe(true)
    await store.close()
  })

  it('flushSqliteClientStore() refuses (STORAGE_IO, checkpoint-busy) while another connection holds an old snapshot, then succeeds once it ends', async () => {
    const path = freshPath()
    const store = sqliteClientStore({ path, busyTimeoutMs: 50 })
    await store.write([{ type: 'put', key: 'k', value: secret('snapshot-old') }])
    await flushSqliteClientStore(store)
    const reader = new Database(path, { readonly: true })
    reader.exec('BEGIN')
    expect(reader.prepare('SELECT count(*) AS n FROM entries').get()).toEqual({ n: 1 })
    await store.write([{ type: 'put', key: 'k', value: secret('snapshot-new') }])
    await expect(flushSqliteClientStore(store)).rejects.toMatchObject({ code: 'STORAGE_IO', details: { reason: 'checkpoint-busy' } })
    expect(await store.get('k')).toEqual(secret('snapshot-new'))
    reader.exec('COMMIT')
    reader.close()
    await flushSqliteClientStore(store)
    expect(contains(fileBytes(path), secret('snapshot-old'))).toBe(false)
    await store.close()
  })

  it('after a process stopped without close(), the reopened store removes what the old WAL still held', async () => {
    const path = freshPath()
    await sqliteClientStore({ path }).close()
    // A writer that never checkpoints; its files, copied while it is open, are what a killed process leaves.
    const writer = new Database(path)
    writer.pragma('secure_delete = ON')
    writer.pragma('wal_autocheckpoint = 0')
    writer.prepare('INSERT INTO entries (key, value) VALUES (?, ?)').run(Buffer.from('k'), secret('left-in-wal'))
    writer.prepare('UPDATE entries SET value = ? WHERE key = ?').run(secret('after'), Buffer.from('k'))
    const killed = freshPath()
    copyFileSync(path, killed)
    copyFileSync(`${path}-wal`, `${killed}-wal`)
    writer.close()
    expect(contains(fileBytes(killed), secret('left-in-wal'))).toBe(true)
    const store = sqliteClientStore({ path: killed })
    expect(await store.get('k')).toEqual(secret('after'))
    await flushSqliteClientStore(store)
    const raw = fileBytes(killed)
    expect(contains(raw, secret('left-in-wal'))).toBe(false)
    expect(contains(raw, secret('after'))).toBe(true)
    await store.close()
  })

  it('falls back to truncating before each deleting write resolves when the worker cannot run', async () => {
    const path = freshPath()
    // A driver module that does not exist: the worker fails as it starts.
    const store = openClientStore({ path }, join(dir, 'no-such-driver.js'))
    await store.write([{ type: 'put', key: 'a', value: secret('fallback-0') }])
    await store.write([{ type: 'put', key: 'a', value: secret('fallback-1') }])
    // flush() sees the failed checkpoint and truncates on the store's own connection.
    await flushSqliteClientStore(store)
    expect(contains(fileBytes(path), secret('fallback-0'))).toBe(false)
    // From now on each deleting write truncates before it resolves, without flush().
    await store.write([{ type: 'put', key: 'a', value: secret('fallback-2') }])
    const raw = fileBytes(path)
    expect(contains(raw, secret('fallback-1'))).toBe(false)
    expect(contains(raw, secret('fallback-2'))).toBe(true)
    expect(await store.get('a')).toEqual(secret('fallback-2'))
    await store.close()
  })

  it('refuses an unknown secureDeletion mode with INVALID_ARGUMENT', () => {
    expect(() => sqliteClientStore({ path: freshPath(), secureDeletion: 'later' as never })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })

  it('refuses to flush a store it did not open (INVALID_ARGUMENT)', async () => {
    const stranger = { specificationVersion: 'v1' } as unknown as ClientStore
    await expect(flushSqliteClientStore(stranger)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })

  it('rejects flushSqliteClientStore() after close() with STORAGE_CLOSED', async () => {
    const store = sqliteClientStore({ path: freshPath() })
    await store.close()
    await expect(flushSqliteClientStore(store)).rejects.toMatchObject({ code: 'STORAGE_CLOSED' })
  })
})
