import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import pg from 'pg'
import { POSTGRES_SERVER_STORE_SCHEMA_VERSION, openPostgresServerStore } from '../src/index.js'
import { checkServerFixture, writeServerFixture } from '../../storage-sqlite/test/golden-fixture.js'
import { startCluster, type Cluster } from './cluster.js'

/**
 * Golden dumps: `pg_dump` of a store written by the release that introduced
 * each schema version (test/golden/server-store-v<N>.sql). Every later
 * release must open a database restored from them (migrating if its schema is
 * newer) and read back exactly the fixture. `MLS_WRITE_GOLDEN=1` writes the
 * dump for the current version instead: once per new schema version.
 */
const GOLDEN = fileURLToPath(new URL('./golden/', import.meta.url))
const WRITE = process.env.MLS_WRITE_GOLDEN === '1'
const file = (version: number): string => join(GOLDEN, `server-store-v${version}.sql`)

let cluster: Cluster
beforeAll(async () => {
  cluster = await startCluster()
}, 16 * 60_000)
afterAll(() => cluster?.stop())

const versions = Array.from({ length: POSTGRES_SERVER_STORE_SCHEMA_VERSION }, (_, i) => i + 1).filter((v) => WRITE || existsSync(file(v)))

describe('PostgreSQL golden dumps', () => {
  it(`has a golden dump for the current schema version (v${POSTGRES_SERVER_STORE_SCHEMA_VERSION})`, async () => {
    if (WRITE) {
      const url = cluster.createDatabase('golden_write')
      const store = await openPostgresServerStore({ connectionString: url, schema: 'mls' })
      await writeServerFixture(store)
      await store.close()
      writeFileSync(file(POSTGRES_SERVER_STORE_SCHEMA_VERSION), cluster.dump(url, 'mls'))
    }
    expect(existsSync(file(POSTGRES_SERVER_STORE_SCHEMA_VERSION))).toBe(true)
  })

  for (const version of versions) {
    it(`opens a database restored from the v${version} dump and reads back the fixture`, async () => {
      const url = cluster.createDatabase(`golden_v${version}_${process.pid}`)
      cluster.runScript(url, readFileSync(file(version), 'utf8'))
      const raw = new pg.Client({ connectionString: url })
      await raw.connect()
      expect((await raw.query('SELECT kind, version FROM mls.store_format')).rows).toEqual([{ kind: 'mls server store', version }])
      const store = await openPostgresServerStore({ connectionString: url, schema: 'mls' })
      try {
        await checkServerFixture(store, version)
      } finally {
        await store.close()
      }
      expect((await raw.query('SELECT version FROM mls.store_format')).rows).toEqual([{ version: POSTGRES_SERVER_STORE_SCHEMA_VERSION }])
      await raw.end()
    })
  }

  it('moves v4 Welcome rows to one shared copy per commit and distinct bytes, keeping every mailbox and its seqs', async () => {
    const url = cluster.createDatabase(`golden_v4_shared_${process.pid}`)
    cluster.runScript(url, readFileSync(file(4), 'utf8'))
    const raw = new pg.Client({ connectionString: url })
    await raw.connect()
    // The v4 layout held one copy per recipient: add two more recipients of commit 1 (carol's bytes equal bob's, dave's differ)
    // and a second Welcome for carol from another commit with the same bytes (a different commit: its own copy).
    const bob = (await raw.query<{ welcome: Buffer }>("SELECT welcome FROM mls.welcomes WHERE client_id = 'bob/laptop'")).rows[0]?.welcome as Buffer
    const dave = Buffer.alloc(300, 7)
    await raw.query(
      `INSERT INTO mls.welcomes (client_id, seq, group_id, welcome, commit_seq) VALUES
         ('carol/tablet', 1, 'aa01', $1, 1), ('dave/phone', 1, 'aa01', $2, 1), ('carol/tablet', 2, 'aa01', $1, 3)`,
      [bob, dave]
    )
    await raw.query("INSERT INTO mls.mailbox_heads (client_id, last_seq) VALUES ('carol/tablet', 2), ('dave/phone', 1)")
    const store = await openPostgresServerStore({ connectionString: url, schema: 'mls' })
    const copies = async (): Promise<number> => Number((await raw.query<{ n: string }>('SELECT count(*) AS n FROM mls.welcome_messages')).rows[0]?.n)
    try {
      const welcome = new Uint8Array(bob)
      expect(await store.readWelcomes('bob/laptop', 0, 10)).toEqual([{ seq: 1, groupId: 'aa01', welcome, commitSeq: 1 }])
      expect(await store.readWelcomes('carol/tablet', 0, 10)).toEqual([
        { seq: 1, groupId: 'aa01', welcome, commitSeq: 1 },
        { seq: 2, groupId: 'aa01', welcome, commitSeq: 3 }
      ])
      expect(await store.readWelcomes('dave/phone', 0, 10)).toEqual([{ seq: 1, groupId: 'aa01', welcome: new Uint8Array(dave), commitSeq: 1 }])
      expect(await copies()).toBe(3)
      // Bob's row goes, carol's first row still refers to the shared copy; then carol's goes too and the copy with it.
      expect(await store.pruneWelcomes({ appendedBeforeMs: 0, keepWelcomes: 1 })).toEqual({ deleted: 1 })
      expect(await copies()).toBe(3)
      expect(await store.pruneWelcomes({ appendedBeforeMs: 0, keepWelcomes: 0 })).toEqual({ deleted: 3 })
      expect(await copies()).toBe(0)
    } finally {
      await store.close()
      await raw.end()
    }
  })

  it('refuses a schema written by a newer release with UNSUPPORTED_SPECIFICATION, and one holding other tables with STORAGE_CORRUPT', async () => {
    const url = cluster.createDatabase(`golden_newer_${process.pid}`)
    const store = await openPostgresServerStore({ connectionString: url, schema: 'mls' })
    await store.close()
    const raw = new pg.Client({ connectionString: url })
    await raw.connect()
    await raw.query('UPDATE mls.store_format SET version = version + 1')
    await raw.query('CREATE SCHEMA other; CREATE TABLE other.things (id int)')
    await raw.end()
    await expect(openPostgresServerStore({ connectionString: url, schema: 'mls' })).rejects.toMatchObject({
      code: 'UNSUPPORTED_SPECIFICATION',
      details: { schemaVersion: POSTGRES_SERVER_STORE_SCHEMA_VERSION + 1, supportedVersion: POSTGRES_SERVER_STORE_SCHEMA_VERSION }
    })
    await expect(openPostgresServerStore({ connectionString: url, schema: 'other' })).rejects.toMatchObject({ code: 'STORAGE_CORRUPT' })
  })
})
