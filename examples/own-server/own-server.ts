// A server of your own on SQLite: the Directory and the Group Channel over
// WebSocket, state in a SQLite file. It then runs two clients against itself,
// one message each way, and shuts everything down.
//
//   node dist/own-server/own-server.js [data-dir]
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { createMlsClient } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { createServices } from '@mls/server'
import { memoryClientStore } from '@mls/storage-memory'
import { sqliteServerStore } from '@mls/storage-sqlite'
import { webSockets } from '@mls/transport-ws'
import { webSocketServer } from '@mls/transport-ws/server'

const dataDir = process.argv[2] ?? mkdtempSync(join(tmpdir(), 'mls-own-server-'))

// The server: any ServerStore (here SQLite) under createServices, hosted on WebSocket.
const store = sqliteServerStore({ path: join(dataDir, 'server.sqlite') })
const services = createServices({ store, crypto: nodeCrypto() })
const server = await webSocketServer({ services, host: '127.0.0.1', port: 0 }) // 0: any free port
console.log(`server: listening on ${server.url}`)

// Two clients of it.
const client = (userId: string) =>
  createMlsClient({
    userId,
    deviceId: 'laptop',
    crypto: nodeCrypto(),
    store: memoryClientStore(),
    transport: webSockets({ url: server.url, WebSocket })
  })
const alice = await client('alice')
const bob = await client('bob')
await bob.publishKeyPackages()

const group = await alice.createGroup()
const joined = bob.once('group:joined')
await alice.addUsers(group, ['bob'])
const bobsGroup = (await joined).group
const received = new Promise<string>((resolve) =>
  bobsGroup.on('message:received', (m) => resolve(new TextDecoder().decode(m.plaintext)))
)
await group.send('hello from alice')
console.log(`bob <- ${await received}`)

await alice.close()
await bob.close()
await server.close()
await store.close()
if (process.argv[2] === undefined) rmSync(dataDir, { recursive: true, force: true })
console.log('server: stopped')
