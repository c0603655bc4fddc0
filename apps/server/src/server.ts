import { mkdirSync, readFileSync } from 'node:fs'
import { createPublicKey } from 'node:crypto'
import { join } from 'node:path'
import type { ServerStore } from '@mls/core/interfaces'
import { nodeCrypto } from '@mls/crypto-node'
import { createServices, jwtAuthentication } from '@mls/server'
import { sqliteServerStore } from '@mls/storage-sqlite'
import { webSocketServer, type WebSocketServerStats } from '@mls/transport-ws/server'
import type { ServerConfig } from './config.js'
import { jsonLogger, type Logger } from './logger.js'

export interface RunningServer {
  readonly url: string
  readonly port: number
  readonly databasePath: string
  stats(): WebSocketServerStats
  /** Stop accepting, close every connection, let in-flight writes finish, close the database. Idempotent. */
  close(): Promise<void>
}

/** Wrap a store so shutdown can wait for the calls in flight. */
function trackInFlight(store: ServerStore): { store: ServerStore; idle(): Promise<void> } {
  let inFlight = 0
  let waiters: (() => void)[] = []
  const done = () => {
    inFlight--
    if (inFlight === 0) {
      for (const w of waiters) w()
      waiters = []
    }
  }
  const tracked = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown
      if (typeof value !== 'function' || prop === 'close') return typeof value === 'function' ? value.bind(target) : value
      return (...args: unknown[]) => {
        inFlight++
        try {
          const result = (value as (...a: unknown[]) => unknown).apply(target, args)
          return Promise.resolve(result).finally(done)
        } catch (error) {
          done()
          throw error
        }
      }
    }
  })
  return { store: tracked, idle: () => (inFlight === 0 ? Promise.resolve() : new Promise((r) => waiters.push(r))) }
}

/** Start the Directory and Group Channel on WebSocket, with state in `dataDir/server.sqlite`. */
export async function startServer(config: ServerConfig, logger: Logger = jsonLogger(config.logLevel)): Promise<RunningServer> {
  mkdirSync(config.dataDir, { recursive: true })
  const databasePath = join(config.dataDir, 'server.sqlite')
  const sqlite = sqliteServerStore({ path: databasePath })
  const { store, idle } = trackInFlight(sqlite)
  const crypto = nodeCrypto()
  const serviceLimits = {
    ...(config.keyPackageFetchesPerMinute === undefined ? {} : { fetchesPerMinute: config.keyPackageFetchesPerMinute }),
    ...(config.registrationsPerHour === undefined ? {} : { registrationsPerHour: config.registrationsPerHour })
  }
  const jwt = config.jwt
  const services = createServices({
    store,
    crypto,
    limits: serviceLimits,
    ...(jwt === undefined
      ? {}
      : {
          authentication: jwtAuthentication({
            key: createPublicKey(readFileSync(jwt.publicKeyPath)),
            algorithms: [jwt.algorithm],
            ...(jwt.issuer === undefined ? {} : { issuer: jwt.issuer }),
            ...(jwt.audience === undefined ? {} : { audience: jwt.audience })
          })
        })
  })
  const limits = Object.fromEntries(Object.entries(config.limits).filter(([, v]) => v !== undefined))
  const ws = await webSocketServer({ services, host: config.host, port: config.port, limits, logger })
  logger.info('server:started', { url: ws.url, host: ws.host, port: ws.port, database: databasePath, crypto: crypto.name, authentication: jwt === undefined ? 'first-claim' : 'jwt' })
  let closing: Promise<void> | undefined
  return {
    url: ws.url,
    port: ws.port,
    databasePath,
    stats: () => ws.stats(),
    close: () => {
      closing ??= (async () => {
        logger.info('server:stopping', {})
        await ws.close()
        await idle()
        await store.close()
        logger.info('server:stopped', {})
      })()
      return closing
    }
  }
}
