import { copyFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { SQLITE_CLIENT_STORE_SCHEMA_VERSION, SQLITE_SERVER_STORE_SCHEMA_VERSION, sqliteClientStore, sqliteServerStore } from '../src/index.js'
import { checkClientFixture, checkServerFixture, writeClientFixture, writeServerFixture } from './golden-fixture.js'
import { removeDir, tempDir } from './helpers.js'

/**
 * Golden files: stores written by the release that introduced each schema
 * version (test/golden/*-v<N>.sqlite). Every later release must open them
 * (migrating if its schema is newer) and read back exactly the fixture.
 * `MLS_WRITE_GOLDEN=1` writes the files for the current version instead of
 * checking them: do that once per new schema version, never to make a test pass.
 */
const GOLDEN = fileURLToPath(new URL('./golden/', import.meta.url))
const WRITE = process.env.MLS_WRITE_GOLDEN === '1'
const dir = tempDir('golden')
afterAll(() => removeDir(dir))

const versions = (kind: 'client' | 'server', current: number): number[] =>
  Array.from({ length: current }, (_, i) => i + 1).filter((v) => WRITE || existsSync(join(GOLDEN, `${kind}-store-v${v}.sqlite`)))

describe('SQLite golden files', () => {
  it(`has a golden file for the current schema versions (client v${SQLITE_CLIENT_STORE_SCHEMA_VERSION}, server v${SQLITE_SERVER_STORE_SCHEMA_VERSION})`, async () => {
    if (WRITE) {
      const client = sqliteClientStore({ path: join(GOLDEN, `client-store-v${SQLITE_CLIENT_STORE_SCHEMA_VERSION}.sqlite`) })
      await writeClientFixture(client)
      await client.close()
      const server = sqliteServerStore({ path: join(GOLDEN, `server-store-v${SQLITE_SERVER_STORE_SCHEMA_VERSION}.sqlite`) })
      await writeServerFixture(server)
      await server.close()
    }
    expect(existsSync(join(GOLDEN, `client-store-v${SQLITE_CLIENT_STORE_SCHEMA_VERSION}.sqlite`))).toBe(true)
    expect(existsSync(join(GOLDEN, `server-store-v${SQLITE_SERVER_STORE_SCHEMA_VERSION}.sqlite`))).toBe(true)
  })

  for (const version of versions('client', SQLITE_CLIENT_STORE_SCHEMA_VERSION)) {
    it(`opens the client store written at schema v${version} and reads back the fixture`, async () => {
      const path = join(dir, `client-v${version}.sqlite`)
      copyFileSync(join(GOLDEN, `client-store-v${version}.sqlite`), path)
      const raw = new Database(path, { readonly: true })
      expect(raw.pragma('user_version', { simple: true })).toBe(version)
      raw.close()
      const store = sqliteClientStore({ path })
      try {
        await checkClientFixture(store)
      } finally {
        await store.close()
      }
      const after = new Database(path, { readonly: true })
      expect(after.pragma('user_version', { simple: true })).toBe(SQLITE_CLIENT_STORE_SCHEMA_VERSION)
      after.close()
    })
  }

  it('moves v4 Welcome rows to one shared copy per commit and distinct bytes, keeping every mailbox and its seqs', async () => {
    const path = join(dir, 'server-v4-shared.sqlite')
    copyFileSync(join(GOLDEN, 'server-store-v4.sqlite'), path)
    // The v4 layout held one copy per recipient: add two more recipients of commit 1 (carol's bytes equal bob's, dave's differ)
    // and a second Welcome for carol from another commit with the same bytes (a different commit: its own copy).
    const raw = new Database(path)
    const bob = (raw.prepare("SELECT welcome FROM welcomes WHERE client_id = 'bob/laptop'").get() as { welcome: Buffer }).welcome
    const dave = Buffer.alloc(300, 7)
    const insert = raw.prepare('INSERT INTO welcomes (client_id, seq, group_id, welcome, commit_seq) VALUES (?, ?, ?, ?, ?)')
    insert.run('carol/tablet', 1, 'aa01', bob, 1)
    insert.run('dave/phone', 1, 'aa01', dave, 1)
    insert.run('carol/tablet', 2, 'aa01', bob, 3)
    expect((raw.prepare('SELECT count(*) AS n FROM welcomes').get() as { n: number }).n).toBe(4)
    raw.close()
    const store = sqliteServerStore({ path })
    try {
      const welcome = new Uint8Array(bob)
      expect(await store.readWelcomes('bob/laptop', 0, 10)).toEqual([{ seq: 1, groupId: 'aa01', welcome, commitSeq: 1 }])
      expect(await store.readWelcomes('carol/tablet', 0, 10)).toEqual([
        { seq: 1, groupId: 'aa01', welcome, commitSeq: 1 },
        { seq: 2, groupId: 'aa01', welcome, commitSeq: 3 }
      ])
      expect(await store.readWelcomes('dave/phone', 0, 10)).toEqual([{ seq: 1, groupId: 'aa01', welcome: new Uint8Array(dave), commitSeq: 1 }])
      const copies = (): number => {
        const check = new Database(path, { readonly: true })
        try {
          return (check.prepare('SELECT count(*) AS n FROM welcome_messages').get() as { n: number }).n
        } finally {
          check.close()
        }
      }
      expect(copies()).toBe(3)
      // Bob's row goes, carol's first row still refers to the shared copy; then carol's goes too and the copy with it.
      expect(await store.pruneWelcomes({ appendedBeforeMs: 0, keepWelcomes: 1 })).toEqual({ deleted: 1 })
      expect(copies()).toBe(3)
      expect(await store.pruneWelcomes({ appendedBeforeMs: 0, keepWelcomes: 0 })).toEqual({ deleted: 3 })
      expect(copies()).toBe(0)
    } finally {
      await store.close()
    }
    const after = new Database(path, { readonly: true })
    expect(after.pragma('user_version', { simple: true })).toBe(SQLITE_SERVER_STORE_SCHEMA_VERSION)
    expect(after.prepare('SELECT client_id, last_seq FROM welcome_mailboxes ORDER BY client_id').all()).toEqual([
      { client_id: 'bob/laptop', last_seq: 1 },
      { client_id: 'carol/tablet', last_seq: 2 },
      { client_id: 'dave/phone', last_seq: 1 }
    ])
    after.close()
  })

  for (const version of versions('server', SQLITE_SERVER_STORE_SCHEMA_VERSION)) {
    it(`opens the server store written at schema v${version} and reads back the fixture`, async () => {
      const path = join(dir, `server-v${version}.sqlite`)
      copyFileSync(join(GOLDEN, `server-store-v${version}.sqlite`), path)
      const store = sqliteServerStore({ path })
      try {
        await checkServerFixture(store, version)
      } finally {
        await store.close()
      }
    })
  }
})
