import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { sqliteServerStore } from '../src/index.js'
import { G, NOW, acceptor, owner } from './crash-plan.js'
import { checkStore, crashRounds, runUntilKilled, type Acks } from './crash-check.js'
import { removeDir, tempDir } from './helpers.js'

const here = dirname(fileURLToPath(import.meta.url))
const packageDir = join(here, '..')
const ROUNDS = crashRounds(8)
const KEY_PACKAGES = 3000

/** The child imports the built package (plain Node runs no TypeScript): build it and its references. */
function buildPackage(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  try {
    execFileSync(process.execPath, [tsc, '--build', packageDir], { stdio: 'pipe' })
  } catch (error) {
    // Another package's work in progress may fail to type-check; an emitted dist is still usable.
    if (!existsSync(join(packageDir, 'dist', 'index.js'))) throw error
  }
}

describe('crash consistency (SIGKILL during a stream of acceptances)', () => {
  const dir = tempDir('crash')
  const path = join(dir, 'server.db')
  const refs = Array.from({ length: KEY_PACKAGES }, (_, i) => `kp${String(i).padStart(5, '0')}`)

  beforeAll(async () => {
    buildPackage()
    const store = sqliteServerStore({ path })
    await store.createGroup({ groupId: G, epoch: 0n, lastSeq: 0, roster: [{ leafIndex: 0, clientId: owner }], access: [{ clientId: owner, fromSeq: 0, untilSeq: null }] })
    await store.addKeyPackages(
      acceptor,
      refs.map((ref) => ({ ref, clientId: acceptor, keyPackage: new Uint8Array(Buffer.from(`key-package-${ref}`)), lastResort: false, notAfter: NOW + 1 })),
      undefined
    )
    await store.close()
  })
  afterAll(() => removeDir(dir))

  it(`keeps every acknowledged acceptance exactly once, with no gap and no partial commit, over ${ROUNDS} kills`, async () => {
    const acks: Acks = { commits: new Map(), messages: new Map(), consumed: [] }
    let total = 0
    for (let round = 0; round < ROUNDS; round++) {
      // A process kill leaves the OS cache intact, so both synchronous modes must pass; power loss is beyond a test's reach.
      const synchronous = round % 2 === 0 ? 'full' : 'normal'
      total += await runUntilKilled([join(here, 'crash-child.js'), path, String(round), synchronous], 5 + Math.floor(Math.random() * 150), acks)
      const store = sqliteServerStore({ path })
      try {
        await checkStore(store, acks, refs, round + 1)
      } finally {
        await store.close()
      }
    }
    expect(total).toBeGreaterThan(ROUNDS * 5 - 1)
  }, Math.max(120_000, ROUNDS * 10_000))
})
