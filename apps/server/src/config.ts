import { join, resolve } from 'node:path'
import { UsageError } from '@mls/core'

/** Everything the server can be told, from flags or environment variables. */
export interface ServerConfig {
  /** Interface to listen on. Flag `--host`, env `MLS_HOST`. Default `127.0.0.1`. */
  host: string
  /** Port; 0 picks a free one. Flag `--port`, env `MLS_PORT`. Default 8080. */
  port: number
  /** Folder of the SQLite file `server.sqlite`. Flag `--data-dir`, env `MLS_DATA_DIR`. Default `./.data`. */
  dataDir: string
  /**
   * Most memory SQLite's page cache may hold, in MiB: the server's memory
   * rises by up to this much as the database grows, then stays flat
   * (docs/server.md). Flag `--sqlite-cache-mib`, env `MLS_SQLITE_CACHE_MIB`.
   * Default: SQLite's as better-sqlite3 builds it, 16,000 KiB.
   */
  sqliteCacheMib?: number
  /**
   * A `postgres://` URL: keep state in PostgreSQL instead of SQLite, so that any
   * number of instances can serve one deployment (fan-out between them by
   * LISTEN/NOTIFY). Flag `--store`, env `MLS_STORE`. Default: SQLite in `dataDir`.
   */
  store?: string
  /** `debug`, `info`, `warn` or `error`. Flag `--log-level`, env `MLS_LOG_LEVEL`. Default `info`. */
  logLevel: LogLevel
  /** Transport limits (see docs/protocol.md); each flag also has an env variable. */
  limits: {
    /** `--max-frame-bytes`, `MLS_MAX_FRAME_BYTES`. */
    maxFrameBytes?: number
    /** `--requests-per-second`, `MLS_REQUESTS_PER_SECOND` (per connection). */
    requestsPerSecond?: number
    /** `--identity-requests-per-second`, `MLS_IDENTITY_REQUESTS_PER_SECOND`. */
    identityRequestsPerSecond?: number
    /** `--max-connections-per-identity`, `MLS_MAX_CONNECTIONS_PER_IDENTITY`. */
    maxConnectionsPerIdentity?: number
    /** `--max-connections`, `MLS_MAX_CONNECTIONS`. */
    maxConnections?: number
    /** `--max-unauthenticated-frame-bytes`, `MLS_MAX_UNAUTHENTICATED_FRAME_BYTES` (before login). */
    maxUnauthenticatedFrameBytes?: number
    /** `--max-unauthenticated-per-address`, `MLS_MAX_UNAUTHENTICATED_PER_ADDRESS`. */
    maxUnauthenticatedPerAddress?: number
    /** `--max-buffered-bytes`, `MLS_MAX_BUFFERED_BYTES` (per connection). */
    maxBufferedBytes?: number
    /** `--max-buffered-bytes-per-identity`, `MLS_MAX_BUFFERED_BYTES_PER_IDENTITY`. */
    maxBufferedBytesPerIdentity?: number
    /** `--heartbeat-interval-ms`, `MLS_HEARTBEAT_INTERVAL_MS` (pings; their pongs also confirm pushed entries for retention). */
    heartbeatIntervalMs?: number
  }
  /** Per-identity quotas of the services (docs/server.md). */
  quotas: {
    /** `--groups-per-hour`, `MLS_GROUPS_PER_HOUR` (and the burst, `--group-burst`, `MLS_GROUP_BURST`). */
    groupsPerHour?: number
    groupBurst?: number
    /** `--max-key-packages-per-client`, `MLS_MAX_KEY_PACKAGES_PER_CLIENT`. */
    maxKeyPackagesPerClient?: number
  }
  /** URLs clients dial (logins are signed for them). `--public-url <url,...>`, `MLS_PUBLIC_URL`. Default: the listening URL. */
  publicUrls?: string[]
  /** KeyPackage fetches per requester per minute. `--key-package-fetches-per-minute`, `MLS_KEY_PACKAGE_FETCHES_PER_MINUTE`. */
  keyPackageFetchesPerMinute?: number
  /** New identities per source address per hour. `--registrations-per-hour`, `MLS_REGISTRATIONS_PER_HOUR`. */
  registrationsPerHour?: number
  /**
   * App authentication of user-id claims by JWT (docs/trust-model.md): set by
   * `--auth-jwt-public-key <PEM file>` (`MLS_AUTH_JWT_PUBLIC_KEY`), with
   * `--auth-jwt-algorithm` (`MLS_AUTH_JWT_ALGORITHM`, default ES256),
   * `--auth-jwt-issuer` and `--auth-jwt-audience` (`MLS_AUTH_JWT_ISSUER`,
   * `MLS_AUTH_JWT_AUDIENCE`). Unset: the first device claims a user id.
   */
  jwt?: { publicKeyPath: string; algorithm: string; issuer?: string; audience?: string }
  /**
   * Log retention (docs/server.md): application messages older than
   * `maxAgeSeconds` (`--retention-max-age-seconds`, `MLS_RETENTION_MAX_AGE_SECONDS`,
   * default 30 days) or beyond a group's newest `maxMessages`
   * (`--retention-max-messages`, `MLS_RETENTION_MAX_MESSAGES`, default 10000)
   * are deleted, every `intervalSeconds` (`--retention-interval-seconds`,
   * `MLS_RETENTION_INTERVAL_SECONDS`, default 600). 0 turns a rule (or, for the
   * interval, retention) off. Commits and proposals are kept. Neither rule
   * deletes what a current member has not fetched, unless it is older than
   * `hardMaxAgeSeconds` (`--retention-hard-max-age-seconds`,
   * `MLS_RETENTION_HARD_MAX_AGE_SECONDS`, default 90 days; 0 = no hard limit).
   * Mailbox Welcomes older than `welcomeMaxAgeSeconds`
   * (`--retention-welcome-max-age-seconds`, `MLS_RETENTION_WELCOME_MAX_AGE_SECONDS`,
   * default 90 days; 0 = kept) are deleted by the same passes.
   */
  retention: { maxAgeSeconds: number; maxMessages: number; intervalSeconds: number; hardMaxAgeSeconds: number; welcomeMaxAgeSeconds: number }
  /**
   * The server's signature key as the external sender of groups (it proposes
   * the removal of a device its user deleted; clients pin it on first use),
   * from which its login key is derived (protocol v2; clients pin it too):
   * a JSON file generated on first start and read unchanged afterwards. Flag
   * `--server-key`, env `MLS_SERVER_KEY`. Default `<dataDir>/server-key.json`.
   * Several instances on one PostgreSQL database must share one file.
   */
  serverKeyPath: string
}

