import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { createMlsClient, type Group, type MlsClient } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws'
import { converged, fourFlows, groupWith, joined, waitFor } from '@mls/scenarios'
import { startCluster, type Cluster } from '../../../packages/storage-postgres/test/cluster.js'
import { failoverFront, publicUrlArgs, startServerProcess, type ServerProcess } from './harness.js'

const crypto = nodeCrypto()
const cleanups: (() => Promise<void> | void)[] = []
let cluster: Cluster
let databases = 0

beforeAll(async () => {
  cluster = await startCluster()
}, 16 * 60_000)
afterAll(() => cluster?.stop())
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

/** Two real `apps/server` processes on one new PostgreSQL database. */
async function twoInstances(extraArgs: string[] = []): Promise<[ServerProcess, ServerProcess]> {
  const url = cluster.createDatabase(`instances_${process.pid}_${++databases}`)
  const dir = mkdtempSync(join(tmpdir(), 'mls-instances-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))
  const start = async (): Promise<ServerProcess> => {
    const proc = await startServerProcess(dir, 0, ['--store', url, ...extraArgs])
    cleanups.push(async () => {
      if (proc.child.exitCode === null && proc.child.signalCode === null) await proc.kill('SIGKILL')
    })
    return proc
  }
  const one = await start()
  const two = await start()
  for (const proc of [one, two]) expect(proc.logs.find((l) => l.event === 'server:started')).toMatchObject({ database: url, instance: expect.any(String) })
  return [one, two]
}

async function client(userId: string, url: string): Promise<MlsClient> {
  const c = await createMlsClient({
    userId,
    deviceId: 'laptop',
    crypto,
    store: memoryClientStore({ name: userId }),
    transport: webSockets({ url, WebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } })
  })
  cleanups.push(() => c.close())
  return c
}

const texts = (g: Group): string[] => {
  const out: string[] = []
  g.on('message:received', (m) => out.push(new TextDecoder().decode(m.plaintext)))
  return out
}

describe('two apps/server instances on one PostgreSQL database', () => {
  it('run the four flows with the clients spread across them, every push crossing instances', async () => {
    const [one, two] = await twoInstances()
    // Alice and Carol on instance 1, Bob on instance 2: every step needs fan-out between the instances.
    const [alice, bob, carol] = [await client('alice', one.url), await client('bob', two.url), await client('carol', one.url)]
    const { plaintexts } = await fourFlows({ alice, bob, carol, bobCrypto: crypto })
    expect(plaintexts).toHaveLength(4)
  })

  it('a commit race between members on different instances: exactly one wins and the group converges', async () => {
    const [one, two] = await twoInstances()
    const [alice, bob, carol, dave] = [await client('alice', one.url), await client('bob', two.url), await client('carol', one.url), await client('dave', two.url)]
    for (const c of [bob, carol, dave]) await c.publishKeyPackages({ count: 2 })
    const [a, b] = await groupWith(alice, [bob])
    const [ka, kb] = await Promise.all([alice.fetchKeyPackages(['carol']), bob.fetchKeyPackages(['dave'])])
    const [ra, rb] = await Promise.all([a.addMembers(ka), b.addMembers(kb)])
    expect([ra.kind, rb.kind]).toEqual(['committed', 'committed'])
    expect([ra.attempts, rb.attempts].sort()).toEqual([1, 2])
    const [c, d] = [await joined(carol, a.groupId), await joined(dave, a.groupId)]
    await converged([a, b, c, d], 3n)
  })

  it('an instance killed with SIGKILL mid-conversation: its clients move to the other, nothing acknowledged is lost or delivered twice', async () => {
    // Each client reaches the instances through a front that prefers one of them (a load balancer's view). The
    // fronts start first, so the instances are told the fronts' URLs (logins are signed for the URL dialled).
    const oneFirst: number[] = []
    const twoFirst: number[] = []
    const prefersOne = await failoverFront(oneFirst)
    const prefersTwo = await failoverFront(twoFirst)
    cleanups.push(() => prefersOne.close(), () => prefersTwo.close())
    const [one, two] = await twoInstances(publicUrlArgs(undefined, [prefersOne, prefersTwo]))
    oneFirst.push(one.port, two.port)
    twoFirst.push(two.port, one.port)
    const alice = await client('alice', prefersOne.url)
    const bob = await client('bob', prefersTwo.url)
    const carol = await client('carol', prefersOne.url)
    for (const c of [bob, carol]) await c.publishKeyPackages({ count: 2 })
    const [a, b, c] = await groupWith(alice, [bob, carol])
    expect(prefersOne.connections.get(one.port)).toBeGreaterThan(0)
    expect(prefersTwo.connections.get(two.port)).toBeGreaterThan(0)
    const [inA, inB, inC] = [texts(a), texts(b), texts(c)]

    const acknowledged: string[] = []
    let sending = true
    const sender = (group: Group, name: string) =>
      (async () => {
        for (let i = 0; sending; i++) {
          try {
            await group.send(`${name}${i}`)
            acknowledged.push(`${name}${i}`)
          } catch {
            await new Promise((r) => setTimeout(r, 20))
          }
        }
      })()
    const senders = [sender(a, 'a'), sender(b, 'b')]
    await waitFor(() => acknowledged.length >= 30, 'some acknowledged messages')
    expect(await one.kill('SIGKILL')).toBe('SIGKILL')
    const fromAliceAtKill = acknowledged.filter((m) => m.startsWith('a')).length
    // Alice and Carol's front now leads them to instance 2; Alice's sending resumes there.
    await waitFor(() => acknowledged.filter((m) => m.startsWith('a')).length >= fromAliceAtKill + 15, 'alice to send again through the surviving instance', 30_000)
    await waitFor(() => (prefersOne.connections.get(two.port) ?? 0) > 0, 'alice and carol to reconnect to instance 2')
    sending = false
    await Promise.all(senders)
    await a.update()
    await converged([a, b, c], 2n)
    const fromA = acknowledged.filter((m) => m.startsWith('a'))
    const fromB = acknowledged.filter((m) => m.startsWith('b'))
    expect(fromA.length).toBeGreaterThan(0)
    expect(fromB.length).toBeGreaterThan(0)
    await waitFor(() => fromA.every((m) => inB.includes(m) && inC.includes(m)) && fromB.every((m) => inA.includes(m) && inC.includes(m)), 'every acknowledged message everywhere', 30_000)
    for (const inbox of [inA, inB, inC]) {
      expect(new Set(inbox).size).toBe(inbox.length)
      // Each sender's messages arrive in the order it sent them.
      for (const prefix of ['a', 'b']) {
        const order = inbox.filter((m) => m.startsWith(prefix)).map((m) => Number(m.slice(1)))
        expect(order).toEqual([...order].sort((x, y) => x - y))
      }
    }
  })
})
