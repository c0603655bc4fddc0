import { ServiceError } from '@mls/core'

/**
 * Limits the services enforce. Every field is optional in `createServices`;
 * missing ones take the value of `defaultServiceLimits`. All are positive
 * integers except `epochWindow`, which may be 0.
 */
export interface ServiceLimits {
  /**
   * KeyPackage fetches per requester: a token bucket refilled at this many
   * tokens per minute. One `fetchKeyPackages` call takes one token; an empty
   * bucket rejects with `RATE_LIMITED` (details carry `retryAfterMs`).
   * Default 60.
   */
  readonly fetchesPerMinute: number
  /** Size of the fetch token bucket (the burst a requester may spend at once). Default 120. */
  readonly fetchBurst: number
  /** Largest application message, in bytes (`PAYLOAD_TOO_LARGE`). Default 1 MiB. */
  readonly maxMessageBytes: number
  /** Largest commit, and largest Welcome, in bytes (`PAYLOAD_TOO_LARGE`). Default 4 MiB. */
  readonly maxHandshakeBytes: number
  /**
   * How many epochs back an application message may be: the channel accepts
   * epochs `[current - epochWindow, current]` (`WRONG_EPOCH` otherwise).
   * Default 2.
   */
  readonly epochWindow: number
  /** Most KeyPackages in one upload, the last-resort one included (`KEY_PACKAGE_INVALID`). Default 200. */
  readonly maxKeyPackagesPerUpload: number
  /** Largest encoded KeyPackage, in bytes (`KEY_PACKAGE_INVALID`). Default 64 KiB. */
  readonly maxKeyPackageBytes: number
  /** Tolerated clock skew for a KeyPackage's `not_before`, in seconds. Default 300. */
  readonly keyPackageClockSkewSeconds: number
  /** Entries or Welcomes returned by one fetch when the caller gives no limit. Default 500. */
  readonly defaultFetchLimit: number
  /** Largest limit a fetch may ask for; larger ones are clamped. Default 1000. */
  readonly maxFetchLimit: number
  /** How long an issued challenge may be answered, in milliseconds. Default 1 minute. */
  readonly challengeTtlMs: number
  /**
   * Answered challenges remembered until they expire (to keep each single-use).
   * Challenges are stateless, so issuing them stores nothing; when this many
   * unexpired ones have been answered, further logins get `AUTHENTICATION_FAILED`
   * (`details.reason: 'challenge-expired'`) until some expire. Default 100 000.
   */
  readonly maxPendingChallenges: number
  /**
   * Group records (epoch, roster, access) and device lists kept in memory, so a
   * message does not read them from the store. Exact while this process is the
   * only writer of its store; 0 disables the caches (`createServices` does so
   * when given a bus: several instances). Default 10 000.
   */
  readonly groupCacheSize: number
  /** Longest group id, in bytes (`INVALID_ARGUMENT`). Default 256. */
  readonly maxGroupIdBytes: number
  /**
   * New identities registered per source address (as the transport reports
   * it), per hour: a token bucket refilled at this rate. Default 60.
   */
  readonly registrationsPerHour: number
  /** Size of the registration bucket per source address. Default 30. */
  readonly registrationBurst: number
  /**
   * One-time KeyPackages of one user served per minute, across all
   * requesters: a token bucket per target user, one token per device served.
   * When it is spent, devices are served their last-resort KeyPackage (still
   * enough to add the user), so no one drains a user's one-time pool faster.
   * Default 10.
   */
  readonly oneTimeKeyPackagesPerMinute: number
  /** Size of the per-user one-time bucket. Default 20. */
  readonly oneTimeKeyPackageBurst: number
  /**
   * Groups one identity may create per hour: a token bucket per caller
   * (kept by each instance). Past it, `createGroup` rejects with
   * `QUOTA_EXCEEDED` (`details.quota: 'groups'`, `retryAfterMs`). Default 120.
   */
  readonly groupsPerHour: number
  /** Size of the per-identity group bucket (groups created at once). Default 200. */
  readonly groupBurst: number
  /**
   * One-time KeyPackages one client may hold on the server. An upload that
   * would go past it is refused whole with `QUOTA_EXCEEDED`
   * (`details.quota: 'key-packages'`, `limit`, `stored`). Default 1000.
   */
  readonly maxKeyPackagesPerClient: number
}

/** The limits a server uses where `ServicesInit.limits` gives none. */
export const defaultServiceLimits: ServiceLimits = Object.freeze({
  fetchesPerMinute: 60,
  fetchBurst: 120,
  maxMessageBytes: 1 << 20,
  maxHandshakeBytes: 4 << 20,
  epochWindow: 2,
  maxKeyPackagesPerUpload: 200,
  maxKeyPackageBytes: 64 << 10,
  keyPackageClockSkewSeconds: 300,
  defaultFetchLimit: 500,
  maxFetchLimit: 1000,
  groupCacheSize: 10_000,
  challengeTtlMs: 60_000,
  maxPendingChallenges: 100_000,
  maxGroupIdBytes: 256,
  registrationsPerHour: 60,
  registrationBurst: 30,
  oneTimeKeyPackagesPerMinute: 10,
  oneTimeKeyPackageBurst: 20,
  groupsPerHour: 120,
  groupBurst: 200,
  maxKeyPackagesPerClient: 1000
})

export function resolveLimits(limits: Partial<ServiceLimits> = {}): ServiceLimits {
  const resolved = { ...defaultServiceLimits, ...limits }
  for (const [name, value] of Object.entries(resolved)) {
    const min = name === 'epochWindow' || name === 'groupCacheSize' ? 0 : 1
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
      throw new ServiceError('INVALID_ARGUMENT', `Limit ${name} must be an integer >= ${min}, got ${String(value)}`)
    }
  }
  if (resolved.defaultFetchLimit > resolved.maxFetchLimit) {
    throw new ServiceError('INVALID_ARGUMENT', 'Limit defaultFetchLimit must not exceed maxFetchLimit')
  }
  return Object.freeze(resolved)
}
