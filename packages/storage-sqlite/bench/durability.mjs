// Throughput of acceptances under each synchronous mode, on a file in the OS
// temp folder (or BENCH_DIR). Run after a build:
//   pnpm --filter @mls/storage-sqlite bench            (defaults: 2000 ops, 3 runs)
//   BENCH_OPS=5000 BENCH_RUNS=5 BENCH_DIR=/data node bench/durability.mjs
// Prints one line per (mode, operation) with the median ops/s of the runs.
import console from 'node:console'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import process from 'node:process'
import { sqliteClientStore, sqliteServerStore } from '../dist/index.js'

const OPS = Number(process.env.BENCH_OPS ?? 2000)
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const dir = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 'mls-sqlite-bench-'))
const bytes = (n, seed) => new Uint8Array(n).map((_, i) => (i * 31 + seed) & 0xff)
let fileCounter = 0
const fresh = () => join(dir, `bench-${++fileCounter}.db`)

async function timed(fn) {
  const start = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - start) / 1e9
}

const benches = {
  // appendCommit with a 2 KiB commit, a 10-member roster and one 4 KiB Welcome.
  async appendCommit(synchronous) {
    const store = sqliteServerStore({ path: fresh(), synchronous })
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
    return seconds
  },
  // appendMessage with a 1 KiB application message.
  async appendMessage(synchronous) {
    const store = sqliteServerStore({ path: fresh(), synchronous })
    await store.createGroup({ groupId: 'aa', epoch: 0n, lastSeq: 0, roster: [], access: [] })
    const seconds = await timed(async () => {
      for (let i = 0; i < OPS; i++) {
        await store.appendMessage('aa', { kind: 'application', epoch: 0n, sender: 'user0/phone', message: bytes(1024, i), digest: `m${i}` })
      }
    })
    await store.close()
    return seconds
  },
  // consumeKeyPackage of a 1 KiB one-time KeyPackage: delete + served ref + WAL truncation (secure deletion).
  async consumeKeyPackage(synchronous) {
    const store = sqliteServerStore({ path: fresh(), synchronous })
    const records = Array.from({ length: OPS }, (_, i) => ({ ref: `r${i}`, clientId: 'b/p', keyPackage: bytes(1024, i), lastResort: false, notAfter: 2e9 }))
    await store.addKeyPackages('b/p', records, undefined)
    const seconds = await timed(async () => {
      for (let i = 0; i < OPS; i++) await store.consumeKeyPackage('b/p', 1e9)
    })
    await store.close()
    return seconds
  },
  // Client store: put a new 4 KiB value (nothing deleted, no WAL truncation).
  async clientPutNew(synchronous) {
    const store = sqliteClientStore({ path: fresh(), synchronous })
    const seconds = await timed(async () => {
      for (let i = 0; i < OPS; i++) await store.write([{ type: 'put', key: `k/${i}`, value: bytes(4096, i) }])
    })
    await store.close()
    return seconds
  },
  // Client store: overwrite one 4 KiB value (the old bytes are overwritten: the WAL truncation runs in a
  // worker thread after each write resolves; the time includes the final close(), which waits for it).
  async clientOverwrite(synchronous) {
    return overwrite(synchronous, 'background')
  },
  // The same with secureDeletion 'immediate': the WAL truncation before every write resolves.
  async clientOverwriteImmediate(synchronous) {
    return overwrite(synchronous, 'immediate')
  }
}

async function overwrite(synchronous, secureDeletion) {
  const store = sqliteClientStore({ path: fresh(), synchronous, secureDeletion })
  await store.write([{ type: 'put', key: 'state', value: bytes(4096, 0) }])
  const seconds = await timed(async () => {
    for (let i = 0; i < OPS; i++) await store.write([{ type: 'put', key: 'state', value: bytes(4096, i) }])
    await store.close()
  })
  return seconds
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
console.log(`@mls/storage-sqlite durability bench: ${OPS} ops x ${RUNS} runs in ${dir}`)
try {
  for (const [name, bench] of Object.entries(benches)) {
    for (const synchronous of ['full', 'normal']) {
      const rates = []
      for (let run = 0; run < RUNS; run++) rates.push(OPS / (await bench(synchronous)))
      console.log(`${name.padEnd(24)} synchronous=${synchronous.padEnd(6)} ${Math.round(median(rates)).toString().padStart(7)} ops/s`)
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