/** Retention defaults: 30 days, 10000 messages per group, a pass every 10 minutes; Welcomes 90 days. */
export const DEFAULT_RETENTION = {
  maxAgeSeconds: 30 * 24 * 3600,
  maxMessages: 10_000,
  intervalSeconds: 600,
  hardMaxAgeSeconds: 90 * 24 * 3600,
  welcomeMaxAgeSeconds: 90 * 24 * 3600
} as const

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

const quotaFlags: Record<string, [keyof ServerConfig['quotas'], string]> = {
  '--groups-per-hour': ['groupsPerHour', 'MLS_GROUPS_PER_HOUR'],
  '--group-burst': ['groupBurst', 'MLS_GROUP_BURST'],
  '--max-key-packages-per-client': ['maxKeyPackagesPerClient', 'MLS_MAX_KEY_PACKAGES_PER_CLIENT']
}

type RetentionKey = 'retentionMaxAgeSeconds' | 'retentionMaxMessages' | 'retentionIntervalSeconds' | 'retentionHardMaxAgeSeconds' | 'retentionWelcomeMaxAgeSeconds'
const numeric: Record<
  string,
  [keyof ServerConfig['limits'] | keyof ServerConfig['quotas'] | 'port' | 'keyPackageFetchesPerMinute' | 'registrationsPerHour' | 'sqliteCacheMib' | RetentionKey, string]
