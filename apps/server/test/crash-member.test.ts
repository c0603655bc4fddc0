import { afterEach, expect, it } from 'vitest'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import { createMlsClient, toHex } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws'
import { waitFor } from '@mls/scenarios'
import { startServerProcess } from './harness.js'

const memberScript = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'member.mjs')
const cleanups: (() => Promise<unknown> | void)[] = []
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

it('a member process killed with SIGKILL at random moments resumes from its SQLite store: no message lost, no epoch fork', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mls-crash-member-'))
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }))
  const server = await startServerProcess(dataDir)
  cleanups.push(() => server.kill('SIGKILL'))
  const dbPath = join(dataDir, 'bob.sqlite')
  const all: string[] = []
  let bob = startMember(server.url, dbPath, all)
  await waitFor(() => bob.lines.includes('READY'), 'bob to start', 30_000)

  const alice = await createMlsClient({
    userId: 'alice',
    deviceId: 'laptop',
    crypto: nodeCrypto(),
    store: memoryClientStore(),
    transport: webSockets({ url: server.url, WebSocket })
  })
  cleanups.push(() => alice.close())
  const a = await alice.createGroup()
  await alice.addUsers(a, ['bob'])
  await waitFor(() => bob.lines.some((l) => l.startsWith('JOINED')), 'bob to join', 30_000)

  const acknowledged: string[] = []
  let n = 0
  const sendSome = async (count: number) => {
    for (let i = 0; i < count; i++) {
      const body = `msg-${n++}`
      await a.send(body)
      acknowledged.push(body)
      if (n % 7 === 0) await a.update()
    }
  }
  for (let round = 0; round < 4; round++) {
    const sending = sendSome(15)
    // Kill bob at a random moment while messages and commits are flowing.
    await new Promise((r) => setTimeout(r, 20 + Math.floor(Math.random() * 120)))
    bob.child.kill('SIGKILL')
    await bob.exited
    await sending
    bob = startMember(server.url, dbPath, all)
    await waitFor(() => bob.lines.includes('READY'), `bob to restart (round ${round})`, 30_000)
  }
  await sendSome(5)

  // Every acknowledged message reached bob's application, with stable ids and no conflicting content.
  const seen = new Map<string, string>()
  const received = () => {
    for (const line of all.filter((l) => l.startsWith('MSG '))) {
      const [, id, body] = line.split(' ')
      if (seen.has(id!) && seen.get(id!) !== body) throw new Error(`message ${id} changed content`)
      seen.set(id!, body!)
    }
    return new Set(seen.values())
  }
  await waitFor(() => acknowledged.every((m) => received().has(m)), 'bob to have every acknowledged message', 60_000)
  expect(received().size).toBe(acknowledged.length)
  console.log(`crash-member: ${acknowledged.length} messages, ${all.filter((l) => l.startsWith('MSG ')).length} deliveries to the app, ${all.filter((l) => l === 'READY').length} starts`)

  // And bob follows the same epoch as alice: same epoch authenticator.
  const expected = `EPOCH ${a.epoch} ${toHex(a.epochAuthenticator())}`
  await waitFor(() => bob.lines.includes(expected), `bob at ${expected}`, 30_000)
}, 240_000)
