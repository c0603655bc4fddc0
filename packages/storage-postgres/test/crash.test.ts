import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openPostgresServerStore } from '../src/index.js'
import { G, NOW, acceptor, owner } from '../../storage-sqlite/test/crash-plan.js'
import { checkStore, crashRounds, runUntilKilled, type Acks } from '../../storage-sqlite/test/crash-check.js'
import { startCluster, type Cluster } from './cluster.js'

const here = dirname(fileURLToPath(import.meta.url))
const packageDir = join(here, '..')
const ROUNDS = crashRounds(4)
const KEY_PACKAGES = 3000

/** The child imports the built package (plain Node runs no TypeScript): build it and its references. */
function buildPackage(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  try {
    execFileSync(process.execPath, [tsc, '--build', packageDir], { stdio: 'pipe' })
  } catch (error) {
    if (!existsSync(join(packageDir, 'dist', 'index.js'))) throw error
  }
}

let cluster: Cluster
beforeAll(async () => {
  buildPackage()
  cluster = await startCluster()
}, 16 * 60_000)
afterAll(() => cluster?.stop())

describe('PostgreSQL crash consistency (SIGKILL of the store process, and of the database itself)', () => {
  const refs = Array.from({ length: KEY_PACKAGES }, (_, i) => `kp${String(i).padStart(5, '0')}`)

  it(`keeps every acknowledged acceptance exactly once, with no gap and no partial commit, over ${ROUNDS} kills`, async () => {
    const open = () => openPostgresServerStore({ connectionString: cluster.url, schema: 'crash' })
    const setup = await open()
    await setup.createGroup({ groupId: G, epoch: 0n, lastSeq: 0, roster: [{ leafIndex: 0, clientId: owner }], access: [{ clientId: owner, fromSeq: 0, untilSeq: null }] })
    await setup.addKeyPackages(
      acceptor,
      refs.map((ref) => ({ ref, clientId: acceptor, keyPackage: new Uint8Array(Buffer.from(`key-package-${ref}`)), lastResort: false, notAfter: NOW + 1 })),
      undefined
    )
    await setup.close()
    const acks: Acks = { commits: new Map(), messages: new Map(), consumed: [] }
    let total = 0
    let databaseKills = 0
    for (let round = 0; round < ROUNDS; round++) {
      // Odd rounds kill PostgreSQL itself mid-stream (then the child, which has lost its connections): crash recovery.
      const killDatabase = round % 2 === 1
      total += await runUntilKilled([join(here, 'crash-child.js'), cluster.url, String(round)], 5 + Math.floor(Math.random() * 150), acks, (child) => {
        // The child first (its signal is immediate), then the database at once, before the child could notice.
        child.kill('SIGKILL')
        if (killDatabase) {
          cluster.killServer()
          databaseKills++
        }
      })
      if (killDatabase) cluster.restart()
      const store = await open()
      try {
        await checkStore(store, acks, refs, round + 1)
      } finally {
        await store.close()
      }
    }
    expect(total).toBeGreaterThan(ROUNDS * 5 - 1)
    expect(databaseKills).toBe(Math.floor(ROUNDS / 2))
    console.log(`PostgreSQL crash: ${ROUNDS} kills (${databaseKills} of the database), ${total} acknowledged calls, none lost or duplicated`)
  }, Math.max(120_000, ROUNDS * 20_000))
})
