import type { ServerStore } from '@mls/core/interfaces'

/** How long the Group Channel keeps application messages (docs/server.md, "Log retention"). */
export interface LogRetentionPolicy {
  /** Delete application messages older than this many seconds; 0 keeps them regardless of age. */
  readonly maxAgeSeconds: number
  /** Keep at most this many of each group's newest application messages; 0 keeps them regardless of count. */
  readonly maxMessages: number
  /**
   * The hard limit: delete application messages older than this many seconds
   * even when a current member has not fetched them (that member gets
   * `CURSOR_EXPIRED` and rejoins). 0 or omitted: no hard limit, so what a
   * current member has not fetched is kept. The age and count rules never
   * delete past the lowest fetch cursor of a group's current members.
   */
  readonly hardMaxAgeSeconds?: number
  /** Seconds between two passes (the first runs at once). */
  readonly intervalSeconds: number
  /**
   * A deleted message's digest is kept (so its replay is still refused) while
   * its epoch is within this many epochs of the group's; default 2, the
   * channel's `epochWindow` default (older epochs are refused anyway).
   */
  readonly keepDigestsForEpochs?: number
  /**
   * Welcome retention: delete mailbox Welcomes older than this many seconds
   * (a client that has not fetched it by then rejoins by external commit).
   * 0 or omitted keeps them regardless of age. A Welcome sent to several
   * recipients is stored once; the copy goes with its last mailbox row.
   */
  readonly welcomeMaxAgeSeconds?: number
  /** Keep at most this many of each client's newest mailbox Welcomes; 0 or omitted keeps them regardless of count. */
  readonly welcomeMaxPerMailbox?: number
}

/** A running retention loop. */
export interface LogRetention {
  /** One pass now: delete what the policy selects. Resolves with how many messages (and mailbox Welcomes) were deleted. */
  runOnce(): Promise<{
    /** Application messages deleted. */
    deleted: number
    /** Mailbox Welcomes deleted (0 when the policy has no Welcome rule). */
    welcomesDeleted: number
  }>
  /** Stop the loop and wait for a pass in progress. Idempotent. */
  stop(): Promise<void>
}

/** Observers of a retention loop. */
export interface LogRetentionHooks {
  /** After each pass: how many messages it deleted and how long it took. */
  onPass?(result: {
    /** Application messages deleted. */
    deleted: number
    /** Mailbox Welcomes deleted. */
    welcomesDeleted: number
    /** How long the pass took. */
    milliseconds: number
  }): void
  /** A pass failed (it is tried again at the next interval). */
  onError?(error: unknown): void
  /**
   * Called at the start of each pass, before the store prunes: e.g.
   * `services.channel.flushFetchCursors`, so the pass sees the newest fetch
   * cursors. A failure is reported through `onError` and the pass goes on
   * (cursors that were not written only keep more).
   */
  beforePass?(): Promise<void>
  /** The clock (milliseconds since the epoch); default `Date.now`. */
  now?: () => number
}

/**
 * Apply `policy` to every group's log in `store`, once at start and then every
 * `intervalSeconds`. Only application messages are deleted; commits and
 * proposals are kept so a member that was away can still follow every epoch.
 * The age and count rules keep every message after the lowest fetch cursor
 * of the group's current members; only the hard limit deletes past it. A
 * member whose cursor is before a deleted message gets `CURSOR_EXPIRED`
 * from `fetchEntries` and resyncs by external commit. With several instances
 * on one database, each may run it (PostgreSQL serializes the passes).
 */
export function startLogRetention(
  store: ServerStore,
  policy: LogRetentionPolicy,
  hooks: LogRetentionHooks = {}
): LogRetention {
  const now = hooks.now ?? Date.now
  let running: Promise<{ deleted: number; welcomesDeleted: number }> | undefined
  let stopped = false
  const runOnce = (): Promise<{ deleted: number; welcomesDeleted: number }> => {
    running ??= (async () => {
      const started = now()
      try {
        if (hooks.beforePass !== undefined) await hooks.beforePass().catch((error: unknown) => hooks.onError?.(error))
        const hard = policy.hardMaxAgeSeconds ?? 0
        const result = await store.pruneLogs({
          appendedBeforeMs: policy.maxAgeSeconds > 0 ? started - policy.maxAgeSeconds * 1000 : 0,
          keepMessages: policy.maxMessages > 0 ? policy.maxMessages : Number.MAX_SAFE_INTEGER,
          keepDigestsForEpochs: policy.keepDigestsForEpochs ?? 2,
          hardLimitBeforeMs: hard > 0 ? started - hard * 1000 : 0
        })
        const welcomeAge = policy.welcomeMaxAgeSeconds ?? 0
        const welcomeCount = policy.welcomeMaxPerMailbox ?? 0
        const welcomes =
          welcomeAge > 0 || welcomeCount > 0
            ? await store.pruneWelcomes({
                appendedBeforeMs: welcomeAge > 0 ? started - welcomeAge * 1000 : 0,
                keepWelcomes: welcomeCount > 0 ? welcomeCount : Number.MAX_SAFE_INTEGER
              })
            : { deleted: 0 }
        hooks.onPass?.({ deleted: result.deleted, welcomesDeleted: welcomes.deleted, milliseconds: now() - started })
        return { deleted: result.deleted, welcomesDeleted: welcomes.deleted }
      } finally {
        running = undefined
      }
    })()
    return running
  }
  const pass = (): void => {
    if (stopped) return
    runOnce().catch((error: unknown) => hooks.onError?.(error))
  }
  const timer = setInterval(pass, Math.max(1, policy.intervalSeconds) * 1000)
  timer.unref?.()
  pass()
  return {
    runOnce,
    stop: async () => {
      stopped = true
      clearInterval(timer)
      await running?.catch(() => undefined)
    }
  }
}
