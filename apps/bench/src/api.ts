/**
 * What a user gets through the public API: `createMlsClient` with `nodeCrypto()`, a SQLite client store
 * (a file in a temporary directory) and the Directory and Group Channel in process (memory server store,
 * memory transport). At 10, 100 and 1,000 members (10,000 with `--large`; MLS_BENCH_API_SIZES overrides):
 * `send()` end to end, receiving one message (`sync()`), `update()`, processing a commit (`sync()`),
 * `addUsers()` with one user, and joining from the Welcome (`processWelcomes()`). Each round sends three
 * messages (each received before the next), then commits; the message medians are over all of them.
 * MLS_BENCH_SYNCHRONOUS=normal opens the SQLite client stores with `synchronous: 'normal'`.
 *
 * The measured clients are Alice (creator, committer, sender), Bob (a member who receives) and one joiner
 * per added user; Bob and the joiners run with `autoSync: false`, so what `sync()` does is what is timed.
 * The other members are real clients that register and publish one KeyPackage, then close: they are in
 * the tree and never speak, as most members of a large group at any one moment.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createMlsClient, type Group, type MlsClient } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { createServices } from '@mls/server'
import { memoryClientStore, memoryServerStore } from '@mls/storage-memory'
import { sqliteClientStore } from '@mls/storage-sqlite'
import { memoryTransport } from '@mls/transport-memory'

export const apiOperations = ['send()', 'receive one message (sync())', 'update()', 'process a commit (sync())', 'addUsers() one member', 'join from the Welcome'] as const
export type ApiOperation = (typeof apiOperations)[number]

/** One size's medians in ms. */
export interface ApiResult {
  size: number
  medians: Record<ApiOperation, number>
}

const collectGarbage = (globalThis as { gc?: () => void }).gc
const batch = 200
/**
 * The SQLite client stores' `synchronous` mode (MLS_BENCH_SYNCHRONOUS): `full` (the default) syncs the disk on
 * each strict write, so `send()` waits for one sync; `normal` survives a crash of the process but not a power loss.
 */
const synchronous = process.env.MLS_BENCH_SYNCHRONOUS === 'normal' ? 'normal' : 'full'
/** Messages sent (and received) per round, between two commits. */
const messagesPerRound = 3

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