> = {
  ...quotaFlags,
  '--max-unauthenticated-frame-bytes': ['maxUnauthenticatedFrameBytes', 'MLS_MAX_UNAUTHENTICATED_FRAME_BYTES'],
  '--max-unauthenticated-per-address': ['maxUnauthenticatedPerAddress', 'MLS_MAX_UNAUTHENTICATED_PER_ADDRESS'],
  '--max-buffered-bytes': ['maxBufferedBytes', 'MLS_MAX_BUFFERED_BYTES'],
  '--max-buffered-bytes-per-identity': ['maxBufferedBytesPerIdentity', 'MLS_MAX_BUFFERED_BYTES_PER_IDENTITY'],
  '--heartbeat-interval-ms': ['heartbeatIntervalMs', 'MLS_HEARTBEAT_INTERVAL_MS'],
  '--port': ['port', 'MLS_PORT'],
  '--max-frame-bytes': ['maxFrameBytes', 'MLS_MAX_FRAME_BYTES'],
  '--requests-per-second': ['requestsPerSecond', 'MLS_REQUESTS_PER_SECOND'],
  '--identity-requests-per-second': ['identityRequestsPerSecond', 'MLS_IDENTITY_REQUESTS_PER_SECOND'],
  '--max-connections-per-identity': ['maxConnectionsPerIdentity', 'MLS_MAX_CONNECTIONS_PER_IDENTITY'],
  '--max-connections': ['maxConnections', 'MLS_MAX_CONNECTIONS'],
  '--key-package-fetches-per-minute': ['keyPackageFetchesPerMinute', 'MLS_KEY_PACKAGE_FETCHES_PER_MINUTE'],
  '--registrations-per-hour': ['registrationsPerHour', 'MLS_REGISTRATIONS_PER_HOUR'],
  '--retention-max-age-seconds': ['retentionMaxAgeSeconds', 'MLS_RETENTION_MAX_AGE_SECONDS'],
  '--retention-max-messages': ['retentionMaxMessages', 'MLS_RETENTION_MAX_MESSAGES'],
  '--retention-interval-seconds': ['retentionIntervalSeconds', 'MLS_RETENTION_INTERVAL_SECONDS'],
  '--retention-hard-max-age-seconds': ['retentionHardMaxAgeSeconds', 'MLS_RETENTION_HARD_MAX_AGE_SECONDS'],
  '--retention-welcome-max-age-seconds': ['retentionWelcomeMaxAgeSeconds', 'MLS_RETENTION_WELCOME_MAX_AGE_SECONDS'],
  '--sqlite-cache-mib': ['sqliteCacheMib', 'MLS_SQLITE_CACHE_MIB']
}

const textual: Record<string, string> = {
  '--host': 'MLS_HOST',
  '--data-dir': 'MLS_DATA_DIR',
  '--log-level': 'MLS_LOG_LEVEL',
  '--store': 'MLS_STORE',
  '--public-url': 'MLS_PUBLIC_URL',
  '--auth-jwt-public-key': 'MLS_AUTH_JWT_PUBLIC_KEY',
  '--auth-jwt-algorithm': 'MLS_AUTH_JWT_ALGORITHM',
  '--auth-jwt-issuer': 'MLS_AUTH_JWT_ISSUER',
  '--auth-jwt-audience': 'MLS_AUTH_JWT_AUDIENCE',
  '--server-key': 'MLS_SERVER_KEY'
}

/** Every flag the server accepts, with its environment variable (what `--help` lists). */
export const OPTIONS: readonly { flag: string; env: string }[] = [
  ...Object.entries(textual).map(([flag, env]) => ({ flag, env })),
  ...Object.entries(numeric).map(([flag, [, env]]) => ({ flag, env }))
]

