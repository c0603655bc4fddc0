import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ServerStore } from '@mls/core/interfaces'
import { sqliteServerStore } from '../src/index.js'
import { G, NOW, acceptor, mailbox, membersAt, owner } from './crash-plan.js'
import { removeDir, tempDir } from './helpers.js'

const here = dirname(fileURLToPath(import.meta.url))
const packageDir = join(here, '..')
const ROUNDS = 8
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

interface Acks {
  commits: Map<bigint, { seq: number; welcomeSeqs: string }>
  messages: Map<string, number>
  consumed: string[]
}

/**
 * Run the child until it has acknowledged `killAfter` calls (plus a random few
 * milliseconds), then SIGKILL it. A process kill leaves the OS cache intact, so
 * both synchronous modes must pass; power loss is beyond a test's reach.
 */
async function runUntilKilled(path: string, round: number, killAfter: number, acks: Acks): Promise<number> {
  const synchronous = round % 2 === 0 ? 'full' : 'normal'
  const child = spawn(process.execPath, [join(here, 'crash-child.js'), path, String(round), synchronous], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  let buffered = ''
  let seen = 0
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal }))
  )
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString()
    let newline: number
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline)
      buffered = buffered.slice(newline + 1)
      const [kind, a = '', b = '', c = ''] = line.split(' ')
      if (kind === 'commit') acks.commits.set(BigInt(a), { seq: Number(b), welcomeSeqs: c })
      else if (kind === 'message') acks.messages.set(a, Number(b))
      else if (kind === 'consume') {
        if (a !== '-') acks.consumed.push(a)
      } else if (kind !== 'ready') throw new Error(`Unexpected line from the child: ${line}`)
      if (kind !== 'ready' && ++seen === killAfter) setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 4))
    }
  })
  const { signal } = await exited
  if (signal !== 'SIGKILL') throw new Error(`The child exited on its own (${String(signal)}): ${stderr}`)
  return seen
}

/** After `kills` kills, at most `kills` calls were durable without being acknowledged (one in flight per kill). */
async function checkStore(store: ServerStore, acks: Acks, refs: readonly string[], kills: number): Promise<void> {
  const group = await store.getGroup(G)
  if (group === undefined) throw new Error('The group is gone')
  const log = await store.readLog(G, 0, Number.MAX_SAFE_INTEGER)

  // No gap, nothing twice.
  expect(log.map((r) => r.seq)).toEqual(log.map((_, i) => i + 1))
  expect(group.lastSeq).toBe(log.length)
  expect(new Set(log.map((r) => r.digest)).size).toBe(log.length)

  // Every acknowledged call is there, at the seq it was acknowledged with.
  const bySeq = new Map(log.map((r) => [r.seq, r]))
  for (const [epoch, { seq }] of acks.commits) expect(bySeq.get(seq)?.digest).toBe(`commit-${epoch}`)
  for (const [digest, seq] of acks.messages) expect(bySeq.get(seq)?.digest).toBe(digest)

  // Commits form the epoch chain, and the last one is applied completely: epoch, roster, access, Welcomes.
  const commits = log.filter((r) => r.kind === 'commit')
  expect(commits.map((r) => r.epoch)).toEqual(commits.map((_, i) => BigInt(i)))
  const epoch = BigInt(commits.length)
  expect(group.epoch).toBe(epoch)
  const members = membersAt(epoch)
  expect(group.roster).toEqual(epoch === 0n ? [{ leafIndex: 0, clientId: owner }] : members.roster)
  const lastCommitSeq = commits.at(-1)?.seq ?? 0
  expect(group.access).toEqual(
    epoch === 0n ? [{ clientId: owner, fromSeq: 0, untilSeq: null }] : members.access.map((w) => ({ ...w, fromSeq: w.fromSeq === -1 ? lastCommitSeq : w.fromSeq }))
  )
  const box = await store.readWelcomes(mailbox, 0, Number.MAX_SAFE_INTEGER)
  expect(box.map((w) => w.commitSeq)).toEqual(commits.map((r) => r.seq))
  expect(box.map((w) => w.seq)).toEqual(commits.map((_, i) => i + 1))
  for (const [i, commit] of commits.entries()) {
    const welcomes = await store.readWelcomes(`member/${i + 1}`, 0, 10)
    expect(welcomes).toEqual([{ seq: 1, groupId: G, welcome: new Uint8Array(Buffer.from(`welcome-${i + 1}`)), commitSeq: commit.seq }])
  }
  expect(await store.readWelcomes(`member/${commits.length + 1}`, 0, 10)).toEqual([])

  // KeyPackages: the served ones are the oldest, each gone from the pool; the acknowledged ones among them.
  const served: string[] = []
  for (const ref of refs) if ((await store.lookupServedKeyPackage(ref)) !== undefined) served.push(ref)
  expect(served).toEqual(refs.slice(0, served.length))
  const servedSet = new Set(served)
  expect(acks.consumed.filter((ref) => !servedSet.has(ref))).toEqual([])
  expect([...acks.consumed].sort()).toEqual(acks.consumed)
  expect(new Set(acks.consumed).size).toBe(acks.consumed.length)
  expect(served.length - acks.consumed.length).toBeLessThanOrEqual(kills)
  expect(await store.countKeyPackages(acceptor)).toEqual({ oneTime: refs.length - served.length, lastResort: false })
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
      total += await runUntilKilled(path, round, 5 + Math.floor(Math.random() * 150), acks)
      const store = sqliteServerStore({ path })
      try {
        await checkStore(store, acks, refs, round + 1)
      } finally {
        await store.close()
      }
    }
    expect(total).toBeGreaterThan(ROUNDS * 5 - 1)
  })
})
