import type { GroupChannelClient } from './interfaces/channel.js'
import type { AbortOptions } from './interfaces/common.js'
import type { DirectoryClient } from './interfaces/directory.js'
import type { Connection } from './interfaces/transport.js'
import { UsageError, errorCode } from './errors.js'

/**
 * How a client paces its requests, so that it starts and catches up with any
 * number of groups within the server's rate limits (docs/core.md, "Pacing").
 */
export interface PacingOptions {
  /** Requests outstanding at once on the connection; more wait their turn. Default 8 (the server refuses past 64). */
  maxRequestsInFlight?: number
  /** Groups `sync()` catches up at once, the most recently active first. Default 4. */
  maxGroupsInFlight?: number
  /**
   * Times one request refused with `RATE_LIMITED` is sent again, each after
   * the wait the server named (`details.retryAfterMs`) or a doubling backoff
   * from 25 ms, whichever is longer (at most `maxRateLimitWaitMs`). Default 8.
   */
  rateLimitRetries?: number
  /** A refusal asking for a longer wait than this is not retried but thrown. Default 10 000 ms. */
  maxRateLimitWaitMs?: number
}

/** The resolved pacing settings. */
export interface Pacing {
  readonly maxRequestsInFlight: number
  readonly maxGroupsInFlight: number
  readonly rateLimitRetries: number
  readonly maxRateLimitWaitMs: number
}

/** The subset of timers pacing waits with (the client's injectable timers). */
export interface PacingTimers {
  setTimeout(callback: () => void, delayMs: number): unknown
}

/** Check and complete `PacingOptions`; `INVALID_ARGUMENT` for a value out of range. */
export function resolvePacing(options: PacingOptions | undefined): Pacing {
  const count = (value: number | undefined, fallback: number, name: string, min: number): number => {
    const v = value ?? fallback
    if (!Number.isSafeInteger(v) || v < min) throw new UsageError('INVALID_ARGUMENT', `pacing.${name} must be an integer of at least ${min}`)
    return v
  }
  return {
    maxRequestsInFlight: count(options?.maxRequestsInFlight, 8, 'maxRequestsInFlight', 1),
    maxGroupsInFlight: count(options?.maxGroupsInFlight, 4, 'maxGroupsInFlight', 1),
    rateLimitRetries: count(options?.rateLimitRetries, 8, 'rateLimitRetries', 0),
    maxRateLimitWaitMs: count(options?.maxRateLimitWaitMs, 10_000, 'maxRateLimitWaitMs', 0)
  }
}

/** Limits how many async tasks run at once; waiters are served in call order. */
export class Semaphore {
  private active = 0
  private readonly queue: (() => void)[] = []

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.queue.push(resolve))
    else this.active++
    try {
      return await task()
    } finally {
      const next = this.queue.shift()
      // The slot passes straight to the next waiter.
      if (next === undefined) this.active--
      else next()
    }
  }
}

/** Run `task` over every item, at most `limit` at once, in the items' order; every item is tried. */
export async function eachLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<PromiseSettledResult<void>[]> {
  const semaphore = new Semaphore(limit)
  return Promise.allSettled(items.map((item) => semaphore.run(() => task(item))))
}

/**
 * The connection, paced: at most `maxRequestsInFlight` requests outstanding,
 * and a request refused with `RATE_LIMITED` sent again after the wait the
 * server asked for. A refusal with `RATE_LIMITED` is made before the service
 * acts (the request changed nothing), so sending it again is safe for every
 * request. Subscriptions and `close` pass straight through.
 */
export function pacedConnection(connection: Connection, pacing: Pacing, timers: PacingTimers): Connection {
  const semaphore = new Semaphore(pacing.maxRequestsInFlight)
  const wait = (delayMs: number, options: AbortOptions | undefined): Promise<void> =>
    new Promise((resolve) => {
      const handle = timers.setTimeout(resolve, delayMs)
      ;(handle as { unref?: () => void } | undefined)?.unref?.()
      options?.signal?.addEventListener('abort', () => resolve(), { once: true })
    })
  const paced = async <T>(options: AbortOptions | undefined, request: () => Promise<T>): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await semaphore.run(request)
      } catch (error) {
        if (errorCode(error) !== 'RATE_LIMITED' || attempt >= pacing.rateLimitRetries || options?.signal?.aborted === true) throw error
        const asked = (error as { details?: { retryAfterMs?: unknown } }).details?.retryAfterMs
        const named = typeof asked === 'number' && Number.isFinite(asked) && asked >= 0 ? asked : 0
        if (named > pacing.maxRateLimitWaitMs) throw error
        // The wait named, but at least a doubling backoff from 25 ms (other requests compete for the same tokens),
        // with jitter so refused requests do not come back in one burst.
        const delayMs = Math.min(pacing.maxRateLimitWaitMs, Math.max(named, 25 * 2 ** attempt))
        await wait(delayMs * (1 + Math.random() * 0.25), options)
      }
    }
  }
  const d = connection.directory
  const directory: DirectoryClient = {
    uploadKeyPackages: (request, o) => paced(o, () => d.uploadKeyPackages(request, o)),
    fetchKeyPackages: (userId, o) => paced(o, () => d.fetchKeyPackages(userId, o)),
    lookupIdentity: (clientId, o) => paced(o, () => d.lookupIdentity(clientId, o)),
    countKeyPackages: (o) => paced(o, () => d.countKeyPackages(o)),
    fetchDeviceList: (userId, o) => paced(o, () => d.fetchDeviceList(userId, o)),
    publishDeviceListEntry: (entry, o) => paced(o, () => d.publishDeviceListEntry(entry, o))
  }
  const c = connection.channel
  const channel: GroupChannelClient = {
    createGroup: (groupId, request, o) => paced(o, () => c.createGroup(groupId, request, o)),
    postCommit: (groupId, request, o) => paced(o, () => c.postCommit(groupId, request, o)),
    postProposal: (groupId, proposal, o) => paced(o, () => c.postProposal(groupId, proposal, o)),
    postMessage: (groupId, message, o) => paced(o, () => c.postMessage(groupId, message, o)),
    fetchEntries: (groupId, afterSeq, o) => paced(o, () => c.fetchEntries(groupId, afterSeq, o)),
    fetchGroupInfo: (groupId, o) => paced(o, () => c.fetchGroupInfo(groupId, o)),
    fetchWelcomes: (afterSeq, o) => paced(o, () => c.fetchWelcomes(afterSeq, o)),
    subscribe: (listener) => c.subscribe(listener)
  }
  return { clientId: connection.clientId, externalSender: connection.externalSender, directory, channel, close: () => connection.close() }
}
