import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { StorageError } from '@mls/contracts'
import { checkIdentifier } from './database.js'

/** What one server instance appended (the shape `@mls/server`'s `InstanceBus` carries). */
export type InstanceNotice =
  | {
      /** A log entry was appended to a group. */
      readonly type: 'entry'
      /** The group, hex. */
      readonly groupId: string
      /** The entry's log seq. */
      readonly seq: number
    }
  | {
      /** A Welcome was put in a client's mailbox. */
      readonly type: 'welcome'
      /** The mailbox owner. */
      readonly clientId: string
      /** The Welcome's mailbox seq. */
      readonly seq: number
    }

/** What `postgresInstanceBus` needs. */
export interface PostgresInstanceBusInit {
  /** The database the instances share (the store's). */
  connectionString: string
  /** The LISTEN/NOTIFY channel. Default `mls_appended`. */
  channel?: string
  /** Told when the listening connection fails or is re-established (for logs). */
  onStateChange?: (state: 'listening' | 'reconnecting', error?: unknown) => void
}

/** An `InstanceBus` (of `@mls/server`) over PostgreSQL LISTEN/NOTIFY, with stats and `close`. */
export interface PostgresInstanceBus {
  /** This instance's id, carried in its notices so that it ignores its own. */
  readonly instanceId: string
  /** Tell the other instances (one `pg_notify`, after the append committed). */
  publish(notice: InstanceNotice): void
  /** Receive the other instances' notices; returns the unsubscribe function. */
  subscribe(listener: (notice: InstanceNotice) => void): () => void
  /** Notices published and received so far (for tests and metrics). */
  stats(): {
    /** Notices this instance published. */
    published: number
    /** Notices received from other instances. */
    received: number
    /** Publishes that failed (the clients catch up from their cursors). */
    publishFailures: number
  }
  /** Stop listening and close the connections. */
  close(): Promise<void>
}

interface Wire {
  i: string
  t: 'e' | 'w'
  k: string
  s: number
}

function decode(payload: string | undefined): (InstanceNotice & { from: string }) | undefined {
  try {
    const w = JSON.parse(payload ?? '') as Wire
    if (typeof w.i !== 'string' || typeof w.k !== 'string' || !Number.isSafeInteger(w.s)) return undefined
    if (w.t === 'e') return { type: 'entry', groupId: w.k, seq: w.s, from: w.i }
    if (w.t === 'w') return { type: 'welcome', clientId: w.k, seq: w.s, from: w.i }
  } catch {
    // not ours
  }
  return undefined
}

/**
 * Fan-out between server instances over PostgreSQL LISTEN/NOTIFY. Each
 * `publish` is its own `pg_notify` statement outside any transaction, sent
 * after the store's append transaction committed: a NOTIFY inside the append
 * transaction would take PostgreSQL's global notify lock at every commit and
 * serialize all committing transactions. One dedicated connection LISTENs; it
 * reconnects with backoff when it drops (pushes missed meanwhile are caught up
 * by the clients from their cursors). Notices are tiny (`{instance, kind,
 * key, seq}`, far below NOTIFY's 8000-byte limit): receivers read the entry
 * itself from the store.
 */
export async function postgresInstanceBus(init: PostgresInstanceBusInit): Promise<PostgresInstanceBus> {
  const channel = checkIdentifier(init.channel ?? 'mls_appended', 'channel')
  const instanceId = randomUUID()
  const listeners = new Set<(notice: InstanceNotice) => void>()
  // One publishing connection: notices leave in the order they were published.
  const publisher = new pg.Pool({ connectionString: init.connectionString, max: 1 })
  publisher.on('error', () => undefined)
  const counts = { published: 0, received: 0, publishFailures: 0 }
  let closed = false
  let listener: pg.Client | undefined
  let retryTimer: ReturnType<typeof setTimeout> | undefined
  let delay = 100

  async function listen(): Promise<void> {
    const client = new pg.Client({ connectionString: init.connectionString })
    client.on('notification', (message) => {
      if (message.channel !== channel) return
      const notice = decode(message.payload)
      if (notice === undefined || notice.from === instanceId) return
      counts.received++
      const { from: _from, ...rest } = notice
      for (const l of [...listeners]) {
        try {
          l(rest as InstanceNotice)
        } catch {
          // a failing listener must not affect the others
        }
      }
    })
    const lost = (error?: unknown): void => {
      if (listener !== client || closed) return
      listener = undefined
      client.end().catch(() => undefined)
      init.onStateChange?.('reconnecting', error)
      retryTimer = setTimeout(() => {
        retryTimer = undefined
        listen().catch((e: unknown) => lost(e))
      }, delay)
      delay = Math.min(delay * 2, 5_000)
    }
    client.on('error', lost)
    client.on('end', () => lost())
    listener = client
    await client.connect()
    await client.query(`LISTEN ${channel}`)
    delay = 100
    init.onStateChange?.('listening')
  }

  try {
    await listen()
  } catch (error) {
    await publisher.end().catch(() => undefined)
    await listener?.end().catch(() => undefined)
    throw new StorageError('STORAGE_IO', `Cannot LISTEN on ${channel}: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
  }

  return {
    instanceId,
    publish(notice) {
      if (closed) return
      const wire: Wire =
        notice.type === 'entry' ? { i: instanceId, t: 'e', k: notice.groupId, s: notice.seq } : { i: instanceId, t: 'w', k: notice.clientId, s: notice.seq }
      counts.published++
      publisher.query('SELECT pg_notify($1, $2)', [channel, JSON.stringify(wire)]).catch(() => {
        counts.publishFailures++
      })
    },
    subscribe(l) {
      listeners.add(l)
      return () => listeners.delete(l)
    },
    stats: () => ({ ...counts }),
    async close() {
      if (closed) return
      closed = true
      clearTimeout(retryTimer)
      listeners.clear()
      const client = listener
      listener = undefined
      await Promise.all([client?.end().catch(() => undefined), publisher.end().catch(() => undefined)])
    }
  }
}
