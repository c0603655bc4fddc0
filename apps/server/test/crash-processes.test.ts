import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { createMlsClient, toHex, type Group } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws'
import { waitFor } from '@mls/scenarios'
import { startCluster, type Cluster } from '../../../packages/storage-postgres/test/cluster.js'
import { failoverFront, publicUrlArgs, startServerProcess, type ServerProcess } from './harness.js'

/**
 * Kills of client and server processes during a busy conversation, on SQLite
 * (one server, restarted on its data) and on PostgreSQL (two instances, one of
 * them killed and restarted): a member process (bob, SQLite client store,
 * durable inbox) and the servers are SIGKILLed at random moments while alice
 * sends and commits. Afterwards every message alice had acknowledged reached
 * bob's application, none twice under two ids, and both agree on the epoch
 * authenticator. `MLS_CRASH_KILLS` (from `pnpm crash`) sets the kills per store.
 */
const KILLS = (() => {
  const n = Number(process.env.MLS_CRASH_KILLS ?? 4)
  return Number.isSafeInteger(n) && n > 0 ? n : 4
})()
const memberScript = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'member.mjs')
const cleanups: (() => Promise<unknown> | void)[] = []
let cluster: Cluster

beforeAll(async () => {
  cluster = await startCluster()
}, 16 * 60_000)
afterAll(() => cluster?.stop())
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

interface Member {
  child: ChildProcess
  lines: string[]
  exited: Promise<unknown>
}

function startMember(url: string, dbPath: string, all: string[]): Member {
  const child = spawn(process.execPath, [memberScript, url, dbPath, 'bob'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines: string[] = []
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l)
    all.push(l)
  })
  const exited = new Promise((r) => child.on('exit', r))
  cleanups.push(() => {
    child.kill('SIGKILL')
    return exited
  })
  return { child, lines, exited }
}

/** Retry an action until it succeeds (the server may be down for a moment). */
async function retry<T>(action: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await action()
    } catch (error) {
      if (attempt >= 200) throw error
      await new Promise((r) => setTimeout(r, 25))
    }
  }
}

describe.each(['sqlite', 'postgres'] as const)('client and server processes killed with SIGKILL (%s)', (kind) => {
  it(`${KILLS} kills of bob's process and of a server: nothing acknowledged lost, nothing delivered twice, one epoch authenticator`, async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'mls-crash-processes-'))
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
    // Alice and bob each reach the servers through a front that prefers a different one. The fronts read their
    // backends when a connection comes in, so they start first and the servers are told the fronts' URLs
    // (logins are signed for the URL a client dials).
    const ports: number[] = []
    const reversed: number[] = []
    const aliceFront = await failoverFront(ports)
    const bobFront = await failoverFront(reversed)
    cleanups.push(() => aliceFront.close(), () => bobFront.close())
    const store = kind === 'postgres' ? ['--store', cluster.createDatabase(`crash_processes_${process.pid}`)] : []
    const args = [...store, ...publicUrlArgs(undefined, [aliceFront, bobFront])]
    const servers: ServerProcess[] = [await startServerProcess(dataDir, 0, args)]
    if (kind === 'postgres') servers.push(await startServerProcess(dataDir, 0, args))
    cleanups.push(() => Promise.all(servers.map((s) => s.kill('SIGKILL'))))
    ports.push(...servers.map((s) => s.port))
    reversed.push(...[...ports].reverse())

    const dbPath = join(dataDir, 'bob.sqlite')
    const all: string[] = []
    let bob = startMember(bobFront.url, dbPath, all)
    await waitFor(() => bob.lines.includes('READY'), 'bob to start', 30_000)
    const alice = await createMlsClient({
      userId: 'alice',
      deviceId: 'laptop',
      crypto: nodeCrypto(),
      store: memoryClientStore(),
      transport: webSockets({ url: aliceFront.url, WebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 300 } })
    })
    cleanups.push(() => alice.close())
    const a: Group = await alice.createGroup()
    await alice.addUsers(a, ['bob'])
    await waitFor(() => bob.lines.some((l) => l.startsWith('JOINED')), 'bob to join', 30_000)

    const acknowledged: string[] = []
    let n = 0
    const sendSome = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const id = n++
        let attempt = 0
        // Each attempt is a new message: one that reached the log before a kill but was not acknowledged may arrive too.
        await retry(() => a.send(`msg-${id}-${attempt++}`))
        acknowledged.push(`msg-${id}-${attempt - 1}`)
        if (n % 7 === 0) await retry(() => a.update())
      }
    }
    const killed = { bob: 0, server: 0 }
    for (let round = 0; round < KILLS; round++) {
      const sending = sendSome(10)
      await new Promise((r) => setTimeout(r, 20 + Math.floor(Math.random() * 120)))
      if (round % 2 === 0) {
        bob.child.kill('SIGKILL')
        await bob.exited
        killed.bob++
        bob = startMember(bobFront.url, dbPath, all)
      } else {
        // SQLite: the only server, restarted on its data and port. PostgreSQL: one of the two instances.
        const index = Math.floor(Math.random() * servers.length)
        const victim = servers[index]!
        expect(await victim.kill('SIGKILL')).toBe('SIGKILL')
        killed.server++
        servers[index] = await startServerProcess(dataDir, victim.port, args)
      }
      await sending
      await waitFor(() => bob.lines.includes('READY'), `bob to be running (round ${round})`, 30_000)
    }
    await sendSome(5)

    // Every acknowledged message reached bob's application; an id never changes content; no text under two ids.
    const received = () => {
      const byId = new Map<string, string>()
      const ids = new Map<string, string>()
      for (const line of all.filter((l) => l.startsWith('MSG '))) {
        const [, id, body] = line.split(' ')
        if (byId.has(id!) && byId.get(id!) !== body) throw new Error(`message ${id} changed content`)
        if (ids.has(body!) && ids.get(body!) !== id) throw new Error(`${body} delivered under two ids`)
        byId.set(id!, body!)
        ids.set(body!, id!)
      }
      return new Set(byId.values())
    }
    await waitFor(() => acknowledged.every((m) => received().has(m)), 'bob to have every acknowledged message', 60_000)
    const expected = `EPOCH ${a.epoch} ${toHex(a.epochAuthenticator())}`
    await waitFor(() => bob.lines.includes(expected), `bob at ${expected}`, 30_000)
    expect(killed.bob + killed.server).toBe(KILLS)
    console.log(`crash-processes (${kind}): ${KILLS} kills (bob ${killed.bob}, server ${killed.server}), ${acknowledged.length} acknowledged messages, all delivered once, epoch ${a.epoch} agreed`)
  }, Math.max(240_000, KILLS * 30_000))
})
