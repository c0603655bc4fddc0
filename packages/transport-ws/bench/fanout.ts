/**
 * Fan-out benchmark: one group of MEMBERS members on the WebSocket server over
 * loopback, application messages (real MLS PrivateMessages) posted at
 * increasing rates, against a raw `ws` broadcast server relaying the same
 * bytes to the same number of sockets, in the same run.
 *
 * Processes: the main thread hosts both servers (the MLS Directory + Group
 * Channel on `webSocketServer`, and the raw `ws` broadcaster); one worker
 * thread holds every client socket (the sender and the MEMBERS receivers) for
 * both sides, so each side gets the same two event loops.
 *
 * What is measured on the MLS side: the transport and the Group Channel (a
 * postMessage request, the service's validation, replay check, log append,
 * and a push to every member, the sender included), i.e. fan-out. Receivers
 * do not decrypt during it: decrypting in MEMBERS receivers in one process
 * would measure crypto, not fan-out. Decryption cost is measured separately
 * and reported as the ceiling it puts on end-to-end delivery in one process.
 *
 * Environment: BENCH_MEMBERS (50), BENCH_RATES (messages/s, comma separated),
 * BENCH_DURATION_MS per step (1500), BENCH_MAX_MESSAGES per step (1500; a
 * fast step is shorter), BENCH_REPEATS (2: each step runs that many times per
 * side, alternating, and the run with the lowest p99 is kept, to damp noise
 * from other load on the machine), BENCH_PAYLOAD_BYTES (100), BENCH_P99_MS (p99 budgets
 * in ms, comma separated: 3,5,10,25,50,100).
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
import { WebSocket, WebSocketServer } from 'ws'
import { createMlsClient, type MlsClient } from '@mls/core'
import type { Connection, Transport } from '@mls/core/interfaces'
import { createApplicationMessage, decodeMlsMessage, emptyPskIndex, encodeMlsMessage, getCiphersuiteFromName, processPrivateMessage } from '@mls/core/mls'
import { createServices } from '@mls/server'
import { nodeCrypto } from '@mls/crypto-node'
import { memoryClientStore, memoryServerStore } from '@mls/storage-memory'
import { webSockets } from '../src/index.js'
import { webSocketServer } from '../src/server.js'

const MEMBERS = Number(process.env['BENCH_MEMBERS'] ?? 50)
const RATES = (process.env['BENCH_RATES'] ?? '500,1000,2000,3000,4500,6000').split(',').map(Number)
const DURATION_MS = Number(process.env['BENCH_DURATION_MS'] ?? 1500)
const MAX_MESSAGES_PER_STEP = Number(process.env['BENCH_MAX_MESSAGES'] ?? 1500)
const REPEATS = Number(process.env['BENCH_REPEATS'] ?? 2)
const PAYLOAD_BYTES = Number(process.env['BENCH_PAYLOAD_BYTES'] ?? 100)
const P99_BUDGETS_MS = (process.env['BENCH_P99_MS'] ?? '3,5,10,25,50,100').split(',').map(Number)
const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'

interface StepResult {
  rate: number
  offered: number
  deliveries: number
  expected: number
  seconds: number
  perSecond: number
  p50: number
  p99: number
  errors: number
}

interface WorkerResult {
  steps: { raw: StepResult; mls: StepResult }[]
  setupMs: number
  messageBytes: number
  decryptMicros: number
}

/** 48 bits of the AEAD tag: unique per message in this run. */
function fingerprint(bytes: Uint8Array): number {
  const n = bytes.length
  const view = new DataView(bytes.buffer, bytes.byteOffset + n - 6, 6)
  return view.getUint32(0) * 65536 + view.getUint16(4)
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number
}

