import { createRequire } from 'node:module'
import { resolve } from 'node:path'
import { Worker } from 'node:worker_threads'
import type { SynchronousMode } from './database.js'

/**
 * The worker's code, run with `eval: true` so the package ships no second
 * entry file (it works the same from `src/` under a test runner and from
 * `dist/`). It opens its own better-sqlite3 connection on the store's file and
 * answers each `{ id }` with one checkpoint: PASSIVE first (copies the WAL
 * into the main file and fsyncs it without taking the writer lock), then
 * TRUNCATE (takes the writer lock only to copy what was committed meanwhile,
 * reset the WAL and truncate it to zero bytes).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const Database = require(workerData.driver)
let db
parentPort.on('message', (message) => {
  if (message.type === 'close') {
    try { if (db !== undefined) db.close() } catch {}
    parentPort.close()
    return
  }
  try {
    if (db === undefined) {
      db = new Database(workerData.path, { timeout: workerData.busyTimeoutMs, fileMustExist: true })
      db.pragma('synchronous = ' + workerData.synchronous)
    }
    db.pragma('wal_checkpoint(PASSIVE)')
    const result = db.pragma('wal_checkpoint(TRUNCATE)')
    parentPort.postMessage({ id: message.id, busy: result[0].busy !== 0 })
  } catch (error) {
    parentPort.postMessage({ id: message.id, error: String(error && error.message ? error.message : error) })
  }
})
`

interface Reply {
  id: number
  busy?: boolean
  error?: string
}

/** A checkpoint starts once deleting writes have paused this long (ms)... */
export const CHECKPOINT_QUIET_MS = 10
/** ...or at the latest this long (ms) after the first deleting write it covers. */
export const CHECKPOINT_MAX_DELAY_MS = 100

/**
 * Runs the truncating WAL checkpoints that complete secure deletion in a
 * worker thread with its own connection, so a deleting `write` resolves
 * after its commit alone. Requests are coalesced: a checkpoint starts when
 * deleting writes pause for `CHECKPOINT_QUIET_MS`, or `CHECKPOINT_MAX_DELAY_MS`
 * after the first one it covers (a burst of writes pays for one checkpoint,
 * and its syncs and writer lock do not land between the burst's commits); at
 * most one runs at a time. `flush()` starts one at once.
 *
 * Generations: every deleting write takes the next number (`request`); a
 * checkpoint that started after write n and ended with the WAL truncated
 * proves writes up to n are gone from the files (everything committed before
 * the TRUNCATE is in the main file, where secure_delete zeroed it, and the
 * WAL is empty).
 */
export class WalCheckpointer {
  private worker: Worker | undefined
  private requested = 0
  private completed = 0
  private nextId = 1
  private running: Promise<void> | undefined
  private readonly replies = new Map<number, { resolve(reply: Reply): void; reject(error: unknown): void }>()
  private closed = false
  private failure: unknown = undefined
  private timer: ReturnType<typeof setTimeout> | undefined
  private firstWaiting = 0

  /**
   * `driver`: the better-sqlite3 module the worker loads (tests give a broken
   * one to exercise the fallback).
   */
  constructor(
    private readonly path: string,
    private readonly synchronous: SynchronousMode,
    private readonly busyTimeoutMs: number,
    private readonly driver: string = createRequire(import.meta.url).resolve('better-sqlite3')
  ) {}

  /**
   * True once a checkpoint failed (the worker could not start, open the file
   * or checkpoint): the store then truncates on its own connection before
   * each deleting call resolves, as in `immediate` mode.
   */
  get broken(): boolean {
    return this.failure !== undefined
  }

  /** True when every deletion committed so far is known to be gone from the files. */
  get clean(): boolean {
    return this.completed === this.requested
  }

  /** The generation of the last deleting write so far (what a `flush()` starting now must cover). */
  get latest(): number {
    return this.requested
  }

  /**
   * Start the checkpoint now if one is waiting for its delay, then wait until
   * the deletions up to `generation` are gone or no checkpoint runs; true when
   * they are gone.
   */
  async reach(generation: number): Promise<boolean> {
    while (this.completed < generation) {
      if (this.running === undefined && this.timer !== undefined) this.kick()
      if (this.running === undefined) break
      await this.running
    }
    return this.completed >= generation
  }

  /** A deleting write committed: schedule a checkpoint (see the class comment). */
  request(): void {
    this.requested++
    this.schedule()
  }

  private schedule(): void {
    if (this.closed || this.broken) return
    const now = performance.now()
    if (this.timer === undefined) this.firstWaiting = now
    else clearTimeout(this.timer)
    const delay = Math.max(0, Math.min(CHECKPOINT_QUIET_MS, this.firstWaiting + CHECKPOINT_MAX_DELAY_MS - now))
    this.timer = setTimeout(() => this.kick(), delay)
  }

  /** Mark everything requested so far as done (the caller truncated the WAL itself). */
  markClean(): void {
    this.completed = this.requested
  }

  /** Wait for the running checkpoint (and the one it chains to), if any. */
  async idle(): Promise<void> {
    while (this.running !== undefined) await this.running
  }

  /** Wait for the running checkpoint, then stop the worker and its connection. */
  async close(): Promise<void> {
    this.closed = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    await this.idle()
    const worker = this.worker
    this.worker = undefined
    if (worker === undefined) return
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()))
    worker.ref()
    worker.postMessage({ type: 'close' })
    await exited
  }

  private kick(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    if (this.running !== undefined || this.closed || this.broken || this.clean) return
    const generation = this.requested
    this.running = this.checkpoint().then(
      (busy) => {
        this.running = undefined
        if (busy) return // another connection holds an old snapshot: retried at the next deletion, flush() or close()
        this.completed = Math.max(this.completed, generation)
        if (!this.clean && this.timer === undefined) this.schedule()
      },
      (error: unknown) => {
        // The commits are durable; the store falls back to truncating on its own connection.
        this.failure = error ?? new Error('The checkpoint failed')
        this.running = undefined
      }
    )
  }

  private checkpoint(): Promise<boolean> {
    const worker = this.start()
    const id = this.nextId++
    worker.ref()
    return new Promise<Reply>((resolve, reject) => {
      this.replies.set(id, { resolve, reject })
      worker.postMessage({ id })
    }).then(
      (reply) => {
        if (this.replies.size === 0) worker.unref()
        if (reply.error !== undefined) throw new Error(reply.error)
        return reply.busy === true
      },
      (error: unknown) => {
        throw error
      }
    )
  }

  private start(): Worker {
    if (this.worker !== undefined) return this.worker
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { driver: this.driver, path: resolve(this.path), synchronous: this.synchronous === 'full' ? 'FULL' : 'NORMAL', busyTimeoutMs: this.busyTimeoutMs }
    })
    worker.unref()
    worker.on('message', (reply: Reply) => {
      const waiting = this.replies.get(reply.id)
      this.replies.delete(reply.id)
      waiting?.resolve(reply)
    })
    const fail = (error: unknown): void => {
      if (this.worker === worker) this.worker = undefined
      for (const waiting of this.replies.values()) waiting.reject(error)
      this.replies.clear()
    }
    worker.on('error', fail)
    worker.on('exit', (code) => fail(new Error(`The checkpoint worker exited (${code})`)))
    this.worker = worker
    return worker
  }
}
