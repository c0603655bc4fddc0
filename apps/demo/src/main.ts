#!/usr/bin/env node
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { startServer, parseConfig, jsonLogger } from '@mls/app-server'
import { nodeCrypto } from '@mls/crypto-node'
import { webSockets } from '@mls/transport-ws'
import { runDemo } from './demo.js'

// An embedded server on a free loopback port, with a temporary SQLite file.
const dataDir = mkdtempSync(join(tmpdir(), 'mls-demo-'))
const server = await startServer(parseConfig(['--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir], {}), jsonLogger('warn'))
let ok = false
try {
  const result = await runDemo({
    // Each client opens its own WebSocket connection to the server.
    transport: () => webSockets({ url: server.url, WebSocket }),
    crypto: nodeCrypto(),
    transportName: `WebSockets to ${server.url} (SQLite at ${server.databasePath})`
  })
  ok = result.ok
} catch (error) {
  console.error('demo failed:', error)
} finally {
  await server.close()
  rmSync(dataDir, { recursive: true, force: true })
}
process.exit(ok ? 0 : 1)
