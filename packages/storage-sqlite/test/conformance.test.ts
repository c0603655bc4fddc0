import { afterAll } from 'vitest'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { ClientStore, ServerStore } from '@mls/core/interfaces'
import { clientStoreConformanceSuite, serverStoreConformanceSuite } from '@mls/conformance/storage'
import { flushSqliteClientStore, sqliteClientStore, sqliteServerStore } from '../src/index.js'
import { fileBytes, removeDir, tempDir } from './helpers.js'

const dir = tempDir('conformance')
afterAll(() => removeDir(dir))

let counter = 0
const paths = new WeakMap<object, string>()

/** A file-backed store whose path the hooks can find again. */
function onDisk<S extends object>(
  open: (path: string) => S
): { setup(): Promise<S>; reopen(store: S & { close(): Promise<void> }): Promise<S>; rawBytes(store: S): Promise<Uint8Array>; pathOf(store: S): string } {
  const track = (path: string): S => {
    const store = open(path)
    paths.set(store, path)
    return store
  }
  const pathOf = (store: S): string => {
    const path = paths.get(store)
    if (path === undefined) throw new Error('Unknown store')
    return path
  }
  return {
    setup: async () => track(join(dir, `store-${++counter}.db`)),
    reopen: async (store) => {
      await store.close()
      return track(pathOf(store))
    },
    // Read the files as they are (the client store's default mode flushes first, below).
    rawBytes: async (store) => fileBytes(pathOf(store)),
    pathOf
  }
}

const serverFiles = onDisk<ServerStore>((path) => sqliteServerStore({ path }))
serverStoreConformanceSuite<ServerStore>({
  name: 'sqliteServerStore (file)',
  setup: serverFiles.setup,
  teardown: (store) => store.close(),
  reopen: serverFiles.reopen,
  rawBytes: serverFiles.rawBytes,
  // A second connection to the file counts the stored Welcome copies.
  storedWelcomes: async (store) => {
    const raw = new Database(serverFiles.pathOf(store), { fileMustExist: true })
    try {
      return (raw.prepare('SELECT count(*) AS n FROM welcome_messages').get() as { n: number }).n
    } finally {
      raw.close()
    }
  }
})

serverStoreConformanceSuite<ServerStore>({
  name: 'sqliteServerStore (:memory:)',
  setup: async () => sqliteServerStore({ path: ':memory:' }),
  teardown: (store) => store.close()
})

// Default (secureDeletion 'background'): deleted values are gone once flush() resolves.
const clientFiles = onDisk<ClientStore>((path) => sqliteClientStore({ path }))
clientStoreConformanceSuite<ClientStore>({
  name: 'sqliteClientStore (file)',
  setup: clientFiles.setup,
  teardown: (store) => store.close(),
  reopen: clientFiles.reopen,
  rawBytes: async (store) => {
    await flushSqliteClientStore(store)
    return clientFiles.rawBytes(store)
  }
})

// secureDeletion 'immediate': gone when the deleting write resolves, no flush().
const immediateClientFiles = onDisk<ClientStore>((path) => sqliteClientStore({ path, secureDeletion: 'immediate' }))
clientStoreConformanceSuite<ClientStore>({
  name: 'sqliteClientStore (file, secureDeletion immediate)',
  setup: immediateClientFiles.setup,
  teardown: (store) => store.close(),
  reopen: immediateClientFiles.reopen,
  rawBytes: immediateClientFiles.rawBytes
})

clientStoreConformanceSuite<ClientStore>({
  name: 'sqliteClientStore (:memory:)',
  setup: async () => sqliteClientStore({ path: ':memory:' }),
  teardown: (store) => store.close()
})
