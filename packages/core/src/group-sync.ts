import type { ChannelEntry, GroupChannelClient } from './interfaces/channel.js'
import { MessageError, MlsToolkitError } from './errors.js'
import { noProgress } from './paging.js'
import { toHex } from './bytes.js'
import type { GroupStatus } from './group-types.js'

/** Entries asked for per fetch; the server may return fewer. */
const FETCH_PAGE = 500

/** What channel sync needs from its group; each `Promise` method runs under the group's lock. */
export interface SyncTarget {
  /** The group whose log is read. */
  readonly groupId: Uint8Array
  /** Position of the last entry the group processed. */
  cursor(): number
  /** The group's state. */
  status(): GroupStatus
  /**
   * Process `entry` if it is the next one (and the group is not `failed`).
   * Resolves `true` when the entry is processed or already behind the cursor,
   * `false` when the group is not at it yet.
   */
  applyNext(entry: ChannelEntry): Promise<boolean>
  /** `failed` → `active` by rejoining; leaves the group `failed` if it cannot yet. */
  rejoin(): Promise<void>
  /** The head of the log was reached (`joining` → `active`). */
  caughtUp(): Promise<void>
  /** The channel deleted entries after the cursor (`CURSOR_EXPIRED`, log retention): the group must rejoin. */
  cursorExpired(cause: MlsToolkitError): Promise<void>
}

/**
 * Keeps one group in step with its channel log: pushed entries are processed
 * at once when they are the next one; anything else (a gap, a restart, a
 * reconnect) reads the log from the cursor to its head. Concurrent requests
 * share one run, repeated once if a request came in while it ran.
 */
export class ChannelSync {
  private running: Promise<void> | undefined
  private again = false

  constructor(
    private readonly target: SyncTarget,
    private readonly channel: GroupChannelClient
  ) {}

  /** Fetch and process everything the channel holds after the cursor. */
  sync(): Promise<void> {
    if (this.running !== undefined) {
      this.again = true
      return this.running
    }
    this.running = (async () => {
      try {
        do {
          this.again = false
          await this.pull()
        } while (this.again)
      } finally {
        this.running = undefined
      }
    })()
    return this.running
  }

  /** A pushed entry: processed at once when it is the next one, otherwise triggers a sync. */
  async deliver(entry: ChannelEntry): Promise<void> {
    if (entry.seq <= this.target.cursor()) return
    if (entry.seq === this.target.cursor() + 1 && this.running === undefined) {
      const processed = await this.target.applyNext(entry)
      // A group that just failed recovers through sync (`pull` rejoins first).
      if (processed && this.target.status() !== 'failed') return
    }
    await this.sync()
  }

  /** Sync until the entry at `seq` is processed (or the group left the log); an entry the channel does not deliver is own trouble. */
  async syncThrough(seq: number): Promise<void> {
    while (this.target.cursor() < seq && this.target.status() !== 'removed' && this.target.status() !== 'failed') {
      const before = this.target.cursor()
      await this.sync()
      if (this.target.cursor() === before) throw new MessageError('TRANSPORT_UNAVAILABLE', `The channel did not deliver entry ${seq}`)
    }
  }

  /**
   * Read the log from the cursor to its head. The head is where a page comes
   * back empty: the server may clamp a page to fewer entries than asked, so a
   * short page is not the end.
   */
  private async pull(): Promise<void> {
    for (;;) {
      if (this.target.status() === 'failed') await this.target.rejoin()
      if (this.target.status() === 'removed' || this.target.status() === 'failed') return
      const cursor = this.target.cursor()
      let entries: ChannelEntry[]
      try {
        entries = await this.channel.fetchEntries(this.target.groupId, cursor, { limit: FETCH_PAGE })
      } catch (cause) {
        // Retention deleted entries this member has not read: it cannot follow the log from its cursor, so it resyncs.
        if (!MlsToolkitError.isInstance(cause) || cause.code !== 'CURSOR_EXPIRED') throw cause
        await this.target.cursorExpired(cause)
        continue
      }
      if (entries.length === 0) return this.target.caughtUp()
      for (const entry of entries) {
        await this.target.applyNext(entry)
        if (this.target.status() === 'failed') break
      }
      // A page that moved nothing (entries seen before, a gap, seqs going backwards) would be fetched again forever.
      if (this.target.cursor() === cursor && this.target.status() !== 'failed') throw noProgress(`the log of group ${toHex(this.target.groupId)}`, cursor, entries)
    }
  }
}
