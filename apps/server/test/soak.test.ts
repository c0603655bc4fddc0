import { readFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createMlsClient, type Group, type MlsClient } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws'
import { groupWith, inbox, waitFor } from '@mls/scenarios'
import { startServerProcess } from './harness.js'
import type { Cleanups } from './fixtures.js'

// `pnpm soak` sets these for a long run (docs/server.md); `pnpm test` runs a few seconds.
const seconds = Number(process.env.MLS_SOAK_SECONDS ?? 4)
const clientCount = Number(process.env.MLS_SOAK_CLIENTS ?? 12)
const messagesPerSecond = Number(process.env.MLS_SOAK_RATE ?? 20)
const groupSize = 6

const cleanups: Cleanups = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`

describe('soak: many clients at a steady message rate against the real server process', () => {
  it(`runs ${seconds} s with ${clientCount} clients at ${messagesPerSecond} messages/s: everything delivered, no errors, server memory printed`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mls-soak-'))
    const server = await startServerProcess(dir)
    cleanups.push(async () => {
      if (server.child.exitCode === null && server.child.signalCode === null) await server.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    })
    const pid = server.child.pid!
    // Each client from its own loopback address, as clients on different hosts: registrations are limited per address.
    const clients: MlsClient[] = []
    for (let i = 0; i < clientCount; i++) {
      const localAddress = `127.0.${Math.floor(i / 250)}.${(i % 250) + 2}`
      class FromOwnAddress extends WebSocket {
        constructor(url: string) {
          super(url, { localAddress })
        }
      }
      const client = await createMlsClient({
        userId: `soak${i}`,
        deviceId: 'laptop',
        crypto: nodeCrypto(),
        store: memoryClientStore({ name: `soak${i}` }),
        transport: webSockets({ url: server.url, WebSocket: FromOwnAddress, requestTimeoutMs: 120_000, reconnect: { initialDelayMs: 50, maxDelayMs: 1000 } })
      })
      cleanups.push(() => client.close())
      await client.publishKeyPackages({ count: 2 })
      if (process.env.MLS_SOAK_DEBUG) console.log('client', i)
      clients.push(client)
    }
    const errors: unknown[] = []
    for (const client of clients) client.on('sync:failed', (event) => errors.push(event.error))
    const groups: Group[][] = []
    for (let start = 0; start + groupSize <= clientCount; start += groupSize) {
      const members = await groupWith(clients[start]!, clients.slice(start + 1, start + groupSize))
      for (const group of members) group.on('message:rejected', (event) => errors.push(event.error))
      groups.push(members)
    }
    const boxes = groups.map((members) => members.map((group) => inbox(group)))
    const sent = groups.map(() => 0)

    const samples: number[] = [rssOf(pid)]
    const startedAt = Date.now()
    const interval = 1000 / messagesPerSecond
    let n = 0
    let nextSample = startedAt + 1000
    while (Date.now() - startedAt < seconds * 1000) {
      const index = n % groups.length
      const members = groups[index]!
      await members[Math.floor(n / groups.length) % members.length]!.send(`soak ${n}`)
      sent[index]!++
      n++
      if (Date.now() >= nextSample) {
        samples.push(rssOf(pid))
        nextSample += 1000
      }
      const due = startedAt + n * interval
      if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()))
    }
    await waitFor(
      () => boxes.every((members, index) => members.every((box) => box.texts.length === sent[index])),
      'every member to receive every message of its group',
      120_000
    )
    samples.push(rssOf(pid))
    const elapsed = (Date.now() - startedAt) / 1000
    const peak = Math.max(...samples)
    const tail = samples.slice(-Math.max(3, Math.floor(samples.length / 10)))
    console.log(
      [
        `soak: ${clientCount} clients in ${groups.length} groups of ${groupSize}, ${n} messages in ${elapsed.toFixed(0)} s (${(n / elapsed).toFixed(1)}/s), ${errors.length} errors`,
        `soak: server rss at start ${mib(samples[0]!)}, peak ${mib(peak)}, last ${mib(samples.at(-1)!)}; last tenth of the run between ${mib(Math.min(...tail))} and ${mib(Math.max(...tail))}`,
        `soak: rss every ~${Math.max(1, Math.round(samples.length / 20))} s: ${samples.filter((_, i) => i % Math.max(1, Math.round(samples.length / 20)) === 0).map((s) => (s / 2 ** 20).toFixed(0)).join(' ')} MiB`
      ].join('\n')
    )
    // Every member receives every message of its group (its own when the channel has ordered it), once, in one order.
    for (const members of boxes) {
      for (const box of members) expect(box.texts).toEqual(members[0]!.texts)
      expect(new Set(members[0]!.texts).size).toBe(members[0]!.texts.length)
    }
    expect(errors).toEqual([])
    expect(server.child.exitCode).toBeNull()
  })
})
