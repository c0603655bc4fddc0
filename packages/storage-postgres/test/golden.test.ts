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
