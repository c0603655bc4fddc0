/**
 * Server-level fan-out benchmark (`pnpm bench:server`, its own entry point):
 * application messages from one member to a group of BENCH_MEMBERS, through
 * the real server of `apps/server` (`startServer`: Directory and Group
 * Channel on WebSocket, state in SQLite in a temp dir) over loopback, against
 * a raw `ws` broadcast server relaying payloads of the same size to the same
 * number of sockets, in the same process and run. The result is deliveries
 * per second on each side and their ratio.
 *
 * Both sides: one sender keeps BENCH_IN_FLIGHT messages outstanding (each
 * waits for the server's acknowledgement), receivers count what arrives; a
 * run ends when every receiver has every message. On the MLS side the
 * members are real `MlsClient`s (node crypto, memory stores): the server
 * verifies the sender, checks the epoch and replays, appends to SQLite and
 * pushes to every member, and each receiver decrypts (all in this one
 * process, so the figure is end to end, and bounded by decryption). The raw
 * side does none of that: it is the ceiling of `ws` on this machine.
 *
 * Environment: BENCH_MEMBERS (10, sender included), BENCH_MESSAGES (400),
 * BENCH_IN_FLIGHT (16), BENCH_REPEATS (2, alternating sides; the best run of
 * each is kept to damp noise from other load), BENCH_RAW_FRAME_BYTES (260).
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import WebSocket, { WebSocketServer } from 'ws'
import { jsonLogger, parseConfig, startServer } from '@mls/app-server'
import { createMlsClient, type Group, type MlsClient } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws'

const MEMBERS = Number(process.env['BENCH_MEMBERS'] ?? 10)
const MESSAGES = Number(process.env['BENCH_MESSAGES'] ?? 400)
const IN_FLIGHT = Number(process.env['BENCH_IN_FLIGHT'] ?? 16)
const REPEATS = Number(process.env['BENCH_REPEATS'] ?? 2)
/** Each MLS message carries about this much text (the index and padding). */
const PLAINTEXT_BYTES = 100
/** The raw side's frame: about the size of the MLS side's framed PrivateMessage (plaintext plus header, sender data and AEAD tag). */
const RAW_FRAME_BYTES = Number(process.env['BENCH_RAW_FRAME_BYTES'] ?? 260)

/** One measured run. */
interface RunResult {
  readonly deliveries: number
  readonly seconds: number
  readonly perSecond: number
}

/** Send `count` messages with at most `inFlight` outstanding. */
async function pipeline(count: number, inFlight: number, send: (index: number) => Promise<unknown>): Promise<void> {
  let next = 0
  const lanes = Array.from({ length: Math.min(inFlight, count) }, async () => {
    while (next < count) await send(next++)
  })
  await Promise.all(lanes)
}

/** Resolve when `done()` holds, checked whenever `onProgress` is called. */
function progress(done: () => boolean): { promise: Promise<void>; onProgress(): void } {
  let resolve: () => void = () => undefined
  const promise = new Promise<void>((r) => (resolve = r))
  return {
    promise,
    onProgress: () => {
      if (done()) resolve()
    }
  }
}

