import { afterAll } from 'vitest'
import { join } from 'node:path'
import type { ClientStore, ServerStore } from '@mls/core/interfaces'
import { clientStoreConformanceSuite, serverStoreConformanceSuite } from '@mls/conformance/storage'
import { sqliteClientStore, sqliteServerStore } from '../src/index.js'
import { fileBytes, removeDir, tempDir } from './helpers.js'

const dir = tempDir('conformance')
afterAll(() => removeDir(dir))

let counter = 0
const paths = new WeakMap<object, string>()

/** A file-backed store whose path the hooks can find again. */
function onDisk<S extends object>(open: (path: string) => S): { setup(): Promise<S>; reopen(store: S & { close(): Promise<void> }): Promise<S>; rawBytes(store: S): Promise<Uint8Array> } {
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
    // The store checkpoints and truncates the WAL itself before a deleting call resolves: read the files as they are.
    rawBytes: async (store) => fileBytes(pathOf(store))
  }
}

const serverFiles = onDisk<ServerStore>((path) => sqliteServerStore({ path }))
serverStoreConformanceSuite<ServerStore>({
  name: 'sqliteServerStore (file)',
  setup: serverFiles.setup,
  teardown: (store) => store.close(),
  reopen: serverFiles.reopen,
  rawBytes: serverFiles.rawBytes
})

serverStoreConformanceSuite<ServerStore>({
  name: 'sqliteServerStore (:memory:)',
  setup: async () => sqliteServerStore({ path: ':memory:' }),
  teardown: (store) => store.close()
})

const clientFiles = onDisk<ClientStore>((path) => sqliteClientStore({ path }))
clientStoreConformanceSuite<ClientStore>({
  name: 'sqliteClientStore (file)',
  setup: clientFiles.setup,
  teardown: (store) => store.close(),
  reopen: clientFiles.reopen,
  rawBytes: clientFiles.rawBytes
})

clientStoreConformanceSuite<ClientStore>({
  name: 'sqliteClientStore (:memory:)',
  setup: async () => sqliteClientStore({ path: ':memory:' }),
  teardown: (store) => store.close()
})