async function runStep(
  rate: number,
  messages: readonly Uint8Array[],
  receivers: number,
  send: (bytes: Uint8Array) => Promise<void> | void,
  onDelivery: (handler: (bytes: Uint8Array) => void) => void
): Promise<StepResult> {
  const sentAt = new Map<number, number>()
  const expected = messages.length * receivers
  const latencies = new Float64Array(expected)
  let deliveries = 0
  let lastDelivery = 0
  let errors = 0
  let done: () => void = () => undefined
  const finished = new Promise<void>((resolve) => (done = resolve))
  onDelivery((bytes) => {
    const at = sentAt.get(fingerprint(bytes))
    if (at === undefined) return
    const now = performance.now()
    if (deliveries < expected) latencies[deliveries] = now - at
    deliveries++
    lastDelivery = now
    if (deliveries === expected) done()
  })
  const start = performance.now()
  let sent = 0
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(messages.length, Math.floor(((performance.now() - start) / 1000) * rate) + 1)
      while (sent < due) {
        const bytes = messages[sent++] as Uint8Array
        sentAt.set(fingerprint(bytes), performance.now())
        const result = send(bytes)
        if (result instanceof Promise) result.catch(() => errors++)
      }
      if (sent >= messages.length) resolve()
      else setTimeout(tick, 1)
    }
    tick()
  })
  await Promise.race([finished, new Promise((r) => setTimeout(r, 5000))])
  const seconds = ((deliveries === 0 ? performance.now() : lastDelivery) - start) / 1000
  const measured = latencies.subarray(0, Math.min(deliveries, expected)).sort()
  return {
    rate,
    offered: rate * receivers,
    deliveries,
    expected,
    seconds,
    perSecond: deliveries / seconds,
    p50: percentile(measured, 50),
    p99: percentile(measured, 99),
    errors
  }
}

