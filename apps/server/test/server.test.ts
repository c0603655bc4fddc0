import { afterEach, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { createMlsClient } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws'
import { parseConfig, startServer, jsonLogger } from '../src/index.js'
import { startServerProcess } from './harness.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'mls-server-'))
  dirs.push(d)
  return d
}

describe('configuration', () => {
  it('reads flags over environment variables over defaults', () => {
    const config = parseConfig(['--port', '9001', '--max-frame-bytes=4096', '--log-level', 'warn'], {
      MLS_PORT: '1234',
      MLS_HOST: '0.0.0.0',
      MLS_DATA_DIR: '/var/lib/mls',
      MLS_REQUESTS_PER_SECOND: '50'
    })
    expect(config).toMatchObject({ port: 9001, host: '0.0.0.0', dataDir: '/var/lib/mls', logLevel: 'warn', limits: { maxFrameBytes: 4096, requestsPerSecond: 50 } })
    expect(parseConfig([], {})).toMatchObject({ port: 8080, host: '127.0.0.1', logLevel: 'info', limits: {} })
  })

  it('reads the pre-login limits, the per-identity quotas and the public URLs', () => {
    const config = parseConfig(
      ['--max-unauthenticated-frame-bytes', '8192', '--max-buffered-bytes-per-identity', '1048576', '--groups-per-hour', '10', '--max-key-packages-per-client', '50'],
      { MLS_MAX_UNAUTHENTICATED_PER_ADDRESS: '4', MLS_GROUP_BURST: '5', MLS_PUBLIC_URL: 'wss://chat.example.com/, ws://10.0.0.2:8080/' }
    )
    expect(config).toMatchObject({
      limits: { maxUnauthenticatedFrameBytes: 8192, maxUnauthenticatedPerAddress: 4, maxBufferedBytesPerIdentity: 1048576 },
      quotas: { groupsPerHour: 10, groupBurst: 5, maxKeyPackagesPerClient: 50 },
      publicUrls: ['wss://chat.example.com/', 'ws://10.0.0.2:8080/']
    })
    expect(() => parseConfig(['--public-url', 'https://chat.example.com/'], {})).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
  })

  it('refuses unknown options and bad numbers with a typed error', () => {
    expect(() => parseConfig(['--nope'], {})).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
    expect(() => parseConfig(['--port', 'abc'], {})).toThrow(/non-negative integer/)
    expect(() => parseConfig(['--port'], {})).toThrow(/needs a value/)
    expect(() => parseConfig(['--log-level', 'loud'], {})).toThrow(/Unknown log level/)
    expect(parseConfig(['--sqlite-cache-mib', '2'], {}).sqliteCacheMib).toBe(2)
    expect(parseConfig([], { MLS_SQLITE_CACHE_MIB: '64' }).sqliteCacheMib).toBe(64)
    expect(parseConfig([], {}).sqliteCacheMib).toBeUndefined()
    expect(() => parseConfig(['--sqlite-cache-mib', '0'], {})).toThrow(/at least 1/)
  })

  it('takes a PostgreSQL store from --store or MLS_STORE, and refuses anything but a postgres:// URL', () => {
    expect(parseConfig(['--store', 'postgres://mls@127.0.0.1:5432/mls'], {}).store).toBe('postgres://mls@127.0.0.1:5432/mls')
    expect(parseConfig([], { MLS_STORE: 'postgresql://db/mls' }).store).toBe('postgresql://db/mls')
    expect(parseConfig([], {}).store).toBeUndefined()
    expect(() => parseConfig(['--store', 'mysql://db'], {})).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }))
    expect(() => parseConfig(['--store', '/var/lib/mls'], {})).toThrow(/postgres:\/\/ URL/)
  })
})

describe('the server', () => {
  it('answers GET /health and logs structured JSON lines', async () => {
    const lines: string[] = []
    const server = await startServer({ ...parseConfig(['--port', '0', '--data-dir', tempDir()], {}) }, jsonLogger('info', (l) => lines.push(l)))
    try {
      const res = await fetch(`http://127.0.0.1:${server.port}/health`)
      expect(res.status).toBe(200)
      expect(await res.json()).toMatchObject({ status: 'ok' })
      const started = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r.event === 'server:started')
      expect(started).toMatchObject({ level: 'info', port: server.port })
      expect(typeof started?.time).toBe('string')
    } finally {
      await server.close()
    }
    expect(existsSync(server.databasePath)).toBe(true)
  })

  it('shuts down gracefully on SIGTERM (exit 0) and serves the same identities after a restart', async () => {
    const dataDir = tempDir()
    const first = await startServerProcess(dataDir)
    const alice = await createMlsClient({
      userId: 'alice',
      deviceId: 'laptop',
      crypto: nodeCrypto(),
      store: memoryClientStore(),
      transport: webSockets({ url: first.url, WebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 200 } })
    })
    await alice.publishKeyPackages({ count: 3 })
    const exit = await first.kill('SIGTERM')
    expect(exit).toBe(0)
    expect(first.logs.map((l) => l.event)).toEqual(expect.arrayContaining(['signal:received', 'server:stopping', 'server:stopped']))
    const second = await startServerProcess(dataDir, first.port)
    try {
      // The client reconnects by itself and authenticates as the identity registered before the restart.
      await expect(alice.directory.countKeyPackages()).resolves.toEqual({ oneTime: 3, lastResort: true })
    } finally {
      await alice.close()
      await second.kill('SIGTERM')
    }
  })
})