async function measureSize(size: number, reps: number, dir: string): Promise<ApiResult> {
  const crypto = nodeCrypto()
  // Alice fetches a KeyPackage of every member: at the Directory's default budget (60 fetches a minute, burst 120)
  // setting up 1,000 members would wait about 15 minutes for tokens, which is not what is measured here.
  const services = createServices({ store: memoryServerStore(), crypto, limits: { fetchesPerMinute: 1_000_000, fetchBurst: 1_000_000 } })
  const transport = memoryTransport({ services })
  const sqlite = (name: string) => sqliteClientStore({ path: join(dir, `${size}-${name}.sqlite`), synchronous })
  const client = (userId: string, store = sqlite(userId), autoSync = true): Promise<MlsClient> =>
    createMlsClient({ userId, deviceId: 'phone', crypto, store, transport, autoSync })

  const alice = await client('alice')
  const bob = await client('bob', sqlite('bob'), false)
  await bob.publishKeyPackages({ count: 1 })
  const fillers: string[] = []
  for (let i = 0; i < size - 2; i++) {
    const filler = await client(`member-${i}`, memoryClientStore({ name: `member-${i}` }))
    await filler.publishKeyPackages({ count: 1 })
    await filler.close()
    fillers.push(filler.userId)
  }
  const joiners: MlsClient[] = []
  for (let i = 0; i < reps; i++) {
    const joiner = await client(`joiner-${i}`, sqlite(`joiner-${i}`), false)
    await joiner.publishKeyPackages({ count: 1 })
    joiners.push(joiner)
  }
  const group = await alice.createGroup()
  const everyone = ['bob', ...fillers]
  for (let i = 0; i < everyone.length; i += batch) {
    const outcome = await alice.addUsers(group, everyone.slice(i, i + batch))
    if (outcome.kind !== 'committed') throw new Error(`adding members: ${outcome.kind}`)
  }
  await bob.sync()
  const bobs: Group | undefined = bob.group(group.groupId)
  if (bobs === undefined || bobs.epoch !== group.epoch) throw new Error('Bob did not join')

  const samples = Object.fromEntries(apiOperations.map((op) => [op, [] as number[]])) as Record<ApiOperation, number[]>
  // No forced GC before each operation: a full collection between every two operations ages V8's bytecode (functions
  // run once per round get flushed and compiled again) and leaves sweeping to overlap the next one, which no
  // application does between two messages. One collection per round keeps the rounds comparable.
  const time = async (op: ApiOperation, run: () => Promise<void>) => {
    const started = performance.now()
    await run()
    samples[op].push(performance.now() - started)
  }
  let received = 0
  bobs.on('message:received', () => received++)
  for (let i = 0; i < reps; i++) {
    collectGarbage?.()
    // Messages come several to an epoch: the first after a commit also derives the sender's leaf in the new
    // epoch's secret tree (O(log n)), the others only advance its ratchet. Each is timed.
    for (let k = 0; k < messagesPerRound; k++) {
      await time('send()', async () => void (await group.send(`message ${i}.${k}`)))
      await time('receive one message (sync())', () => bob.sync())
    }
    if (received !== (i + 1) * messagesPerRound) throw new Error(`Bob received ${received} messages, expected ${(i + 1) * messagesPerRound}`)
    await time('update()', async () => {
      const outcome = await group.update()
      if (outcome.kind !== 'committed') throw new Error(`update: ${outcome.kind}`)
    })
    await time('process a commit (sync())', () => bob.sync())
    if (bobs.epoch !== group.epoch) throw new Error('Bob did not process the commit')
    await time('addUsers() one member', async () => {
      const outcome = await alice.addUsers(group, [joiners[i]!.userId])
      if (outcome.kind !== 'committed') throw new Error(`addUsers: ${outcome.kind}`)
    })
    await time('join from the Welcome', async () => {
      const joined = await joiners[i]!.processWelcomes()
      if (joined.length !== 1) throw new Error('the joiner did not join')
    })
    await bob.sync()
  }
  for (const c of [alice, bob, ...joiners]) await c.close()
  return { size, medians: Object.fromEntries(apiOperations.map((op) => [op, median(samples[op])])) as Record<ApiOperation, number> }
}

/** Measure every size (a fresh server and clients per size); prints one table. */
export async function runApi(options: { sizes: number[]; reps: number; print?: boolean }): Promise<ApiResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'mls-bench-api-'))
  try {
    const results: ApiResult[] = []
    for (const size of options.sizes) results.push(await measureSize(size, options.reps, dir))
    if (options.print !== false) {
      const format = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2))
      console.log(`\n| operation (median ms) | ${results.map((r) => `n=${r.size}`).join(' | ')} |`)
      console.log(`| --- | ${results.map(() => '---:').join(' | ')} |`)
      for (const op of apiOperations) console.log(`| ${op} | ${results.map((r) => format(r.medians[op])).join(' | ')} |`)
    }
    return results
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function run(): Promise<void> {
  const large = process.argv.includes('--large') || process.env.MLS_BENCH_LARGE === '1'
  const sizes = (process.env.MLS_BENCH_API_SIZES ?? (large ? '10,100,1000,10000' : '10,100,1000')).split(',').map((s) => Number.parseInt(s, 10))
  const reps = Number.parseInt(process.env.MLS_BENCH_REPS ?? '5', 10)
  console.log(`Node ${process.version}; ${reps} runs per cell; createMlsClient + nodeCrypto + SQLite client store (synchronous: '${synchronous}') + in-process services`)
  await runApi({ sizes, reps })
}