async function clientSide(urls: { mls: string; raw: string }): Promise<WorkerResult> {
  const setupStart = performance.now()
  const crypto = nodeCrypto()
  const connections = new Map<string, Connection>()
  const transport = (name: string): Transport => {
    const inner = webSockets({ url: urls.mls, WebSocket, requestTimeoutMs: 60_000 })
    return {
      specificationVersion: inner.specificationVersion,
      [Symbol.toStringTag]: 'BenchTransport',
      connect: async (credentials, options) => {
        const connection = await inner.connect(credentials, options)
        connections.set(name, connection)
        return connection
      }
    }
  }
  const names = [...Array(MEMBERS).keys()].map((i) => `member${i}`)
  const clients: MlsClient[] = []
  for (const name of names) {
    clients.push(await createMlsClient({ userId: name, deviceId: 'bench', crypto, store: memoryClientStore(), transport: transport(name), autoSync: false, ciphersuite: SUITE }))
  }
  for (const c of clients.slice(1)) await c.publishKeyPackages({ count: 1 })
  const sender = clients[0] as MlsClient
  const group = await sender.createGroup()
  await sender.addUsers(group, names.slice(1))
  for (const c of clients.slice(1)) await c.processWelcomes()
  if (clients.some((c) => c.group(group.groupId)?.epoch !== 1n)) throw new Error('not every member joined')

  // Real PrivateMessages from the sender's state, posted later at controlled rates.
  const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(SUITE))
  const stepCount = (rate: number) => Math.min(MAX_MESSAGES_PER_STEP, Math.ceil((rate * DURATION_MS) / 1000))
  const total = RATES.reduce((n, rate) => n + stepCount(rate), 0) * REPEATS
  const messages: Uint8Array[] = []
  let state = group.mlsState!
  const payload = new Uint8Array(PAYLOAD_BYTES)
  for (let i = 0; i < total; i++) {
    new DataView(payload.buffer).setUint32(0, i)
    const r = await createApplicationMessage(state, payload, cs)
    state = r.newState
    messages.push(encodeMlsMessage({ version: 'mls10', wireformat: 'mls_private_message', privateMessage: r.privateMessage }))
  }

  // Decryption cost, for the report: one receiver, in order.
  const receiverState = clients[1]!.group(group.groupId)!.mlsState!
  let rs = receiverState
  const decryptCount = Math.min(300, messages.length)
  const decryptStart = performance.now()
  for (let i = 0; i < decryptCount; i++) {
    const decoded = decodeMlsMessage(messages[i]!, 0)![0]
    if (decoded.wireformat !== 'mls_private_message') throw new Error('not a PrivateMessage')
    const result = await processPrivateMessage(rs, decoded.privateMessage, emptyPskIndex, cs)
    if (result.kind !== 'applicationMessage') throw new Error('decryption failed')
    rs = result.newState
  }
  const decryptMicros = ((performance.now() - decryptStart) * 1000) / decryptCount

  // MLS side: every member's connection receives pushes; the sender posts over its own.
  let mlsHandler: (bytes: Uint8Array) => void = () => undefined
  for (const name of names) {
    connections.get(name)!.channel.subscribe((event) => {
      if (event.type === 'entry:appended' && event.entry.kind === 'application') mlsHandler(event.entry.message)
    })
  }
  const senderChannel = connections.get(names[0]!)!.channel
  const groupId = group.groupId

  // Raw side: MEMBERS sockets, one of them the sender; the server relays each message to all.
  let rawHandler: (bytes: Uint8Array) => void = () => undefined
  const rawSockets = await Promise.all(
    names.map(
      () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(urls.raw, { perMessageDeflate: false })
          ws.binaryType = 'nodebuffer'
          ws.on('message', (data: Buffer) => rawHandler(data))
          ws.once('open', () => resolve(ws))
          ws.once('error', reject)
        })
    )
  )
  const rawSender = rawSockets[0] as WebSocket
  const setupMs = performance.now() - setupStart

  const steps: WorkerResult['steps'] = []
  let offset = 0
  const lowerP99 = (a: StepResult | undefined, b: StepResult) => (a === undefined || b.p99 < a.p99 || (b.deliveries > a.deliveries && a.deliveries < a.expected) ? b : a)
  for (const rate of RATES) {
    const count = stepCount(rate)
    let bestRaw: StepResult | undefined
    let bestMls: StepResult | undefined
    for (let repeat = 0; repeat < REPEATS; repeat++) {
      const batch = messages.slice(offset, offset + count)
      offset += count
      bestRaw = lowerP99(bestRaw, await runStep(rate, batch, MEMBERS, (bytes) => rawSender.send(bytes), (h) => (rawHandler = h)))
      await new Promise((r) => setTimeout(r, 150))
      bestMls = lowerP99(bestMls, await runStep(rate, batch, MEMBERS, (bytes) => senderChannel.postMessage(groupId, bytes).then(() => undefined), (h) => (mlsHandler = h)))
      await new Promise((r) => setTimeout(r, 150))
    }
    steps.push({ raw: bestRaw!, mls: bestMls! })
  }

  for (const ws of rawSockets) ws.terminate()
  await Promise.allSettled(clients.map((c) => c.close()))
  return { steps, setupMs, messageBytes: messages[0]!.length, decryptMicros }
}

