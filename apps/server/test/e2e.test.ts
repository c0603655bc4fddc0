import { afterEach, describe, expect, it } from 'vitest'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { createMlsClient, type Group, type MlsClient } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws'
import { converged, fourFlows, groupWith, joined, tcpProxy, waitFor } from '@mls/scenarios'
import { clientPayloads, freePort, publicUrlArgs, startServerProcess, type ServerProcess } from './harness.js'

const crypto = nodeCrypto()
const cleanups: (() => Promise<void> | void)[] = []

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

async function server(port = 0, dataDir?: string, extraArgs: string[] = []): Promise<{ proc: ServerProcess; dataDir: string }> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'mls-e2e-'))
  const proc = await startServerProcess(dir, port, extraArgs)
  cleanups.push(async () => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) await proc.kill('SIGKILL')
    if (dataDir === undefined) rmSync(dir, { recursive: true, force: true })
  })
  return { proc, dataDir: dir }
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

describe('end to end over real sockets to a real server process', () => {
  it('runs the four flows: equal epoch authenticators at every step, and B reads nothing after its removal', async () => {
    // Every byte the clients send to the server passes through a recording proxy; the server is told its URL
    // there, since logins are signed for the URL a client dials.
    const port = await freePort()
    const wire = await tcpProxy(port)
    const { dataDir } = await server(port, undefined, publicUrlArgs(port, [wire]))
    cleanups.push(() => wire.close())
    const [alice, bob, carol] = [await client('alice', wire.url), await client('bob', wire.url), await client('carol', wire.url)]
    const { plaintexts } = await fourFlows({ alice, bob, carol, bobCrypto: crypto })

    // The server never saw a plaintext: not on the wire, not in its database.
    const received = Buffer.concat(wire.captured.map(clientPayloads))
    const stored = Buffer.concat(
      ['server.sqlite', 'server.sqlite-wal'].filter((f) => existsSync(join(dataDir, f))).map((f) => readFileSync(join(dataDir, f)))
    )
    expect(received.length).toBeGreaterThan(5_000)
    expect(stored.length).toBeGreaterThan(10_000)
    // Control: what is meant to be visible (client ids) is found, so the search works.
    expect(received.includes(Buffer.from('alice/laptop'))).toBe(true)
    expect(stored.includes(Buffer.from('carol/laptop'))).toBe(true)
    expect(plaintexts).toHaveLength(4)
    for (const plaintext of plaintexts) {
      expect(received.includes(Buffer.from(plaintext))).toBe(false)
      expect(stored.includes(Buffer.from(plaintext))).toBe(false)
    }
  })

  it('a client cut off for several epochs reconnects by itself and catches up in order, nothing lost or duplicated', async () => {
    const port = await freePort()
    const proxy = await tcpProxy(port)
    const { proc } = await server(port, undefined, publicUrlArgs(port, [proxy]))
    cleanups.push(() => proxy.close())
    const alice = await client('alice', proc.url)
    const bob = await client('bob', proc.url)
    const carol = await client('carol', proxy.url)
    for (const c of [bob, carol]) await c.publishKeyPackages({ count: 2 })
    const [a, b, c] = await groupWith(alice, [bob, carol])
    const inC = texts(c)
    proxy.cut()
    for (let i = 1; i <= 3; i++) {
      await a.send(`while away ${i}a`)
      await (i % 2 === 0 ? b : a).update()
      await b.send(`while away ${i}b`)
    }
    await converged([a, b], 4n)
    expect(c.epoch).toBe(1n)
    proxy.restore()
    await converged([a, b, c], 4n)
    await waitFor(() => inC.length === 6, 'carol to catch up')
    expect(inC).toEqual(['while away 1a', 'while away 1b', 'while away 2a', 'while away 2b', 'while away 3a', 'while away 3b'])
  })

  it('two clients commit in the same epoch: one wins and the group converges', async () => {
    const { proc } = await server()
    const [alice, bob, carol, dave] = [await client('alice', proc.url), await client('bob', proc.url), await client('carol', proc.url), await client('dave', proc.url)]
    for (const c of [bob, carol, dave]) await c.publishKeyPackages({ count: 2 })
    const [a, b] = await groupWith(alice, [bob])
    const [ka, kb] = await Promise.all([alice.fetchKeyPackages(['carol']), bob.fetchKeyPackages(['dave'])])
    const [ra, rb] = await Promise.all([a.addMembers(ka), b.addMembers(kb)])
    expect([ra.kind, rb.kind]).toEqual(['committed', 'committed'])
    expect([ra.attempts, rb.attempts].sort()).toEqual([1, 2])
    const [c, d] = [await joined(carol, a.groupId), await joined(dave, a.groupId)]
    await converged([a, b, c, d], 3n)
  })

  it('a server killed with SIGKILL mid-conversation and restarted on the same data loses nothing it acknowledged; clients resume by themselves', async () => {
    const first = await server()
    const port = first.proc.port
    const alice = await client('alice', first.proc.url)
    const bob = await client('bob', first.proc.url)
    await bob.publishKeyPackages({ count: 2 })
    const [a, b] = await groupWith(alice, [bob])
    const inB = texts(b)
    const acknowledged: string[] = []
    let sending = true
    const sender = (async () => {
      for (let i = 0; sending; i++) {
        try {
          await a.send(`m${i}`)
          acknowledged.push(`m${i}`)
        } catch {
          await new Promise((r) => setTimeout(r, 20))
        }
      }
    })()
    await waitFor(() => acknowledged.length >= 20, 'some acknowledged messages')
    await first.proc.kill('SIGKILL')
    const killedAt = acknowledged.length
    await new Promise((r) => setTimeout(r, 200))
    const second = await startServerProcess(first.dataDir, port)
    cleanups.push(async () => {
      if (second.child.exitCode === null && second.child.signalCode === null) await second.kill('SIGKILL')
    })
    await waitFor(() => acknowledged.length >= killedAt + 10, 'sending to resume after the restart', 30_000)
    sending = false
    await sender
    await a.update()
    await converged([a, b], 2n)
    await waitFor(() => acknowledged.every((m) => inB.includes(m)), 'bob to receive every acknowledged message', 30_000)
    expect(new Set(inB).size).toBe(inB.length)
    const order = inB.map((m) => Number(m.slice(1)))
    expect(order).toEqual([...order].sort((x, y) => x - y))
  })
})
