/**
 * A large group end to end through the public API (issue 11: 10,000 members): `createMlsClient` with
 * `nodeCrypto()`, in-process Directory and Group Channel (memory server store, memory transport), SQLite
 * client stores for the measured clients.
 *
 * 1. `size - 2` other members register and publish one KeyPackage each, then close (they are in the tree and
 *    never speak, as most members of a large group at any one moment; memory client stores).
 * 2. Alice creates the group and adds Bob and the others with `addUsers()` in batches of `batch` users; Bob
 *    (`autoSync: false`) joins from the first Welcome and processes every later commit with `sync()`.
 * 3. Timed once each at full size: `update()`, Bob processing it, `addUsers()` of one joiner, the joiner's
 *    join from the Welcome (`processWelcomes()`), `send()` and Bob receiving it.
 * 4. Memory: the process's heap after a full GC with the server and the three clients, the bytes each
 *    client's store holds for the group (what it loads on restart), and the server store's payload bytes
 *    (log messages and Welcome copies; its peak over the run).
 *
 * The server's KeyPackage fetch budget is raised for the run (one `fetchKeyPackages` per added user; the
 * default 60 a minute would make the adds wait for hours).
 *
 * Environment: MLS_LARGE_SIZE (default 10,000), MLS_LARGE_BATCH (default 500). Run with
 * `--expose-gc`; the `bench:large` script does. `runLarge` is what the smoke test calls at a few members.
 */
import { mkdtempSync, rmSync, statSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createMlsClient, type MlsClient } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { createServices } from '@mls/server'
import { memoryClientStore, memoryServerStore } from '@mls/storage-memory'
import { sqliteClientStore } from '@mls/storage-sqlite'
import { memoryTransport } from '@mls/transport-memory'

export const largeOperations = ['update()', 'process a commit (sync())', 'addUsers() one member', 'join from the Welcome', 'send()', 'receive one message (sync())'] as const
export type LargeOperation = (typeof largeOperations)[number]

/** What one run measured. */
export interface LargeResult {
  size: number
  /** ms for each operation, once at full size. */
  timings: Record<LargeOperation, number>
  /** Setup phases in seconds. */
  setup: { members: number; adds: number }
  /** Heap used after a full GC, in MiB, with the server and three clients holding the group. */
  heapMiB: number
  /** Bytes of each measured client's SQLite database (with its WAL). */
  storeBytes: Record<'alice' | 'bob' | 'joiner', number>
  /**
   * The server store's payload bytes (log messages and stored Welcome copies), the most after any batch or
   * at the end, and the Welcome copies it holds at the end (one per commit that added members).
   */
  serverStore: { peakBytes: number; welcomeBytes: number; welcomeCopies: number }
  epoch: bigint
}

const collectGarbage = (globalThis as { gc?: () => void }).gc
const mib = (bytes: number) => bytes / (1024 * 1024)

function databaseBytes(dir: string, name: string): number {
  return readdirSync(dir)
    .filter((file) => file.startsWith(`${name}.sqlite`))
    .reduce((sum, file) => sum + statSync(join(dir, file)).size, 0)
}

