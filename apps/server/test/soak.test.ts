import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
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
import { formatMemory, summarizeMemory, type TimedSample } from './memory-summary.js'

// `pnpm soak` sets these for a long run (docs/server.md); `pnpm test` runs a few seconds.
const seconds = Number(process.env.MLS_SOAK_SECONDS ?? 4)
const clientCount = Number(process.env.MLS_SOAK_CLIENTS ?? 12)
const messagesPerSecond = Number(process.env.MLS_SOAK_RATE ?? 20)
const groupSize = 6
// The server's SQLite page cache, in MiB (`--sqlite-cache-mib`); unset: the default, 16,000 KiB.
const sqliteCacheMib = process.env.MLS_SOAK_SQLITE_CACHE_MIB

const cleanups: Cleanups = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** The server's `memory:sample` lines logged at or after `since` (heapUsed after a full GC: the server runs with --expose-gc). */
function memorySamples(logs: readonly Record<string, unknown>[], since: number): TimedSample[] {
  return logs
    .filter((record) => record.event === 'memory:sample' && record.afterGc === true)
    .map((record) => ({ at: Date.parse(record.time as string), rss: record.rss as number, heapUsed: record.heapUsed as number, external: record.external as number,
      ...(typeof record.rssAnon === 'number' && typeof record.rssFile === 'number' ? { rssAnon: record.rssAnon, rssFile: record.rssFile } : {})
    }))
    .filter((sample) => sample.at >= since)
}

describe('soak: many clients at a steady message rate against the real server process', () => {
  it(`runs ${seconds} s with ${clientCount} clients at ${messagesPerSecond} messages/s: everything delivered, no errors, server memory printed`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mls-soak-'))
    // The server samples its memory after a full GC (memory:sample log lines): every 2 s, or 4 times a second in a short run.
    const sampleMs = seconds >= 60 ? 2000 : 250
    const server = await startServerProcess(dir, 0, sqliteCacheMib === undefined ? [] : ['--sqlite-cache-mib', sqliteCacheMib], {
      nodeArgs: ['--expose-gc'],
      env: { MLS_MEMORY_SAMPLE_MS: String(sampleMs) }
    })
    cleanups.push(async () => {
      if (server.child.exitCode === null && server.child.signalCode === null) await server.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    })
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

    const startedAt = Date.now()
    const interval = 1000 / messagesPerSecond
    let n = 0
    while (Date.now() - startedAt < seconds * 1000) {
      const index = n % groups.length
      const members = groups[index]!
      await members[Math.floor(n / groups.length) % members.length]!.send(`soak ${n}`)
      sent[index]!++
      n++
      const due = startedAt + n * interval
      if (due > Date.now()) await new Promise((resolve) => setTimeout(resolve, due - Date.now()))
    }
    await waitFor(
      () => boxes.every((members, index) => members.every((box) => box.texts.length === sent[index])),
      'every member to receive every message of its group',
      120_000
    )
    const elapsed = (Date.now() - startedAt) / 1000
    // A sample taken after every message was delivered ends the series.
    const delivered = Date.now()
    await waitFor(() => memorySamples(server.logs, delivered).length > 0, 'a memory sample after delivery', 30_000)
    // From the last sample before the steady phase (after setup) to the one after delivery.
    const before = memorySamples(server.logs, 0).filter((sample) => sample.at < startedAt)
    const samples = [...before.slice(-1), ...memorySamples(server.logs, startedAt)]
    const summary = summarizeMemory(samples)
    const every = Math.max(1, Math.round(samples.length / 20))
    const series = (pick: (s: TimedSample) => number) => samples.filter((_, i) => i % every === 0).map((s) => (pick(s) / 2 ** 20).toFixed(1)).join(' ')
    const databaseBytes = ['server.sqlite', 'server.sqlite-wal'].reduce((total, name) => total + (existsSync(join(dir, name)) ? statSync(join(dir, name)).size : 0), 0)
    const report = [
        `soak: ${clientCount} clients in ${groups.length} groups of ${groupSize}, ${n} messages in ${elapsed.toFixed(0)} s (${(n / elapsed).toFixed(1)}/s), ${errors.length} errors`,
        `soak: server SQLite page cache at most ${sqliteCacheMib === undefined ? '16000 KiB (default)' : `${sqliteCacheMib} MiB`}; database and WAL at the end ${(databaseBytes / 2 ** 20).toFixed(1)} MiB`,
        ...formatMemory(summary),
        `soak: heapUsed after GC every ~${((every * sampleMs) / 1000).toFixed(1)} s: ${series((s) => s.heapUsed)} MiB`,
        `soak: rss every ~${((every * sampleMs) / 1000).toFixed(1)} s: ${series((s) => s.rss)} MiB`
      ].join('\n')
    console.log(report)
    // `pnpm soak` prints this again once vitest is done, so the figures are the last thing on screen.
    if (process.env.MLS_SOAK_REPORT !== undefined) writeFileSync(process.env.MLS_SOAK_REPORT, `${report}\n`)
    // Every sample, for a closer look (MLS_SOAK_SAMPLES=<file>).
    if (process.env.MLS_SOAK_SAMPLES !== undefined) writeFileSync(process.env.MLS_SOAK_SAMPLES, JSON.stringify(server.logs.filter((record) => record.event === 'memory:sample')))
    expect(summary.samples).toBeGreaterThan(1)
    // Every member receives every message of its group (its own when the channel has ordered it), once, in one order.
    for (const members of boxes) {
      for (const box of members) expect(box.texts).toEqual(members[0]!.texts)
      expect(new Set(members[0]!.texts).size).toBe(members[0]!.texts.length)
    }
    expect(errors).toEqual([])
    expect(server.child.exitCode).toBeNull()
  })
})