async function main(): Promise<void> {
  // Every bench member registers from 127.0.0.1: lift the per-address registration limit.
  const services = createServices({ store: memoryServerStore(), crypto: nodeCrypto(), limits: { registrationBurst: 100_000, registrationsPerHour: 100_000 } })
  const server = await webSocketServer({
    services,
    limits: {
      requestsPerSecond: 1e6,
      requestBurst: 1e6,
      identityRequestsPerSecond: 1e6,
      identityRequestBurst: 1e6,
      maxInFlightRequests: 100_000,
      maxConnectionsPerIdentity: 4
    }
  })
  const raw = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
  await new Promise<void>((resolve) => raw.once('listening', () => resolve()))
  raw.on('connection', (ws) => {
    ws.on('message', (data: Buffer) => {
      for (const client of raw.clients) if (client.readyState === WebSocket.OPEN) client.send(data, { binary: true })
    })
  })
  const rawPort = (raw.address() as { port: number }).port

  console.log(`fan-out benchmark: ${MEMBERS} members, rates ${RATES.join(', ')} messages/s, up to ${DURATION_MS} ms or ${MAX_MESSAGES_PER_STEP} messages per step, best p99 of ${REPEATS} runs per step and side, ${PAYLOAD_BYTES}-byte plaintexts`)
  const worker = new Worker(new URL(import.meta.url), { workerData: { mls: server.url, raw: `ws://127.0.0.1:${rawPort}/` } })
  const result = await new Promise<WorkerResult>((resolve, reject) => {
    worker.once('message', (m: WorkerResult) => resolve(m))
    worker.once('error', reject)
  })
  await worker.terminate()
  await server.close()
  await new Promise<void>((resolve) => raw.close(() => resolve()))
  for (const client of raw.clients) client.terminate()

  const f = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : '-')
  console.log(`setup ${f(result.setupMs / 1000, 1)} s; each message is a ${result.messageBytes}-byte MLS PrivateMessage; deliveries per message: ${MEMBERS} (sender included)`)
  console.log('')
  console.log('rate msg/s | offered deliv/s | raw ws deliv/s   p50 ms   p99 ms | MLS channel deliv/s   p50 ms   p99 ms  errors | ratio')
  for (const { raw: r, mls: m } of result.steps) {
    console.log(
      `${f(r.rate).padStart(10)} | ${f(r.offered).padStart(15)} | ${f(r.perSecond).padStart(14)} ${f(r.p50, 2).padStart(8)} ${f(r.p99, 2).padStart(8)} | ${f(m.perSecond).padStart(19)} ${f(m.p50, 2).padStart(8)} ${f(m.p99, 2).padStart(8)} ${String(m.errors + (m.expected - m.deliveries)).padStart(7)} | ${f(m.perSecond / r.perSecond, 2)}`
    )
  }
  // A step is sustained when everything arrived, at >= 90% of the offered rate, within the p99 budget.
  const best = (budget: number, pick: (x: WorkerResult['steps'][number]) => StepResult) =>
    result.steps
      .map(pick)
      .filter((s) => s.deliveries === s.expected && s.perSecond >= 0.9 * s.offered && s.p99 <= budget)
      .reduce((max, s) => Math.max(max, s.perSecond), 0)
  console.log('')
  console.log('p99 budget | raw ws sustained deliv/s | MLS channel sustained deliv/s | ratio')
  const budgets = P99_BUDGETS_MS.map((budget) => ({ budget, raw: best(budget, (x) => x.raw), mls: best(budget, (x) => x.mls) }))
  for (const b of budgets) {
    console.log(`${`${b.budget} ms`.padStart(10)} | ${f(b.raw).padStart(24)} | ${f(b.mls).padStart(29)} | ${b.raw > 0 ? f(b.mls / b.raw, 2) : '-'}`)
  }
  const rawPeak = Math.max(...result.steps.map((x) => x.raw.perSecond))
  const mlsPeak = Math.max(...result.steps.map((x) => x.mls.perSecond))
  console.log('')
  console.log(`peak measured: raw ws ${f(rawPeak)} deliveries/s, MLS channel ${f(mlsPeak)} deliveries/s, ratio ${f(mlsPeak / rawPeak, 2)}`)
  console.log(
    `decryption (not part of fan-out): ${f(result.decryptMicros)} µs per message per receiver; ${MEMBERS} receivers decrypting in one process would cap end-to-end delivery at about ${f(1e6 / result.decryptMicros)} deliveries/s`
  )
  console.log(JSON.stringify({ members: MEMBERS, sustained: budgets, rawPeak, mlsPeak, peakRatio: mlsPeak / rawPeak, decryptMicros: result.decryptMicros }))
}

if (isMainThread) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error)
      process.exit(1)
    }
  )
} else {
  clientSide(workerData as { mls: string; raw: string }).then(
    (result) => parentPort?.postMessage(result),
    (error: unknown) => {
      console.error(error)
      process.exit(1)
    }
  )
}
