import { afterAll, describe, expect, it, vi } from 'vitest'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { ServerStore } from '@mls/core/interfaces'
import { SQLITE_CLIENT_STORE_SCHEMA_VERSION, SQLITE_SERVER_STORE_SCHEMA_VERSION, flushSqliteClientStore, sqliteClientStore, sqliteServerStore } from '../src/index.js'
import { openDatabase } from '../src/database.js'
import { SERVER_SCHEMA } from '../src/server-schema.js'
import { fileBytes, removeDir, tempDir } from './helpers.js'

const dir = tempDir('unit')
afterAll(() => removeDir(dir))
let counter = 0
const freshPath = (): string => join(dir, `unit-${++counter}.db`)

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).includes(Buffer.from(needle))
}

const marked = (label: string, size = 64): Uint8Array => {
  const out = Buffer.alloc(size)
  out.write(`${label}|`.repeat(size), 'latin1')
  return new Uint8Array(out)
}

function rawPragma(path: string, pragma: string): unknown {
  const db = new Database(path)
  try {
    return db.pragma(pragma, { simple: true })
  } finally {
    db.close()
  }
}

describe('opening a database', () => {
  it('sets WAL, synchronous = FULL, secure_delete and foreign_keys, and stamps the schema', () => {
    const path = freshPath()
    const db = openDatabase({ path }, SERVER_SCHEMA)
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
    expect(db.pragma('synchronous', { simple: true })).toBe(2)
    expect(db.pragma('secure_delete', { simple: true })).toBe(1)
    expect(db.pragma('foreign_keys', { simple: true })).toBe(1)
    expect(db.pragma('temp_store', { simple: true })).toBe(2)
    expect(db.pragma('user_version', { simple: true })).toBe(SQLITE_SERVER_STORE_SCHEMA_VERSION)
    expect(db.pragma('application_id', { simple: true })).toBe(SERVER_SCHEMA.applicationId)
    db.close()
    const normal = openDatabase({ path, synchronous: 'normal' }, SERVER_SCHEMA)
    expect(normal.pragma('synchronous', { simple: true })).toBe(1)
    normal.close()
  })

  it('bounds the page cache: 16000 KiB by default, cacheSizeKib to change it; a bad value is refused before opening', () => {
    const path = freshPath()
    const db = openDatabase({ path }, SERVER_SCHEMA)
    expect(db.pragma('cache_size', { simple: true })).toBe(-16000)
    db.close()
    const small = openDatabase({ path, cacheSizeKib: 2048 }, SERVER_SCHEMA)
    expect(small.pragma('cache_size', { simple: true })).toBe(-2048)
    small.close()
    for (const cacheSizeKib of [0, -5, 1.5, Number.NaN]) {
      expect(() => openDatabase({ path: freshPath(), cacheSizeKib }, SERVER_SCHEMA)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
    }
  })

  it('stamps client stores with their own schema version', async () => {
    const path = freshPath()
    await sqliteClientStore({ path }).close()
    expect(rawPragma(path, 'user_version')).toBe(SQLITE_CLIENT_STORE_SCHEMA_VERSION)
  })

  it('refuses a database with a newer schema version (UNSUPPORTED_SPECIFICATION) and leaves it untouched', async () => {
    const path = freshPath()
    await sqliteServerStore({ path }).close()
    rawPragma(path, `user_version = ${SQLITE_SERVER_STORE_SCHEMA_VERSION + 1}`)
    expect(() => sqliteServerStore({ path })).toThrow(
      expect.objectContaining({ code: 'UNSUPPORTED_SPECIFICATION', name: 'StorageError', details: { schemaVersion: SQLITE_SERVER_STORE_SCHEMA_VERSION + 1, supportedVersion: SQLITE_SERVER_STORE_SCHEMA_VERSION } })
    )
    expect(rawPragma(path, 'user_version')).toBe(SQLITE_SERVER_STORE_SCHEMA_VERSION + 1)
  })

  it('migrates an empty file from version 0 and reopens a current one without migrating again', async () => {
    const path = freshPath()
    new Database(path).close()
    const store = sqliteServerStore({ path })
    await store.createGroup({ groupId: 'aa', epoch: 0n, lastSeq: 0, roster: [], access: [] })
    await store.close()
    const again = sqliteServerStore({ path })
    expect(await again.getGroup('aa')).toMatchObject({ epoch: 0n })
    await again.close()
  })

  it('migrates a version 1 file with a log to version 2: entries kept, proposals allowed, no public state for old groups', async () => {
    const path = freshPath()
    const v1 = openDatabase({ path }, { ...SERVER_SCHEMA, migrations: SERVER_SCHEMA.migrations.slice(0, 1) })
    v1.prepare("INSERT INTO groups (group_id, epoch, last_seq) VALUES ('aa', 0, 1)").run()
    v1.prepare("INSERT INTO log_entries (group_id, seq, kind, epoch, sender, message, digest) VALUES ('aa', 1, 'application', 0, 'a/b', x'01', 'd1')").run()
    v1.close()
    const store = sqliteServerStore({ path })
    expect((await store.readLog('aa', 0, 10)).map((r) => [r.seq, r.kind, r.digest])).toEqual([[1, 'application', 'd1']])
    expect(await store.getPublicState('aa')).toBeUndefined()
    const publicState = { epoch: 0n, state: new Uint8Array([1]), groupInfo: undefined }
    const entry = { kind: 'proposal' as const, epoch: 0n, sender: 'a/b', message: new Uint8Array([2]), digest: 'd2' }
    expect(await store.appendProposal('aa', { expectedEpoch: 0n, entry, publicState })).toEqual({ kind: 'accepted', seq: 2 })
    expect(await store.appendMessage('aa', { ...entry, kind: 'application', digest: 'd1' })).toEqual({ kind: 'duplicate' })
    await store.close()
  })

  it('refuses a file that holds another kind of store or foreign tables (INVALID_ARGUMENT)', async () => {
    const client = freshPath()
    await sqliteClientStore({ path: client }).close()
    expect(() => sqliteServerStore({ path: client })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
    const foreign = freshPath()
    const db = new Database(foreign)
    db.exec('CREATE TABLE something (x)')
    db.close()
    expect(() => sqliteClientStore({ path: foreign })).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })

  it('reports a file that is not a database as STORAGE_CORRUPT', () => {
    const path = freshPath()
    writeFileSync(path, Buffer.alloc(8192, 0x5a))
    expect(() => sqliteServerStore({ path })).toThrow(expect.objectContaining({ code: 'STORAGE_CORRUPT' }))
  })

  it('reports a path it cannot open as STORAGE_IO', () => {
    expect(() => sqliteServerStore({ path: join(dir, 'missing-folder', 'x.db') })).toThrow(expect.objectContaining({ code: 'STORAGE_IO' }))
  })
})

describe('errors', () => {
  it('wraps a SQLite failure as STORAGE_IO with the SQLite error as cause, and changes nothing', async () => {
    const path = freshPath()
    const store = sqliteServerStore({ path, busyTimeoutMs: 20 })
    await store.createGroup({ groupId: 'aa', epoch: 0n, lastSeq: 0, roster: [{ leafIndex: 0, clientId: 'a/b' }], access: [] })
    const other = new Database(path)
    other.exec('BEGIN IMMEDIATE')
    const entry = { kind: 'application' as const, epoch: 0n, sender: 'a/b', message: new Uint8Array([1]), digest: 'd1' }
    const error = await store.appendMessage('aa', entry).then(
      () => undefined,
      (e: unknown) => e
    )
    expect(error).toMatchObject({ name: 'StorageError', code: 'STORAGE_IO', details: { sqliteCode: 'SQLITE_BUSY' } })
    expect((error as Error).cause).toBeInstanceOf(Database.SqliteError)
    other.exec('ROLLBACK')
    other.close()
    expect(await store.readLog('aa', 0, 10)).toEqual([])
    expect(await store.appendMessage('aa', entry)).toEqual({ kind: 'accepted', seq: 1 })
    await store.close()
  })

  it('rejects an invalid commit without applying any of it', async () => {
    const store = sqliteServerStore({ path: ':memory:' })
    await store.createGroup({ groupId: 'aa', epoch: 0n, lastSeq: 0, roster: [{ leafIndex: 0, clientId: 'a/b' }], access: [] })
    const commit = {
      expectedEpoch: 0n,
      entry: { kind: 'commit' as const, epoch: 0n, sender: 'a/b', message: new Uint8Array([1]), digest: 'c' },
      roster: [],
      access: [],
      welcomes: [
        { clientId: 'b/c', welcome: new Uint8Array([2]) },
        { clientId: 'c/d', welcome: 'not bytes' as unknown as Uint8Array }
      ]
    }
    await expect(store.appendCommit('aa', commit)).rejects.toMatchObject({ code: 'STORAGE_IO' })
    expect(await store.getGroup('aa')).toEqual({ groupId: 'aa', epoch: 0n, lastSeq: 0, roster: [{ leafIndex: 0, clientId: 'a/b' }], access: [] })
    expect(await store.readWelcomes('b/c', 0, 10)).toEqual([])
    await expect(store.appendCommit('aa', { ...commit, expectedEpoch: 1n << 63n })).rejects.toMatchObject({ code: 'STORAGE_IO' })
    await store.close()
  })

  it('keeps epochs up to 2^63 - 1 exactly', async () => {
    const store = sqliteServerStore({ path: ':memory:' })
    const big = (1n << 63n) - 2n
    await store.createGroup({ groupId: 'aa', epoch: big, lastSeq: 0, roster: [], access: [] })
    const entry = { kind: 'commit' as const, epoch: big, sender: 'a/b', message: new Uint8Array([1]), digest: 'c' }
    expect(await store.appendCommit('aa', { expectedEpoch: big, entry, roster: [], access: [], welcomes: [] })).toMatchObject({ kind: 'accepted' })
    expect((await store.getGroup('aa'))?.epoch).toBe(big + 1n)
    expect((await store.readLog('aa', 0, 1))[0]?.epoch).toBe(big)
    const next = { ...entry, epoch: big + 1n, digest: 'd' }
    await expect(store.appendCommit('aa', { expectedEpoch: big + 1n, entry: next, roster: [], access: [], welcomes: [] })).rejects.toMatchObject({
      code: 'STORAGE_IO'
    })
    await store.close()
  })
})

describe('secure deletion on disk', () => {
  const kp = (ref: string, notAfter = Number.MAX_SAFE_INTEGER) => ({ ref, clientId: 'a/b', keyPackage: marked(`kp:${ref}`), lastResort: false, notAfter })

  it('overwrites expired KeyPackages dropped by a consume, in the main file and the WAL', async () => {
    const path = freshPath()
    const store: ServerStore = sqliteServerStore({ path })
    await store.addKeyPackages('a/b', [kp('old', 10), kp('fresh')], undefined)
    expect(contains(fileBytes(path), marked('kp:old'))).toBe(true)
    expect((await store.consumeKeyPackage('a/b', 100))?.ref).toBe('fresh')
    const raw = fileBytes(path)
    expect(contains(raw, marked('kp:old'))).toBe(false)
    expect(contains(raw, marked('kp:fresh'))).toBe(false)
    await store.close()
  })

  it.each(['immediate', 'background'] as const)('overwrites a large client value spread over overflow pages (secureDeletion %s)', async (secureDeletion) => {
    const path = freshPath()
    const store = sqliteClientStore({ path, secureDeletion })
    const big = marked('big-secret', 100_000)
    await store.write([
      { type: 'put', key: 'state', value: big },
      { type: 'put', key: 'other', value: marked('keep') }
    ])
    expect(contains(fileBytes(path), marked('big-secret', 64))).toBe(true)
    await store.write([{ type: 'put', key: 'state', value: marked('small') }])
    // immediate: gone when write resolves; background: once flush() resolves.
    if (secureDeletion === 'background') await flushSqliteClientStore(store)
    expect(contains(fileBytes(path), marked('big-secret', 64))).toBe(false)
    expect(contains(fileBytes(path), marked('keep'))).toBe(true)
    await store.close()
  })
})

describe('client store durability', () => {
  /** The connection's `synchronous` level each time a write transaction starts (2 = FULL syncs the WAL, 1 = NORMAL does not). */
  function recordSyncLevels(): { levels: unknown[]; restore(): void } {
    const levels: unknown[] = []
    const original = Database.prototype.transaction
    const spy = vi.spyOn(Database.prototype, 'transaction').mockImplementation(function (this: Database.Database, fn) {
      const level = (): unknown => this.pragma('synchronous', { simple: true })
      return original.call(this, (...args: unknown[]) => {
        levels.push(level())
        return fn(...args)
      })
    })
    return { levels, restore: () => spy.mockRestore() }
  }

  it("commits relaxed writes without syncing the WAL and strict ones with it, under synchronous 'full'", async () => {
    const store = sqliteClientStore({ path: freshPath() })
    const recorded = recordSyncLevels()
    try {
      await store.write([{ type: 'put', key: 'a', value: marked('a') }])
      await store.write([{ type: 'put', key: 'b', value: marked('b') }], { durability: 'relaxed' })
      await store.write([{ type: 'put', key: 'c', value: marked('c') }], { durability: 'relaxed' })
      await store.write([{ type: 'put', key: 'd', value: marked('d') }], { durability: 'strict' })
      await store.write([{ type: 'put', key: 'e', value: marked('e') }], { durability: 'relaxed' })
    } finally {
      recorded.restore()
    }
    expect(recorded.levels).toEqual([2, 1, 1, 2, 1])
    expect((await store.list('')).map((e) => e.key)).toEqual(['a', 'b', 'c', 'd', 'e'])
    await store.close()
  })

  it("never syncs more than asked: under synchronous 'normal' every write commits at NORMAL", async () => {
    const store = sqliteClientStore({ path: freshPath(), synchronous: 'normal' })
    const recorded = recordSyncLevels()
    try {
      await store.write([{ type: 'put', key: 'a', value: marked('a') }], { durability: 'relaxed' })
      await store.write([{ type: 'put', key: 'b', value: marked('b') }])
    } finally {
      recorded.restore()
    }
    expect(recorded.levels).toEqual([1, 1])
    await store.close()
  })
})

describe('client store keys', () => {
  it('lists prefixes that end in the highest code points, and refuses lone surrogates', async () => {
    const store = sqliteClientStore({ path: ':memory:' })
    const keys = ['p\u{10FFFF}', 'p\u{10FFFF}a', 'p\u{10FFFE}', 'q', '\u{10FFFF}', '\u{10FFFF}\u{10FFFF}']
    await store.write(keys.map((key) => ({ type: 'put' as const, key, value: new Uint8Array([1]) })))
    expect((await store.list('p\u{10FFFF}')).map((e) => e.key)).toEqual(['p\u{10FFFF}', 'p\u{10FFFF}a'])
    expect((await store.list('\u{10FFFF}')).map((e) => e.key)).toEqual(['\u{10FFFF}', '\u{10FFFF}\u{10FFFF}'])
    expect((await store.list('p')).map((e) => e.key)).toEqual(['p\u{10FFFE}', 'p\u{10FFFF}', 'p\u{10FFFF}a'])
    await expect(store.write([{ type: 'put', key: 'bad\ud800', value: new Uint8Array([1]) }])).rejects.toMatchObject({ code: 'STORAGE_IO' })
    await store.close()
  })
})
