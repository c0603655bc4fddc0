import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { afterEach, describe, expect, it } from 'vitest'
import { createMlsClient, MlsToolkitError } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { sqliteClientStore } from '@mls/storage-sqlite'
import { webSockets } from '@mls/transport-ws'
import { converged, groupWith, waitFor } from '@mls/scenarios'
import { webSocketClient, type Cleanups } from './fixtures.js'
import { startServerProcess } from './harness.js'

const cleanups: Cleanups = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

describe('log retention at a real server process', () => {
  it('past the hard limit deletes what an away member has not fetched: it gets CURSOR_EXPIRED, resyncs and follows again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mls-retention-'))
    // Keep each group's 2 newest application messages, and nothing older than the hard limit of one second
    // (fetched or not); a pass every second.
    const server = await startServerProcess(dir, 0, ['--retention-max-messages', '2', '--retention-hard-max-age-seconds', '1', '--retention-interval-seconds', '1'])
    cleanups.push(async () => {
      if (server.child.exitCode === null && server.child.signalCode === null) await server.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    })
    const alice = await webSocketClient('alice', server.url, cleanups)
    // Bob keeps his state in a SQLite file, so he can close and come back.
    const bobFile = join(dir, 'bob.sqlite')
    const bob = await webSocketClient('bob', server.url, cleanups, sqliteClientStore({ path: bobFile }))
    for (const c of [alice, bob]) await c.publishKeyPackages({ count: 3 })
    const [a, b] = await groupWith(alice, [bob])
    const heard = b.once('message:received')
    await a.send('before bob leaves')
    await heard
    const bobCursor = b.cursor
    await bob.close() // bob is away; his state stays in his file

    for (let i = 1; i <= 5; i++) await a.send(`while bob is away ${i}`)
    const pruned = () => server.logs.filter((l) => l.event === 'retention:pruned').reduce((n, l) => n + (l.deleted as number), 0)
    // The first message and three of the five sent while bob was away go (2 are kept).
    await waitFor(() => pruned() >= 4, 'the retention pass to delete 4 messages')

    // Bob comes back from his store: his cursor is before deleted messages.
    const back = await createMlsClient({
      userId: 'bob',
      deviceId: 'laptop',
      crypto: nodeCrypto(),
      store: sqliteClientStore({ path: bobFile }),
      transport: webSockets({ url: server.url, WebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } }),
      start: false
    })
    cleanups.push(() => back.close())
    const rejected: unknown[] = []
    const statuses: string[] = []
    back.on('message:rejected', ({ error }) => rejected.push(error))
    back.on('status:changed', ({ to }) => statuses.push(to))
    const received: string[] = []
    back.on('message:received', ({ message }) => received.push(new TextDecoder().decode(message.plaintext)))
    const resynced = a.once('member:resynced')
    await back.start()
    const b2 = back.group(a.groupIdHex)!
    expect(b2.cursor).toBeGreaterThanOrEqual(bobCursor)

    // Told with a typed error naming the oldest retained position, then resynced by an external commit.
    expect(await resynced).toMatchObject({ member: 'bob/laptop', epoch: 2n })
    expect((await resynced).reason).toMatch(/deleted entries after seq \d+ \(log retained from seq \d+\)/)
    const expired = rejected.find((e) => MlsToolkitError.isInstance(e) && e.code === 'CURSOR_EXPIRED') as MlsToolkitError | undefined
    expect(expired?.details).toMatchObject({ afterSeq: bobCursor, oldestRetainedSeq: expect.any(Number) })
    expect(expired!.details!['oldestRetainedSeq'] as number).toBeGreaterThan(bobCursor + 1)
    expect(statuses).toEqual(expect.arrayContaining(['failed', 'active']))
    // Nothing from the deleted span was delivered to him, and nothing twice.
    expect(received.filter((t) => t.startsWith('while bob is away 1') || t.startsWith('while bob is away 2'))).toEqual([])
    expect(new Set(received).size).toBe(received.length)

    // Both follow the group again: same epoch and authenticator, and messages flow both ways.
    await converged([a, b2], 2n)
    const toBob = b2.once('message:received')
    await a.send('welcome back')
    expect(new TextDecoder().decode((await toBob).plaintext)).toBe('welcome back')
    const toAlice = a.once('message:received')
    await b2.send('thanks')
    expect(new TextDecoder().decode((await toAlice).plaintext)).toBe('thanks')
  })

  it('keeps what a member offline during heavy traffic has not fetched: it comes back and reads everything while retention ran', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mls-retention-'))
    // Count and age rules that would delete all but 2 messages within a second or two; no hard limit.
    const server = await startServerProcess(dir, 0, [
      '--retention-max-messages', '2',
      '--retention-max-age-seconds', '1',
      '--retention-hard-max-age-seconds', '0',
      '--retention-interval-seconds', '1',
      // A ping a second: its pong confirms what was pushed before it (a push alone does not count).
      '--heartbeat-interval-ms', '1000',
      '--log-level', 'debug'
    ])
    cleanups.push(async () => {
      if (server.child.exitCode === null && server.child.signalCode === null) await server.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    })
    const passes = () => server.logs.filter((l) => l.event === 'retention:pass' || l.event === 'retention:pruned').length
    const pruned = () => server.logs.filter((l) => l.event === 'retention:pruned').reduce((n, l) => n + (l.deleted as number), 0)
    const alice = await webSocketClient('alice', server.url, cleanups)
    const bobFile = join(dir, 'bob.sqlite')
    const bob = await webSocketClient('bob', server.url, cleanups, sqliteClientStore({ path: bobFile }))
    for (const c of [alice, bob]) await c.publishKeyPackages({ count: 3 })
    const [a, b] = await groupWith(alice, [bob])
    const resyncs: unknown[] = []
    a.on('member:resynced', (event) => resyncs.push(event))

    // While both are online, what was pushed to both and confirmed by a pong counts as fetched: retention deletes it.
    const heard: string[] = []
    b.on('message:received', (message) => heard.push(new TextDecoder().decode(message.plaintext)))
    for (let i = 1; i <= 3; i++) await a.send(`together ${i}`)
    await waitFor(() => heard.length === 3, 'bob to hear 3 messages')
    await waitFor(() => pruned() >= 3, 'retention to delete the messages both members had')
    await bob.close()

    // Heavy traffic while bob is away.
    const sent = Array.from({ length: 60 }, (_, i) => `while bob is away ${i + 1}`)
    for (const text of sent) await a.send(text)
    // Passes ran after the last send, once every message was older than the age limit and past the count limit.
    const after = passes()
    await waitFor(() => passes() >= after + 3, 'three retention passes after the traffic', 30_000)

    const back = await createMlsClient({
      userId: 'bob',
      deviceId: 'laptop',
      crypto: nodeCrypto(),
      store: sqliteClientStore({ path: bobFile }),
      transport: webSockets({ url: server.url, WebSocket, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } }),
      start: false
    })
    cleanups.push(() => back.close())
    const rejected: unknown[] = []
    const statuses: string[] = []
    const received: string[] = []
    back.on('message:rejected', ({ error }) => rejected.push(error))
    back.on('status:changed', ({ to }) => statuses.push(to))
    back.on('message:received', ({ message }) => received.push(new TextDecoder().decode(message.plaintext)))
    await back.start()
    // Until he has read them all, or was told his cursor expired (what this test shows does not happen).
    await waitFor(() => received.length >= sent.length || rejected.length > 0 || statuses.includes('failed'), `bob to read the ${sent.length} messages`, 60_000)
    // Everything, in order, once; no CURSOR_EXPIRED, no failed state, no resync.
    expect(rejected).toEqual([])
    expect(received).toEqual(sent)
    expect(statuses).not.toContain('failed')
    const b2 = back.group(a.groupIdHex)!
    await converged([a, b2], 1n)
    expect(resyncs).toEqual([])

    // Once bob has read them, retention deletes them: all but the newest 2 go.
    await waitFor(() => pruned() >= 3 + sent.length - 2, 'retention to delete what bob has now fetched', 30_000)
  })
})