export const USAGE = `Usage: mls-server [options]

Options (each also as an environment variable):
  --host <addr>                          MLS_HOST          interface to listen on (default 127.0.0.1)
  --port <n>                             MLS_PORT          port, 0 for any free one (default 8080)
  --data-dir <dir>                       MLS_DATA_DIR      folder of server.sqlite (default ./.data)
  --store <postgres://...>               MLS_STORE         PostgreSQL instead of SQLite: several instances
                                                           may share one database
  --sqlite-cache-mib <n>                 MLS_SQLITE_CACHE_MIB  SQLite's page cache at most (default 16000 KiB):
                                                           memory grows by up to this much with the database
  --log-level <debug|info|warn|error>    MLS_LOG_LEVEL     (default info)
  --max-frame-bytes <n>                  MLS_MAX_FRAME_BYTES
  --requests-per-second <n>              MLS_REQUESTS_PER_SECOND           per connection
  --identity-requests-per-second <n>     MLS_IDENTITY_REQUESTS_PER_SECOND  per identity
  --max-connections-per-identity <n>     MLS_MAX_CONNECTIONS_PER_IDENTITY
  --max-connections <n>                  MLS_MAX_CONNECTIONS
  --max-unauthenticated-frame-bytes <n>  MLS_MAX_UNAUTHENTICATED_FRAME_BYTES  largest frame before login (default 16384)
  --max-unauthenticated-per-address <n>  MLS_MAX_UNAUTHENTICATED_PER_ADDRESS  connections not logged in per address (default 16)
  --max-buffered-bytes <n>               MLS_MAX_BUFFERED_BYTES              unread bytes per connection (default 32 MiB)
  --max-buffered-bytes-per-identity <n>  MLS_MAX_BUFFERED_BYTES_PER_IDENTITY unread bytes per identity (default 64 MiB)
  --heartbeat-interval-ms <n>            MLS_HEARTBEAT_INTERVAL_MS         WebSocket pings (default 30000); a pong also confirms
                                                                            the entries pushed before its ping (retention cursors)
  --groups-per-hour <n>                  MLS_GROUPS_PER_HOUR               groups one identity creates per hour (default 120)
  --group-burst <n>                      MLS_GROUP_BURST                   groups one identity creates at once (default 200)
  --max-key-packages-per-client <n>      MLS_MAX_KEY_PACKAGES_PER_CLIENT   one-time KeyPackages a client holds (default 1000)
  --public-url <url,...>                 MLS_PUBLIC_URL    URLs clients dial, e.g. wss://chat.example.com/ behind a TLS proxy;
                                                           logins are signed for the URL dialled (default: the listening URL)
  --key-package-fetches-per-minute <n>   MLS_KEY_PACKAGE_FETCHES_PER_MINUTE per requester
  --registrations-per-hour <n>           MLS_REGISTRATIONS_PER_HOUR         new identities per source address
  --retention-max-age-seconds <n>        MLS_RETENTION_MAX_AGE_SECONDS      delete application messages older than this
                                                                            (default 2592000, 30 days; 0 = no age limit)
  --retention-max-messages <n>           MLS_RETENTION_MAX_MESSAGES         keep each group's newest n application messages
                                                                            (default 10000; 0 = no count limit)
  --retention-interval-seconds <n>       MLS_RETENTION_INTERVAL_SECONDS     seconds between retention passes
                                                                            (default 600; 0 = retention off)
  --retention-hard-max-age-seconds <n>   MLS_RETENTION_HARD_MAX_AGE_SECONDS delete application messages older than this even
                                                                            if a current member has not fetched them (default
                                                                            7776000, 90 days; 0 = never); the two rules above
                                                                            keep what a current member has not fetched
  --retention-welcome-max-age-seconds <n> MLS_RETENTION_WELCOME_MAX_AGE_SECONDS delete mailbox Welcomes older than this
                                                                            (default 7776000, 90 days; 0 = never)
  --auth-jwt-public-key <pem file>       MLS_AUTH_JWT_PUBLIC_KEY   claims of a user id need a JWT (sub = user id) signed by this key
  --auth-jwt-algorithm <alg>             MLS_AUTH_JWT_ALGORITHM    (default ES256)
  --auth-jwt-issuer <iss>                MLS_AUTH_JWT_ISSUER       required iss, if set
  --auth-jwt-audience <aud>              MLS_AUTH_JWT_AUDIENCE     required aud, if set
  --server-key <file>                    MLS_SERVER_KEY    the server's key: its signing key as the external sender
                                                           of groups, from which its login key is derived; created
                                                           on first start (default <data dir>/server-key.json;
                                                           share it between instances)
  --help                                 print this and exit 0

Logs are JSON lines on stdout. GET /health answers 200 while serving. The data
dir holds server.sqlite, server-key.json and, while a server runs on it,
server.lock (a second server on the same data dir refuses to start).

Exit codes:
  0  stopped on SIGTERM or SIGINT after a clean shutdown (or --help)
  1  unexpected failure while running or stopping
  2  bad flag, variable or value (e.g. a port outside 0-65535)
  3  port in use or not permitted
  4  data dir cannot be created or written, or its database or server key cannot be opened
  5  data dir locked by another running server`

function toNumber(name: string, value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 0) throw new UsageError('INVALID_ARGUMENT', `${name} must be a non-negative integer, got ${JSON.stringify(value)}`)
  return n
}