export async function runLarge(options: { size: number; batch: number; log?: (line: string) => void }): Promise<LargeResult> {
  const log = options.log ?? (() => {})
  const dir = mkdtempSync(join(tmpdir(), 'mls-bench-large-'))
  try {
    const crypto = nodeCrypto()
    // One client fetches a KeyPackage of every member: at the default budget (60 fetches a minute, burst 120)
    // adding 10,000 members takes about 165 minutes of waiting, so the bench raises it.
    const serverStore = memoryServerStore()
    let peakServerBytes = 0
    const serverBytes = () => {
      const welcomeBytes = serverStore.rawWelcomes().reduce((n, w) => n + w.length, 0)
      const total = welcomeBytes + serverStore.rawLogMessages().reduce((n, m) => n + m.length, 0)
      peakServerBytes = Math.max(peakServerBytes, total)
      return { total, welcomeBytes }
    }
    const services = createServices({ store: serverStore, crypto, limits: { fetchesPerMinute: 1_000_000, fetchBurst: 1_000_000 } })
    const transport = memoryTransport({ services })
    const sqlite = (name: string) => sqliteClientStore({ path: join(dir, `${name}.sqlite`) })
    const client = (userId: string, store = sqlite(userId), autoSync = true): Promise<MlsClient> =>
      createMlsClient({ userId, deviceId: 'phone', crypto, store, transport, autoSync })

    let started = performance.now()
    const alice = await client('alice')
    const bob = await client('bob', sqlite('bob'), false)
    await bob.publishKeyPackages({ count: 1 })
    const joiner = await client('joiner', sqlite('joiner'), false)
    await joiner.publishKeyPackages({ count: 1 })
    const others: string[] = []
    for (let i = 0; i < options.size - 2; i++) {
      const other = await client(`member-${i}`, memoryClientStore({ name: `member-${i}` }))
      await other.publishKeyPackages({ count: 1 })
      await other.close()
      others.push(other.userId)
      if ((i + 1) % 1000 === 0) log(`  ${i + 1} members registered (${((performance.now() - started) / 1000).toFixed(0)} s, heap ${mib(process.memoryUsage().heapUsed).toFixed(0)} MiB)`)
    }
    const membersSeconds = (performance.now() - started) / 1000

    started = performance.now()
    const group = await alice.createGroup()
    const everyone = ['bob', ...others]
    for (let i = 0; i < everyone.length; i += options.batch) {
      const outcome = await alice.addUsers(group, everyone.slice(i, i + options.batch))
      if (outcome.kind !== 'committed') throw new Error(`adding members ${i}..: ${outcome.kind}`)
      await bob.sync()
      const bobs = bob.group(group.groupId)
      if (bobs === undefined || bobs.epoch !== group.epoch) throw new Error(`Bob is not at epoch ${group.epoch} after adding members ${i}..`)
      collectGarbage?.()
      const memory = process.memoryUsage()
      const stored = serverBytes()
      log(
        `  ${Math.min(i + options.batch, everyone.length) + 1} in the group, epoch ${group.epoch} (${((performance.now() - started) / 1000).toFixed(0)} s; after GC: heap ${mib(memory.heapUsed).toFixed(0)} MiB, array buffers ${mib(memory.arrayBuffers).toFixed(0)} MiB, RSS ${mib(memory.rss).toFixed(0)} MiB; server store ${mib(stored.total).toFixed(1)} MiB, of it Welcomes ${mib(stored.welcomeBytes).toFixed(1)} MiB)`
      )
    }
    const addsSeconds = (performance.now() - started) / 1000
    const bobs = bob.group(group.groupId)!
    if (bobs.members().length !== options.size) throw new Error(`Bob sees ${bobs.members().length} members, not ${options.size}`)

    const timings = {} as Record<LargeOperation, number>
    const time = async (op: LargeOperation, run: () => Promise<void>) => {
      collectGarbage?.()
      const at = performance.now()
      await run()
      timings[op] = performance.now() - at
      log(`  ${op}: ${timings[op].toFixed(0)} ms`)
    }
    await time('update()', async () => {
      const outcome = await group.update()
      if (outcome.kind !== 'committed') throw new Error(`update: ${outcome.kind}`)
    })
    await time('process a commit (sync())', () => bob.sync())
    if (bobs.epoch !== group.epoch) throw new Error('Bob did not process the commit')
    await time('addUsers() one member', async () => {
      const outcome = await alice.addUsers(group, ['joiner'])
      if (outcome.kind !== 'committed') throw new Error(`addUsers: ${outcome.kind}`)
    })
    await time('join from the Welcome', async () => {
      const joined = await joiner.processWelcomes()
      if (joined.length !== 1) throw new Error('the joiner did not join')
    })
    await bob.sync()
    const joiners = joiner.group(group.groupId)!
    if (joiners.epoch !== group.epoch || bobs.epoch !== group.epoch) throw new Error('the joiner and Bob are not at the epoch of the add')
    if (joiners.members().length !== options.size + 1) throw new Error(`the joiner sees ${joiners.members().length} members`)
    let received = 0
    bobs.on('message:received', () => received++)
    await time('send()', async () => void (await group.send('hello, everyone')))
    await time('receive one message (sync())', () => bob.sync())
    if (received !== 1) throw new Error(`Bob received ${received} messages, expected 1`)
    if (toHexString(bobs.epochAuthenticator()) !== toHexString(group.epochAuthenticator())) throw new Error('Alice and Bob disagree on the epoch')
    if (toHexString(joiners.epochAuthenticator()) !== toHexString(group.epochAuthenticator())) throw new Error('Alice and the joiner disagree on the epoch')

    collectGarbage?.()
    const heapMiB = mib(process.memoryUsage().heapUsed)
    const epoch = group.epoch
    for (const c of [alice, bob, joiner]) await c.close()
    const storeBytes = { alice: databaseBytes(dir, 'alice'), bob: databaseBytes(dir, 'bob'), joiner: databaseBytes(dir, 'joiner') }
    const { welcomeBytes } = serverBytes()
    const serverStoreResult = { peakBytes: peakServerBytes, welcomeBytes, welcomeCopies: serverStore.rawWelcomes().length }
    return { size: options.size, timings, setup: { members: membersSeconds, adds: addsSeconds }, heapMiB, storeBytes, serverStore: serverStoreResult, epoch }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function toHexString(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex')
}

export async function run(): Promise<void> {
  const size = Number.parseInt(process.env.MLS_LARGE_SIZE ?? '10000', 10)
  const batch = Number.parseInt(process.env.MLS_LARGE_BATCH ?? '500', 10)
  console.log(`Node ${process.version}; ${size} members through createMlsClient + nodeCrypto (SQLite stores for the measured clients), adds in batches of ${batch}`)
  const result = await runLarge({ size, batch, log: (line) => console.log(line) })
  console.log(`\n| operation at ${size} members (ms, one run) | ms |`)
  console.log('| --- | ---: |')
  for (const op of largeOperations) console.log(`| ${op} | ${result.timings[op].toFixed(0)} |`)
  console.log(`\nsetup: members registered in ${result.setup.members.toFixed(0)} s, added in ${result.setup.adds.toFixed(0)} s; epoch ${result.epoch}`)
  console.log(`heap after GC (server with the group's log + three clients): ${result.heapMiB.toFixed(1)} MiB; peak RSS ${mib(process.resourceUsage().maxRSS * 1024).toFixed(0)} MiB`)
  console.log(`client stores: alice ${mib(result.storeBytes.alice).toFixed(1)} MiB, bob ${mib(result.storeBytes.bob).toFixed(1)} MiB, joiner ${mib(result.storeBytes.joiner).toFixed(1)} MiB`)
  console.log(
    `server store: peak ${mib(result.serverStore.peakBytes).toFixed(1)} MiB of log messages and Welcomes; ${result.serverStore.welcomeCopies} stored Welcome copies, ${mib(result.serverStore.welcomeBytes).toFixed(1)} MiB`
  )
}

if (process.argv[1]?.endsWith('large.js') === true) await run()