/** The MLS side: a group of MEMBERS real clients on the real server. */
async function mlsSide(): Promise<{ run(): Promise<RunResult>; close(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mls-bench-server-'))
  const server = await startServer(parseConfig(['--port', '0', '--data-dir', dataDir, '--retention-interval-seconds', '0'], {}), jsonLogger('error'))
  const clients: MlsClient[] = []
  for (let i = 0; i < MEMBERS; i++) {
    const client = await createMlsClient({
      userId: `member${i}`,
      deviceId: 'bench',
      crypto: nodeCrypto(),
      store: memoryClientStore(),
      transport: webSockets({ url: server.url, WebSocket })
    })
    await client.publishKeyPackages({ count: 2 })
    clients.push(client)
  }
  const [sender, ...receivers] = clients as [MlsClient, ...MlsClient[]]
  const joined = receivers.map((c) => c.once('group:joined'))
  const group: Group = await sender.createGroup()
  await sender.addUsers(group, receivers.map((c) => c.userId))
  await Promise.all(joined)
  let received = 0
  let wanted = 0
  const tracker = { onProgress: () => undefined as void }
  for (const c of receivers) {
    c.on('message:received', () => {
      received++
      tracker.onProgress()
    })
  }
  const payload = 'x'.repeat(PLAINTEXT_BYTES)
  return {
    run: async () => {
      received = 0
      wanted = MESSAGES * receivers.length
      const all = progress(() => received >= wanted)
      tracker.onProgress = all.onProgress
      const started = performance.now()
      await pipeline(MESSAGES, IN_FLIGHT, (i) => group.send(`${i} ${payload}`))
      await all.promise
      const seconds = (performance.now() - started) / 1000
      return { deliveries: wanted, seconds, perSecond: wanted / seconds }
    },
    close: async () => {
      for (const c of clients) await c.close()
      await server.close()
      rmSync(dataDir, { recursive: true, force: true })
    }
  }
}

/** The raw side: a `ws` server that acknowledges the sender and relays each payload to every receiver. */
async function rawSide(payloadBytes: number): Promise<{ run(): Promise<RunResult>; close(): Promise<void> }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise<void>((resolve) => server.once('listening', () => resolve()))
  const port = (server.address() as { port: number }).port
  const receiverSockets = new Set<WebSocket>()
  server.on('connection', (socket, request) => {
    if (request.url === '/receiver') {
      receiverSockets.add(socket)
      return
    }
    socket.on('message', (data: Buffer) => {
      for (const r of receiverSockets) r.send(data)
      socket.send(data.subarray(0, 4))
    })
  })
  const open = (path: string): Promise<WebSocket> =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}${path}`)
      socket.once('open', () => resolve(socket))
      socket.once('error', reject)
    })
  const receivers = await Promise.all(Array.from({ length: MEMBERS - 1 }, () => open('/receiver')))
  const sender = await open('/sender')
  let received = 0
  const tracker = { onProgress: () => undefined as void }
  for (const r of receivers) {
    r.on('message', () => {
      received++
      tracker.onProgress()
    })
  }
  // Acknowledgements in order (one socket): each send waits for the next one.
  const acks: (() => void)[] = []
  sender.on('message', () => acks.shift()?.())
  return {
    run: async () => {
      received = 0
      const wanted = MESSAGES * receivers.length
      const all = progress(() => received >= wanted)
      tracker.onProgress = all.onProgress
      const frame = Buffer.alloc(payloadBytes, 7)
      const started = performance.now()
      await pipeline(MESSAGES, IN_FLIGHT, (i) => {
        frame.writeUInt32BE(i, 0)
        const acked = new Promise<void>((resolve) => acks.push(resolve))
        sender.send(frame)
        return acked
      })
      await all.promise
      const seconds = (performance.now() - started) / 1000
      return { deliveries: wanted, seconds, perSecond: wanted / seconds }
    },
    close: async () => {
      for (const socket of [sender, ...receivers]) socket.close()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

export async function run(): Promise<void> {
  console.log(`members ${MEMBERS} (1 sender), messages ${MESSAGES}, in flight ${IN_FLIGHT}, repeats ${REPEATS}`)
  const mls = await mlsSide()
  await mls.run() // warm-up (JIT, SQLite statements)
  const raw = await rawSide(RAW_FRAME_BYTES)
  await raw.run()
  const best = { mls: undefined as RunResult | undefined, raw: undefined as RunResult | undefined }
  for (let i = 0; i < REPEATS; i++) {
    const m = await mls.run()
    const r = await raw.run()
    if (best.mls === undefined || m.perSecond > best.mls.perSecond) best.mls = m
    if (best.raw === undefined || r.perSecond > best.raw.perSecond) best.raw = r
  }
  await mls.close()
  await raw.close()
  const ratio = best.mls!.perSecond / best.raw!.perSecond
  console.log('side                        deliveries/s   messages/s   seconds')
  for (const [name, result] of [
    ['apps/server (MLS, SQLite)', best.mls!],
    [`raw ws relay (${RAW_FRAME_BYTES} B frames)`, best.raw!]
  ] as const) {
    console.log(
      `${name.padEnd(28)}${result.perSecond.toFixed(0).padStart(12)}${(result.perSecond / (MEMBERS - 1)).toFixed(0).padStart(13)}${result.seconds.toFixed(2).padStart(10)}`
    )
  }
  console.log(`ratio apps/server / raw ws: ${ratio.toFixed(3)}`)
  console.log(
    JSON.stringify({ bench: 'server-fanout', members: MEMBERS, messages: MESSAGES, inFlight: IN_FLIGHT, mlsPerSecond: Math.round(best.mls!.perSecond), rawPerSecond: Math.round(best.raw!.perSecond), ratio: Number(ratio.toFixed(4)) })
  )
}

// Its own entry point: `node dist/server-fanout.js` (`pnpm bench:server`).
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await run()
  process.exit(0)
}
