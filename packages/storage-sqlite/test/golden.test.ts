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