/** Flags win over environment variables, which win over defaults. */
export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const flags = new Map<string, string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--help') {
      flags.set('--help', 'true')
      continue
    }
    const eq = arg.indexOf('=')
    const [name, inline] = eq > 0 ? [arg.slice(0, eq), arg.slice(eq + 1)] : [arg, undefined]
    if (!name.startsWith('--') || !(name in numeric || name in textual)) {
      throw new UsageError('INVALID_ARGUMENT', `Unknown option ${name}\n\n${USAGE}`)
    }
    const value = inline ?? argv[++i]
    if (value === undefined) throw new UsageError('INVALID_ARGUMENT', `${name} needs a value`)
    flags.set(name, value)
  }
  const pick = (flag: string, envName: string): string | undefined => flags.get(flag) ?? env[envName]
  const logLevel = (pick('--log-level', 'MLS_LOG_LEVEL') ?? 'info') as LogLevel
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) throw new UsageError('INVALID_ARGUMENT', `Unknown log level ${logLevel}`)
  const config: ServerConfig = {
    host: pick('--host', 'MLS_HOST') ?? '127.0.0.1',
    port: 8080,
    dataDir: resolve(pick('--data-dir', 'MLS_DATA_DIR') ?? '.data'),
    logLevel,
    limits: {},
    quotas: {},
    retention: { ...DEFAULT_RETENTION },
    serverKeyPath: ''
  }
  const publicUrls = pick('--public-url', 'MLS_PUBLIC_URL')
  if (publicUrls !== undefined) {
    config.publicUrls = publicUrls.split(',').map((url) => url.trim()).filter((url) => url !== '')
    for (const url of config.publicUrls) {
      if (!/^wss?:\/\/[^/]/i.test(url)) throw new UsageError('INVALID_ARGUMENT', `--public-url must be ws:// or wss:// URLs, got ${JSON.stringify(url)}`)
    }
  }
  const serverKey = pick('--server-key', 'MLS_SERVER_KEY')
  config.serverKeyPath = serverKey === undefined ? join(config.dataDir, 'server-key.json') : resolve(serverKey)
  const store = pick('--store', 'MLS_STORE')
  if (store !== undefined) {
    if (!/^postgres(ql)?:\/\//.test(store)) throw new UsageError('INVALID_ARGUMENT', `--store must be a postgres:// URL, got ${JSON.stringify(store)}`)
    config.store = store
  }
  for (const [flag, [key, envName]] of Object.entries(numeric)) {
    const raw = pick(flag, envName)
    if (raw === undefined) continue
    const n = toNumber(flag, raw)
    if (key === 'port') {
      if (n > 65_535) throw new UsageError('INVALID_ARGUMENT', `${flag} must be between 0 and 65535, got ${n}`)
      config.port = n
    }
    else if (key === 'keyPackageFetchesPerMinute') config.keyPackageFetchesPerMinute = n
    else if (key === 'registrationsPerHour') config.registrationsPerHour = n
    else if (key === 'retentionMaxAgeSeconds') config.retention.maxAgeSeconds = n
    else if (key === 'retentionMaxMessages') config.retention.maxMessages = n
    else if (key === 'retentionIntervalSeconds') config.retention.intervalSeconds = n
    else if (key === 'retentionHardMaxAgeSeconds') config.retention.hardMaxAgeSeconds = n
    else if (key === 'retentionWelcomeMaxAgeSeconds') config.retention.welcomeMaxAgeSeconds = n
    else if (key === 'sqliteCacheMib') {
      if (n < 1) throw new UsageError('INVALID_ARGUMENT', `${flag} must be at least 1, got ${n}`)
      config.sqliteCacheMib = n
    }
    else if (flag in quotaFlags) config.quotas[key as keyof ServerConfig['quotas']] = n
    else config.limits[key as keyof ServerConfig['limits']] = n
  }
  const jwtKey = pick('--auth-jwt-public-key', 'MLS_AUTH_JWT_PUBLIC_KEY')
  if (jwtKey !== undefined) {
    const issuer = pick('--auth-jwt-issuer', 'MLS_AUTH_JWT_ISSUER')
    const audience = pick('--auth-jwt-audience', 'MLS_AUTH_JWT_AUDIENCE')
    config.jwt = {
      publicKeyPath: resolve(jwtKey),
      algorithm: pick('--auth-jwt-algorithm', 'MLS_AUTH_JWT_ALGORITHM') ?? 'ES256',
      ...(issuer === undefined ? {} : { issuer }),
      ...(audience === undefined ? {} : { audience })
    }
  }
  if (flags.has('--help')) throw new UsageError('INVALID_ARGUMENT', USAGE, { details: { help: true } })
  return config
}
