import { mkdirSync, readFileSync } from 'node:fs'
import { createPublicKey } from 'node:crypto'
import { dirname, join } from 'node:path'
import type { ServerStore } from '@mls/core/interfaces'
import { nodeCrypto } from '@mls/crypto-node'
import { createServices, jwtAuthentication, startLogRetention, type LogRetention } from '@mls/server'
import { sqliteServerStore } from '@mls/storage-sqlite'
import { openPostgresServerStore, postgresInstanceBus, type PostgresInstanceBus } from '@mls/storage-postgres'
import { webSocketServer, type WebSocketServerStats } from '@mls/transport-ws/server'
import type { ServerConfig } from './config.js'
import { jsonLogger, type Logger } from './logger.js'
import { StartupError, dataDirFailure, listenFailure, lockDataDir } from './startup.js'
import { loadOrCreateServerKey, loginKeyOf, type ServerKey } from './server-key.js'

export interface RunningServer {
  readonly url: string
  readonly port: number
  /** The SQLite file, or the PostgreSQL URL without its password. */
  readonly databasePath: string
  /** The public login key the server proves on every connection (derived from its persisted key; stable across restarts). */
  readonly loginKey: Uint8Array
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

/** The URL without its password, for logs. */
function redact(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password !== '') parsed.password = '***'
    return parsed.toString()
  } catch {
    return 'postgres://(unparsable)'
  }
}

/**
 * Start the Directory and Group Channel on WebSocket, with state in
 * `dataDir/server.sqlite` (holding `dataDir/server.lock` while it runs), or in
 * PostgreSQL when `config.store` is a `postgres://` URL (then with fan-out to
 * the other instances on that database; any number may run).
 * Startup failures reject with a `StartupError` (see startup.ts) for a data
 * dir that cannot be used or is locked by another server, and a port that is
 * taken or not permitted; nothing is left open.
 */
export async function startServer(config: ServerConfig, logger: Logger = jsonLogger(config.logLevel)): Promise<RunningServer> {
  let backing: ServerStore
  let bus: PostgresInstanceBus | undefined
  let databasePath: string
  let unlock: () => void = () => {}
  if (config.store === undefined) {
    try {
      mkdirSync(config.dataDir, { recursive: true })
    } catch (error) {
      throw dataDirFailure(error, config.dataDir)
    }
    unlock = lockDataDir(config.dataDir)
    databasePath = join(config.dataDir, 'server.sqlite')
    try {
      backing = sqliteServerStore({ path: databasePath, ...(config.sqliteCacheMib === undefined ? {} : { cacheSizeKib: config.sqliteCacheMib * 1024 }) })
    } catch (error) {
      unlock()
      throw dataDirFailure(error, config.dataDir)
    }
  } else {
    databasePath = redact(config.store)
    backing = await openPostgresServerStore({ connectionString: config.store })
    try {
      bus = await postgresInstanceBus({
        connectionString: config.store,
        onStateChange: (state, error) => (state === 'listening' ? logger.info('bus:listening', {}) : logger.warn('bus:reconnecting', { error }))
      })
    } catch (error) {
      await backing.close()
      throw error
    }
  }
  const { store, idle } = trackInFlight(backing)
  const crypto = nodeCrypto()
  let serverKey: ServerKey
  try {
    if (config.store !== undefined) mkdirSync(dirname(config.serverKeyPath), { recursive: true })
    serverKey = await loadOrCreateServerKey(config.serverKeyPath, crypto)
  } catch (error) {
    await bus?.close()
    await store.close()
    unlock()
    throw error instanceof StartupError ? error : dataDirFailure(error, dirname(config.serverKeyPath))
  }
  const serviceLimits = {
    ...(config.keyPackageFetchesPerMinute === undefined ? {} : { fetchesPerMinute: config.keyPackageFetchesPerMinute }),
    ...(config.registrationsPerHour === undefined ? {} : { registrationsPerHour: config.registrationsPerHour }),
    ...Object.fromEntries(Object.entries(config.quotas).filter(([, v]) => v !== undefined))
  }
  const jwt = config.jwt
  const services = createServices({
    store,
    crypto,
    ...(bus === undefined ? {} : { bus }),
    limits: serviceLimits,
    externalSender: serverKey,
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
  let ws: Awaited<ReturnType<typeof webSocketServer>>
  try {
    ws = await webSocketServer({
      services,
      host: config.host,
      port: config.port,
      limits,
      logger,
      serverKey: loginKeyOf(serverKey),
      ...(config.publicUrls === undefined ? {} : { publicUrls: config.publicUrls })
    })
  } catch (error) {
    await bus?.close()
    await store.close()
    unlock()
    throw listenFailure(error, config.host, config.port)
  }
  logger.info('server:started', {
    url: ws.url,
    host: ws.host,
    port: ws.port,
    pid: process.pid,
    database: databasePath,
    crypto: crypto.name,
    authentication: jwt === undefined ? 'first-claim' : 'jwt',
    serverKey: Buffer.from(serverKey.signaturePublicKey).toString('hex'),
    loginKey: Buffer.from(ws.serverKey).toString('hex'),
    ...(bus === undefined ? {} : { instance: bus.instanceId })
  })
  // Retention goes through the tracked store: shutdown stops it, then waits for the calls in flight.
  const { retention: policy } = config
  const retention: LogRetention | undefined =
    policy.intervalSeconds > 0 && (policy.maxAgeSeconds > 0 || policy.maxMessages > 0 || policy.hardMaxAgeSeconds > 0 || policy.welcomeMaxAgeSeconds > 0)
      ? startLogRetention(store, policy, {
          // The pass sees every fetch cursor this instance noted so far.
          beforePass: () => services.channel.flushFetchCursors(),
          onPass: ({ deleted, welcomesDeleted, milliseconds }) =>
            deleted > 0 || welcomesDeleted > 0
              ? logger.info('retention:pruned', { deleted, welcomesDeleted, milliseconds })
              : logger.debug('retention:pass', { deleted, milliseconds }),
          onError: (error) => logger.warn('retention:failed', { error })
        })
      : undefined
  let closing: Promise<void> | undefined
  return {
    url: ws.url,
    port: ws.port,
    databasePath,
    loginKey: ws.serverKey,
    stats: () => ws.stats(),
    close: () => {
      closing ??= (async () => {
        logger.info('server:stopping', {})
        await ws.close()
        await retention?.stop()
        await services.channel.flushFetchCursors().catch((error: unknown) => logger.warn('retention:cursors-not-written', { error }))
        await idle()
        await bus?.close()
        await store.close()
        unlock()
        logger.info('server:stopped', {})
      })()
      return closing
    }
  }
}
