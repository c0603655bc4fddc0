import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { flushSqliteClientStore, sqliteClientStore } from '../src/index.js'
import { crashRounds } from './crash-check.js'
import { logKey, valueOf } from './client-crash-plan.js'
import { fileBytes, removeDir, tempDir } from './helpers.js'

const here = dirname(fileURLToPath(import.meta.url))
const packageDir = join(here, '..')
const ROUNDS = crashRounds(6)

/** The child imports the built package (plain Node runs no TypeScript). */
function buildPackage(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  try {
    execFileSync(process.execPath, [tsc, '--build', packageDir], { stdio: 'pipe' })
  } catch (error) {
    if (!existsSync(join(packageDir, 'dist', 'index.js'))) throw error
  }
}

/** Run the child until it acknowledged `killAfter` writes (plus 0-3 ms), SIGKILL it; the last write it acknowledged. */
async function runUntilKilled(path: string, synchronous: string, secureDeletion: string, durability: string, killAfter: number): Promise<number> {
  const child = spawn(process.execPath, [join(here, 'client-crash-child.js'), path, synchronous, secureDeletion, durability], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  let buffered = ''
  let seen = 0
  let last = 0
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)))
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    let newline: number
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline)
      buffered = buffered.slice(newline + 1)
      const [kind, n = ''] = line.split(' ')
      if (kind === 'write') last = Number(n)
      else if (kind !== 'ready') throw new Error(`Unexpected line from the child: ${line}`)
      if (kind === 'write' && ++seen === killAfter) setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 4))
    }
  })
  const signal = await exited
  if (signal !== 'SIGKILL') throw new Error(`The child exited on its own (${String(signal)}): ${stderr}`)
  return last
}

describe('client store crash consistency (SIGKILL during a stream of deleting writes)', () => {
  const dir = tempDir('client-crash')
  const path = join(dir, 'client.db')
  beforeAll(() => buildPackage())
  afterAll(() => removeDir(dir))

  it(`keeps every acknowledged write whole, and removes deleted values after reopening, over ${ROUNDS} kills`, async () => {
    let acknowledged = 0
    for (let round = 0; round < ROUNDS; round++) {
      // A process kill leaves the OS cache intact, so both synchronous modes must pass; both secure deletion modes too.
      const synchronous = round % 2 === 0 ? 'full' : 'normal'
      const secureDeletion = round % 4 < 2 ? 'background' : 'immediate'
      // Relaxed writes skip the sync, not the write: a process kill loses none of them either.
      const durability = ['strict', 'relaxed', 'mixed'][round % 3]!
      acknowledged = await runUntilKilled(path, synchronous, secureDeletion, durability, 5 + Math.floor(Math.random() * 150))
      const store = sqliteClientStore({ path, secureDeletion })
      try {
        const stored = await store.get('counter')
        const n = Number(Buffer.from(stored ?? new Uint8Array()).toString('utf8'))
        // Every acknowledged write is there; at most the one in flight beyond it.
        expect(n).toBeGreaterThanOrEqual(acknowledged)
        expect(n).toBeLessThanOrEqual(acknowledged + 1)
        // Each write is whole: both halves of the pair and the log window are from the same write.
        expect(await store.get('pair/a')).toEqual(valueOf('pair', n))
        expect(await store.get('pair/b')).toEqual(valueOf('pair', n))
        const log = await store.list('log/')
        const expected = [n - 2, n - 1, n].filter((i) => i >= 1)
        expect(log.map((e) => e.key)).toEqual(expected.map(logKey))
        for (const entry of log) expect(entry.value).toEqual(valueOf('log', Number(entry.key.slice(4))))
        // The kill may have cut a checkpoint short: after reopening and flush(), what was overwritten or deleted is gone.
        await flushSqliteClientStore(store)
        const raw = fileBytes(path)
        expect(contains(raw, valueOf('pair', n - 1))).toBe(false)
        if (n > 3) expect(contains(raw, valueOf('log', n - 3))).toBe(false)
        expect(contains(raw, valueOf('pair', n))).toBe(true)
      } finally {
        await store.close()
      }
    }
    expect(acknowledged).toBeGreaterThan(ROUNDS * 5 - 1)
  }, Math.max(120_000, ROUNDS * 10_000))
})

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack.buffer, haystack.byteOffset, haystack.byteLength).includes(Buffer.from(needle))
}
