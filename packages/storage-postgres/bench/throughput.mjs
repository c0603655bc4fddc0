// Server store throughput: memory, SQLite (file, synchronous=FULL) and
// PostgreSQL (a throwaway local cluster with fsync on), in one run, plus
// PostgreSQL shared by two processes ("instances") and the LISTEN/NOTIFY bus.
// Run after a build:
//   pnpm --filter @mls/storage-postgres bench          (defaults: 1000 ops, 3 runs)
//   BENCH_OPS=3000 BENCH_RUNS=5 node bench/throughput.mjs
// Prints one line per measurement with the median ops/s of the runs.
import { spawn } from 'node:child_process'
import console from 'node:console'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import process from 'node:process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { memoryServerStore } from '@mls/storage-memory'
import { sqliteServerStore } from '@mls/storage-sqlite'
import { openPostgresServerStore, postgresInstanceBus } from '../dist/index.js'
import { startCluster } from '../test/cluster.js'

const OPS = Number(process.env.BENCH_OPS ?? 1000)
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const CALLERS = 8
const dir = mkdtempSync(join(tmpdir(), 'mls-postgres-bench-'))
const cluster = await startCluster({ durable: true })
let counter = 0
const bytes = (n, seed) => new Uint8Array(n).map((_, i) => (i * 31 + seed) & 0xff)

const stores = {
  memory: async () => memoryServerStore(),
  sqlite: async () => sqliteServerStore({ path: join(dir, `bench-${++counter}.db`) }),
  postgres: async () => openPostgresServerStore({ connectionString: cluster.url, schema: `bench_${++counter}`, maxConnections: CALLERS })
}

async function timed(fn) {
  const start = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - start) / 1e9
}

const benches = {
  // appendCommit: a 2 KiB commit, a 10-member roster, one 4 KiB Welcome; one caller.
  async appendCommit(open) {
    const store = await open()
    const roster = Array.from({ length: 10 }, (_, i) => ({ leafIndex: i, clientId: `user${i}/phone` }))
    const access = roster.map((r) => ({ clientId: r.clientId, fromSeq: 0, untilSeq: null }))
    await store.createGroup({ groupId: 'aa', epoch: 0n, lastSeq: 0, roster, access })
    const seconds = await timed(async () => {
      for (let i = 0; i < OPS; i++) {
        const epoch = BigInt(i)
        const entry = { kind: 'commit', epoch, sender: 'user0/phone', message: bytes(2048, i), digest: `c${i}` }
        await store.appendCommit('aa', { expectedEpoch: epoch, entry, roster, access, welcomes: [{ clientId: `new${i}/phone`, welcome: bytes(4096, i) }] })
      }
    })
    await store.close()
    return OPS / seconds
  },
  // appendMessage: 1 KiB application messages; one caller.
  async appendMessage(open) {
    const store = await open()
    await store.createGroup({ groupId: 'aa', epoch: 0n, lastSeq: 0, roster: [], access: [] })
    const seconds = await timed(async () => {
      for (let i = 0; i < OPS; i++) await store.appendMessage('aa', { kind: 'application', epoch: 0n, sender: 'u/p', message: bytes(1024, i), digest: `m${i}` })
    })
    await store.close()
    return OPS / seconds
  },
  // appendMessage with 8 concurrent callers, each on its own group.
  async [`appendMessage x${CALLERS} groups`](open) {
    const store = await open()
    const groups = Array.from({ length: CALLERS }, (_, i) => `g${i}`)
    for (const groupId of groups) await store.createGroup({ groupId, epoch: 0n, lastSeq: 0, roster: [], access: [] })
    const per = Math.ceil(OPS / CALLERS)
    const seconds = await timed(() =>
      Promise.all(groups.map(async (g) => {
        for (let i = 0; i < per; i++) await store.appendMessage(g, { kind: 'application', epoch: 0n, sender: 'u/p', message: bytes(1024, i), digest: `${g}-${i}` })
      }))
    )
    await store.close()
    return (per * CALLERS) / seconds
  }
}

/** PostgreSQL appendMessage from `instances` processes at once, 8 callers each: aggregate ops/s. */
async function instances(count) {
  const url = cluster.createDatabase(`instances_${++counter}`)
  const child = fileURLToPath(new URL('./append-child.mjs', import.meta.url))
  const children = Array.from({ length: count }, (_, i) => {
    const proc = spawn(process.execPath, [child, url, `i${i}-`, String(OPS), String(CALLERS)], { stdio: ['pipe', 'pipe', 'inherit'] })
    const lines = []
    const reader = createInterface({ input: proc.stdout })
    const ready = new Promise((resolve) => reader.on('line', (l) => (l === 'ready' ? resolve() : lines.push(l))))
    const exited = new Promise((resolve) => proc.on('exit', resolve))
    return { proc, lines, ready, exited }
  })
  // Open the schema once before the children race to create it.
  await (await openPostgresServerStore({ connectionString: url, schema: 'bench' })).close()
  await Promise.all(children.map((c) => c.ready))
  const start = process.hrtime.bigint()
  for (const c of children) c.proc.stdin.end('go\n')
  await Promise.all(children.map((c) => c.exited))
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  const total = children.reduce((sum, c) => sum + Number(c.lines[0].split(' ')[1]), 0)
  return total / seconds
}

