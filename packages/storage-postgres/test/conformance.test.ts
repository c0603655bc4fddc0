import { afterAll, beforeAll } from 'vitest'
import pg from 'pg'
import type { ServerStore } from '@mls/core/interfaces'
import { serverStoreConformanceSuite } from '@mls/conformance/storage'
import { openPostgresServerStore } from '../src/index.js'
import { startCluster, type Cluster } from './cluster.js'

let cluster: Cluster
beforeAll(async () => {
  cluster = await startCluster()
}, 16 * 60_000)
afterAll(() => cluster?.stop())

let counter = 0
const schemas = new WeakMap<object, string>()

async function open(schema: string): Promise<ServerStore> {
  const store = await openPostgresServerStore({ connectionString: cluster.url, schema, maxConnections: 12 })
  schemas.set(store, schema)
  return store
}

serverStoreConformanceSuite<ServerStore>({
  name: 'openPostgresServerStore',
  // A fresh schema per test: an empty store in the shared throwaway cluster.
  setup: () => open(`conformance_${process.pid}_${++counter}`),
  teardown: (store) => store.close(),
  reopen: async (store) => {
    await store.close()
    const schema = schemas.get(store)
    if (schema === undefined) throw new Error('unknown store')
    return open(schema)
  },
  // A separate connection counts the stored Welcome copies.
  storedWelcomes: async (store) => {
    const schema = schemas.get(store)
    if (schema === undefined) throw new Error('unknown store')
    const raw = new pg.Client({ connectionString: cluster.url })
    await raw.connect()
    try {
      return Number((await raw.query<{ n: string }>(`SELECT count(*) AS n FROM ${schema}.welcome_messages`)).rows[0]?.n)
    } finally {
      await raw.end()
    }
  }
})
