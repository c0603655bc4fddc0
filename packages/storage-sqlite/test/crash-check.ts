/**
 * The crash checks shared by the SQLite and PostgreSQL crash tests: a child
 * process runs the plan of crash-plan.js against a store and acknowledges each
 * resolved call on stdout; it is killed at a random point; then the store must
 * hold every acknowledged call exactly once, with no gap and no partial commit.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { expect } from 'vitest'
import type { ServerStore } from '@mls/core/interfaces'
import { G, acceptor, mailbox, membersAt, owner } from './crash-plan.js'

/** Kills for one run: `MLS_CRASH_KILLS` (set by `pnpm crash --kills N`), else `fallback`. */
export function crashRounds(fallback: number): number {
  const n = Number(process.env.MLS_CRASH_KILLS ?? fallback)
  return Number.isSafeInteger(n) && n > 0 ? n : fallback
}

export interface Acks {
  commits: Map<bigint, { seq: number; welcomeSeqs: string }>
  messages: Map<string, number>
  consumed: string[]
}

/**
 * Run a crash child (`node <args>`) until it has acknowledged `killAfter`
 * calls (plus a random few milliseconds), then run `crash` (default: SIGKILL
 * the child; it may also kill the database first, and must kill the child).
 */
export async function runUntilKilled(args: readonly string[], killAfter: number, acks: Acks, crash?: (child: ChildProcess) => void): Promise<number> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
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
      if (kind !== 'ready' && ++seen === killAfter) setTimeout(() => (crash === undefined ? child.kill('SIGKILL') : crash(child)), Math.floor(Math.random() * 4))
    }
  })
  const { signal } = await exited
  if (signal !== 'SIGKILL') throw new Error(`The child exited on its own (${String(signal)}): ${stderr}`)
  return seen
}

/** After `kills` kills, at most `kills` calls were durable without being acknowledged (one in flight per kill). */
export async function checkStore(store: ServerStore, acks: Acks, refs: readonly string[], kills: number): Promise<void> {
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