/** Notices through LISTEN/NOTIFY from one bus to another, each read back from the store like a relaying instance does. */
async function busFanOut() {
  const store = await stores.postgres()
  await store.createGroup({ groupId: 'aa', epoch: 0n, lastSeq: 0, roster: [], access: [] })
  for (let i = 0; i < 50; i++) await store.appendMessage('aa', { kind: 'application', epoch: 0n, sender: 'u/p', message: bytes(1024, i), digest: `m${i}` })
  const one = await postgresInstanceBus({ connectionString: cluster.url })
  const two = await postgresInstanceBus({ connectionString: cluster.url })
  let delivered = 0
  let done
  const finished = new Promise((resolve) => (done = resolve))
  two.subscribe((notice) => {
    store.readLog(notice.groupId, notice.seq - 1, 1).then(() => {
      if (++delivered === OPS) done()
    })
  })
  const seconds = await timed(async () => {
    for (let i = 0; i < OPS; i++) one.publish({ type: 'entry', groupId: 'aa', seq: (i % 50) + 1 })
    await finished
  })
  await Promise.all([one.close(), two.close(), store.close()])
  return OPS / seconds
}

/**
 * Why the bus notifies after the commit: 8 connections each inserting rows in
 * their own transactions, with `pg_notify` inside each transaction versus
 * right after its commit (PostgreSQL takes a global lock on the notification
 * queue at the commit of any transaction that notified).
 */
async function notifyPlacement(inside) {
  const url = cluster.createDatabase(`notify_${++counter}`)
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query('CREATE TABLE t (id bigserial primary key, body bytea)')
  await admin.end()
  const clients = await Promise.all(Array.from({ length: CALLERS }, async () => {
    const c = new pg.Client({ connectionString: url })
    await c.connect()
    return c
  }))
  const per = Math.ceil(OPS / CALLERS)
  const body = Buffer.from(bytes(1024, 1))
  const seconds = await timed(() =>
    Promise.all(clients.map(async (c, k) => {
      for (let i = 0; i < per; i++) {
        await c.query('BEGIN')
        await c.query('INSERT INTO t (body) VALUES ($1)', [body])
        if (inside) await c.query('SELECT pg_notify($1, $2)', ['bench', `${k}:${i}`])
        await c.query('COMMIT')
        if (!inside) await c.query('SELECT pg_notify($1, $2)', ['bench', `${k}:${i}`])
      }
    }))
  )
  await Promise.all(clients.map((c) => c.end()))
  return (per * CALLERS) / seconds
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const fmt = (n) => `${Math.round(n)}`.padStart(7)
try {
  console.log(`server store throughput, ${OPS} ops, median of ${RUNS} runs (PostgreSQL ${cluster.url.split('@')[1]}, fsync on; SQLite synchronous=FULL)`)
  for (const [bench, run] of Object.entries(benches)) {
    for (const [name, open] of Object.entries(stores)) {
      const results = []
      for (let r = 0; r < RUNS; r++) results.push(await run(open))
      console.log(`${bench.padEnd(28)} ${name.padEnd(10)} ${fmt(median(results))} ops/s`)
    }
  }
  for (const count of [1, 2]) {
    const results = []
    for (let r = 0; r < RUNS; r++) results.push(await instances(count))
    console.log(`${`appendMessage x${CALLERS} per process`.padEnd(28)} ${`pg ${count} proc`.padEnd(10)} ${fmt(median(results))} ops/s (all processes together)`)
  }
  for (const inside of [true, false]) {
    const results = []
    for (let r = 0; r < RUNS; r++) results.push(await notifyPlacement(inside))
    console.log(`${`insert + NOTIFY ${inside ? 'inside txn' : 'after commit'}`.padEnd(28)} ${`pg x${CALLERS}`.padEnd(10)} ${fmt(median(results))} txn/s`)
  }
  const fan = []
  for (let r = 0; r < RUNS; r++) fan.push(await busFanOut())
  console.log(`${'bus notice + read-back'.padEnd(28)} ${'pg bus'.padEnd(10)} ${fmt(median(fan))} deliveries/s (one instance to another)`)
} finally {
  cluster.stop()
  rmSync(dir, { recursive: true, force: true })
}
