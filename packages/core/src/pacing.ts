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
  /** Cancels a wait when the connection closes; without it the wait runs out on its own. */
  clearTimeout?(handle: unknown): void
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
 * Which methods of the Directory and Group Channel clients are requests that
 * pacing holds back and retries (`true`), and which pass straight through
 * (`false`). Typed over every key of the interfaces: a method added to either
 * interface does not compile until it is listed here.
 */
const PACED_DIRECTORY: Record<keyof DirectoryClient, boolean> = {
  uploadKeyPackages: true,
  fetchKeyPackages: true,
  lookupIdentity: true,
  countKeyPackages: true,
  fetchDeviceList: true,
  publishDeviceListEntry: true
}
const PACED_CHANNEL: Record<keyof GroupChannelClient, boolean> = {
  createGroup: true,
  postCommit: true,
  postProposal: true,
  postMessage: true,
  fetchEntries: true,
  fetchGroupInfo: true,
  fetchWelcomes: true,
  subscribe: false
}

type Paced = <T>(options: AbortOptions | undefined, request: () => Promise<T>) => Promise<T>

/** The trailing `AbortOptions` argument of a request, if the caller gave one. */
function abortOptionsOf(args: readonly unknown[]): AbortOptions | undefined {
  const last = args[args.length - 1]
  return typeof last === 'object' && last !== null && 'signal' in last ? (last as AbortOptions) : undefined
}

/**
 * A view of `target` that keeps every field and method of it (read through
 * to the target at each access, methods called on the target itself), except
 * the properties `override` gives, and the methods `paced` names, which go
 * through `pace`. The proxy's own target is an empty object, so the view may
 * replace fields the original has frozen.
 */
function overlay<T extends object>(target: T, override: Partial<Record<PropertyKey, unknown>>, pacedNames: Partial<Record<PropertyKey, boolean>>, pace: Paced | undefined): T {
  // One wrapper per method as it is now: a method the app or a test replaces on the
  // original later (assigned through the view or on the original) is wrapped afresh.
  const wrappers = new Map<PropertyKey, { method: unknown; wrapper: unknown }>()
  return new Proxy(Object.create(null) as object, {
    get(_, property) {
      if (Object.hasOwn(override, property)) return override[property]
      const value: unknown = Reflect.get(target, property, target)
      if (typeof value !== 'function') return value
      const known = wrappers.get(property)
      if (known !== undefined && known.method === value) return known.wrapper
      const method = value as (...args: unknown[]) => unknown
      const wrapper =
        pace !== undefined && pacedNames[property] === true
          ? (...args: unknown[]) => pace(abortOptionsOf(args), () => method.apply(target, args) as Promise<unknown>)
          : (...args: unknown[]) => method.apply(target, args)
      wrappers.set(property, { method, wrapper })
      return wrapper
    },
    set(_, property, value) {
      // Written through to the original (the view holds no state of its own).
      return Reflect.set(target, property, value, target)
    },
    has(_, property) {
      return Object.hasOwn(override, property) || Reflect.has(target, property)
    }
  }) as T
}

/**
 * The connection, paced: at most `maxRequestsInFlight` requests outstanding,
 * and a request refused with `RATE_LIMITED` sent again after the wait the
 * server asked for. A refusal with `RATE_LIMITED` is made before the service
 * acts (the request changed nothing), so sending it again is safe for every
 * request. Everything else of the connection (`clientId`, `externalSender`,
 * `close`, subscriptions, and any field a transport adds) is the original's,
 * read through a proxy.
 */
export function pacedConnection(connection: Connection, pacing: Pacing, timers: PacingTimers): Connection {
  const semaphore = new Semaphore(pacing.maxRequestsInFlight)
  // A wait keeps the process alive (a caller awaits the request: an unref'd timer let a script
  // with nothing else pending exit in the middle of it); closing the connection ends every wait.
  const waiting = new Set<() => void>()
  let closed = false
  const wait = (delayMs: number, options: AbortOptions | undefined): Promise<void> =>
    new Promise((resolve) => {
      if (closed) return resolve()
      const timer: { handle?: unknown } = {}
      const done = (): void => {
        if (!waiting.delete(done)) return
        if (timer.handle !== undefined) timers.clearTimeout?.(timer.handle)
        resolve()
      }
      waiting.add(done)
      timer.handle = timers.setTimeout(done, delayMs)
      options?.signal?.addEventListener('abort', done, { once: true })
    })
  const paced: Paced = async <T>(options: AbortOptions | undefined, request: () => Promise<T>): Promise<T> => {
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
        if (closed) throw error
      }
    }
  }
  const directory = overlay(connection.directory, {}, PACED_DIRECTORY, paced)
  const channel = overlay(connection.channel, {}, PACED_CHANNEL, paced)
  const close = async (): Promise<void> => {
    closed = true
    for (const done of [...waiting]) done()
    await connection.close()
  }
  return overlay(connection, { directory, channel, close }, {}, undefined)
}
