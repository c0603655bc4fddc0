import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { afterEach, describe, expect, it } from 'vitest'
import type { Group } from '@mls/core'
import { PROTOCOL_VERSION, decodeServerFrame, encodeChallenge, encodeClientFrame, encodeEntryPush, encodeError, encodeResponse, type Request } from '../src/codec.js'
import { authenticateRequest, converged, createWsNetwork, credentialsFor, groupWith, inbox, rawSocket, waitFor, type RawSocket, type WsNetwork } from './helpers.js'

// `pnpm fuzz` sets these for the full run (docs/protocol.md); `pnpm test` runs 6000 frames.
const totalFrames = Number(process.env.MLS_FUZZ_FRAMES ?? 6000)
const connectionCount = Number(process.env.MLS_FUZZ_CONNECTIONS ?? 6)
/** Wall-clock end of sending (ms since the epoch), for a run on a busy machine: the figures report the frames sent by then. */
const deadline = Number(process.env.MLS_FUZZ_DEADLINE ?? Infinity)

let net: WsNetwork | undefined
afterEach(async () => {
  await net?.close()
  net = undefined
})

function collectGarbage(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc')
    return runInNewContext('gc') as () => void
  } catch {
    return undefined
  }
}

/** xorshift32: the same seed gives the same frames. */
function prng(seed: number) {
  let s = seed >>> 0 || 1
  const next = () => {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    return s / 0x100000000
  }
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(items: readonly T[]) => items[Math.floor(next() * items.length)] as T }
}

type Random = ReturnType<typeof prng>

interface Figures {
  framesSent: number
  random: number
  truncated: number
  oversized: number
  mutated: number
  valid: number
  errorFrames: number
  responses: number
  closes: number
  unanswered: number
  reconnects: number
  closeCodes: Record<number, number>
  errorCodes: Record<string, number>
}

function mutate(frame: Uint8Array, random: Random): Uint8Array {
  const out = [...frame]
  const edits = 1 + random.int(4)
  for (let i = 0; i < edits; i++) {
    const at = random.int(Math.max(out.length, 1))
    switch (random.int(5)) {
      case 0:
        out[at] = random.int(256)
        break
      case 1:
        out[at] = (out[at] ?? 0) ^ (1 << random.int(8))
        break
      case 2:
        out.splice(at, 0, random.int(256))
        break
      case 3:
        out.splice(at, 1 + random.int(4))
        break
      default:
        // a length or count field pushed to an extreme
        out.splice(at, 4, 0xff, 0xff, 0xff, random.int(256))
    }
  }
  if (random.next() < 0.85 && out.length > 0) out[0] = PROTOCOL_VERSION
  return new Uint8Array(out)
}

describe('fuzz: random, truncated, oversized and mutated frames from several connections', () => {
  it('answers every frame with an error or a close, never crashes, keeps serving an honest group, and stays bounded in memory', async () => {
    const maxFrameBytes = 64 * 1024
    net = await createWsNetwork({
      // Every fuzzer connects from 127.0.0.1: the per-address cap before login is not what this run exercises.
      limits: { maxFrameBytes, requestsPerSecond: 1e6, requestBurst: 1e6, identityRequestsPerSecond: 1e6, identityRequestBurst: 1e6, maxProtocolErrors: 100, maxUnauthenticatedPerAddress: 1000 },
      // Generous: on a loaded CI machine the fuzzers may starve the honest clients for a while.
      client: { requestTimeoutMs: 60_000 }
    })
    const url = net.server.url
    const processFailures: unknown[] = []
    const onFailure = (error: unknown) => processFailures.push(error)
    process.on('uncaughtException', onFailure)
    process.on('unhandledRejection', onFailure)

    // The honest group.
    const alice = await net.client('alice')
    const bob = await net.client('bob')
    const carol = await net.client('carol')
    for (const c of [alice, bob, carol]) await c.publishKeyPackages({ count: 2 })
    const [a, b, c] = await groupWith(alice, [bob, carol])
    const honestErrors: unknown[] = []
    for (const client of [alice, bob, carol]) client.on('sync:failed', (e) => honestErrors.push(e.error))
    for (const g of [a, b, c]) g.on('message:rejected', (e) => honestErrors.push(e.error))
    const boxes = [inbox(a), inbox(b), inbox(c)]
    const sample = await a.send('sample')
    await waitFor(() => boxes.every((x) => x.texts.length === 1), 'the sample message')
    const [sampleEntry] = await net.services.channel.fetchEntries('alice/phone', a.groupId, sample.seq - 1)

    // Valid frames to truncate and mutate.
    const validRequests: Request[] = [
      { type: 'ping' },
      { type: 'countKeyPackages' },
      { type: 'lookupIdentity', clientId: 'alice/phone' },
      { type: 'fetchKeyPackages', userId: 'fuzz-target' },
      { type: 'fetchWelcomes', afterSeq: 0, limit: 10 },
      { type: 'fetchEntries', groupId: a.groupId, afterSeq: 0, limit: 10 },
      { type: 'createGroup', groupId: new Uint8Array(16).fill(0xaa), groupInfo: sampleEntry!.message },
      { type: 'postMessage', groupId: a.groupId, message: sampleEntry!.message },
      { type: 'postCommit', groupId: a.groupId, epoch: 1n, commit: sampleEntry!.message, welcome: new Uint8Array([0, 1, 0, 3]) },
      { type: 'postCommit', groupId: a.groupId, epoch: 1n, commit: sampleEntry!.message, groupInfo: new Uint8Array([0, 1, 0, 4]) },
      { type: 'uploadKeyPackages', keyPackages: [sampleEntry!.message], lastResort: new Uint8Array([0, 1, 0, 5]) }
    ]
    const staleCreds = await credentialsFor('stale/phone')
    const staleAuth = encodeClientFrame(1, {
      type: 'authenticate',
      clientId: staleCreds.clientId,
      signaturePublicKey: staleCreds.signaturePublicKey,
      ciphersuite: staleCreds.ciphersuite,
      register: true,
      signature: new Uint8Array(64).fill(1),
      serverUrl: 'ws://127.0.0.1/'
    })
    // Out of order: frames only a server may send.
    const serverFrames = [
      encodeResponse(7, { type: 'ping' }),
      encodeResponse(8, { type: 'postMessage', seq: 3 }),
      encodeEntryPush({ groupId: a.groupId, seq: 1, kind: 'application', epoch: 1n, sender: 'alice/phone', message: sampleEntry!.message }),
      encodeChallenge(new Uint8Array(32), 1024, new Uint8Array(32), new Uint8Array(64)),
      encodeError(9, 'INTERNAL', 'x')
    ]
    const corpus = [...validRequests.map((r, i) => encodeClientFrame(1000 + i, r)), staleAuth, ...serverFrames]

    const gc = collectGarbage()
    gc?.()
    const heapBefore = process.memoryUsage().heapUsed
    const rssBefore = process.memoryUsage().rss
    let heapPeak = heapBefore
    let rssPeak = rssBefore
    const figures: Figures = {
      framesSent: 0,
      random: 0,
      truncated: 0,
      oversized: 0,
      mutated: 0,
      valid: 0,
      errorFrames: 0,
      responses: 0,
      closes: 0,
      unanswered: 0,
      reconnects: 0,
      closeCodes: {},
      errorCodes: {}
    }

    const fuzzCredentials = new Map<number, Awaited<ReturnType<typeof credentialsFor>>>()
    async function open(authenticated: boolean, index: number): Promise<RawSocket> {
      const socket = await rawSocket(url)
      const challenge = await socket.next()
      const frame = challenge === undefined ? undefined : decodeServerFrame(challenge)
      if (frame?.kind !== 'challenge') throw new Error('no challenge')
      if (!authenticated) return socket
      const creds = fuzzCredentials.get(index) ?? (await credentialsFor(`fuzz-${index}/dev`))
      fuzzCredentials.set(index, creds)
      socket.send(encodeClientFrame(1, await authenticateRequest(creds, frame, url)))
      const answer = await socket.next()
      if (answer === undefined || decodeServerFrame(answer).kind !== 'response') throw new Error('fuzz authentication failed')
      return socket
    }

    async function fuzzer(index: number, frames: number): Promise<void> {
      const random = prng(0x5eed + index)
      const authenticated = index % 2 === 1
      let socket = await open(authenticated, index)
      for (let i = 0; i < frames && Date.now() < deadline; i++) {
        if (socket.closeCode !== undefined) {
          figures.reconnects++
          socket = await open(authenticated, index)
        }
        let frame: Uint8Array
        const roll = random.next()
        if (roll < 0.25) {
          figures.random++
          frame = new Uint8Array(random.int(300))
          for (let j = 0; j < frame.length; j++) frame[j] = random.int(256)
          if (frame.length > 1 && random.next() < 0.9) frame[0] = PROTOCOL_VERSION
        } else if (roll < 0.5) {
          figures.truncated++
          const valid = random.pick(corpus)
          frame = valid.slice(0, random.int(valid.length))
        } else if (roll < 0.52) {
          figures.oversized++
          frame = new Uint8Array(maxFrameBytes + 1 + random.int(maxFrameBytes))
          frame.set(random.pick(corpus).subarray(0, 6))
        } else if (roll < 0.95) {
          figures.mutated++
          frame = mutate(random.pick(corpus), random)
        } else {
          figures.valid++
          frame = random.pick(corpus)
        }
        socket.send(frame)
        figures.framesSent++
        const answer = await socket.next(5000)
        if (answer === undefined) {
          if (socket.closeCode === undefined) figures.unanswered++
          else {
            figures.closes++
            figures.closeCodes[socket.closeCode] = (figures.closeCodes[socket.closeCode] ?? 0) + 1
          }
          continue
        }
        const decoded = decodeServerFrame(answer)
        if (decoded.kind === 'error') {
          figures.errorFrames++
          figures.errorCodes[decoded.code] = (figures.errorCodes[decoded.code] ?? 0) + 1
        } else figures.responses++
        // An error frame may come with a close: let it arrive before the next frame.
        await new Promise((r) => setImmediate(r))
        if (socket.closeCode === undefined && decoded.kind === 'error' && ['UNSUPPORTED_PROTOCOL_VERSION', 'AUTHENTICATION_FAILED', 'PAYLOAD_TOO_LARGE', 'UNKNOWN_IDENTITY', 'IDENTITY_CONFLICT', 'INVALID_ARGUMENT', 'UNSUPPORTED_CIPHERSUITE'].includes(decoded.code)) {
          await waitFor(() => socket.closeCode !== undefined || socket.frames.length > 0, 'a close after a fatal error', 2000).catch(() => undefined)
        }
        if (socket.closeCode !== undefined) {
          figures.closes++
          figures.closeCodes[socket.closeCode] = (figures.closeCodes[socket.closeCode] ?? 0) + 1
          socket.frames.length = 0
        }
        if (i % 200 === 0) {
          const usage = process.memoryUsage()
          heapPeak = Math.max(heapPeak, usage.heapUsed)
          rssPeak = Math.max(rssPeak, usage.rss)
        }
        if (index === 0 && i % 2_000 === 0 && i > 0) console.log(`fuzz: ${figures.framesSent} frames so far at ${new Date().toISOString()}, heap ${(process.memoryUsage().heapUsed / 1048576).toFixed(1)} MiB`)
      }
      socket.close()
    }

    // The honest group keeps talking and committing while the fuzzers run.
    let fuzzing = true
    const honestSent: string[] = []
    const honest = (async () => {
      const groups: Group[] = [a, b, c]
      let n = 0
      while (fuzzing) {
        const g = groups[n % 3]!
        const text = `honest ${n}`
        await g.send(text)
        honestSent.push(text)
        if (n % 10 === 9) await g.update()
        n++
        // A long run paces the honest group (a steady conversation, not a flood of its own).
        if (totalFrames > 6000) await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })()

    const connections = connectionCount
    const framesPerConnection = Math.ceil(totalFrames / connections)
    await Promise.all([...Array(connections).keys()].map((i) => fuzzer(i, framesPerConnection)))
    fuzzing = false
    await honest

    // The last update may have been committed by b or c and not yet applied by a: converge on the highest epoch.
    const epoch = [a, b, c].reduce((highest, g) => (g.epoch > highest ? g.epoch : highest), 0n)
    await Promise.all([a, b, c].map((g) => g.sync()))
    await converged([a, b, c], epoch).catch((error: unknown) => {
      const state = [a, b, c].map((g) => ({ epoch: g.epoch, status: g.status, cursor: g.cursor }))
      throw new Error(`${String(error)}: ${JSON.stringify(state, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}; honest errors ${honestErrors.map(String).join('; ')}`)
    })
    await waitFor(() => boxes.every((box) => box.texts.length === honestSent.length + 1), 'every honest message delivered to every member', 30_000)
    for (const box of boxes) expect([...box.texts].sort()).toEqual(['sample', ...honestSent].sort())

    await waitFor(() => net!.server.stats().connections === 3, 'fuzz connections to be released')
    gc?.()
    await new Promise((r) => setTimeout(r, 50))
    gc?.()
    const heapAfter = process.memoryUsage().heapUsed
    const rssAfter = process.memoryUsage().rss
    const stats = net.server.stats()
    process.off('uncaughtException', onFailure)
    process.off('unhandledRejection', onFailure)

    const crashes = stats.internalErrors + processFailures.length
    const mb = (n: number) => `${(n / 1048576).toFixed(1)} MiB`
    console.log(
      [
        `fuzz: ${figures.framesSent} frames sent from ${connections} connections (${figures.random} random, ${figures.truncated} truncated, ${figures.oversized} oversized, ${figures.mutated} mutated, ${figures.valid} valid or out-of-order replays)`,
        `fuzz: ${figures.errorFrames} error frames, ${figures.responses} responses, ${figures.closes} closes ${JSON.stringify(figures.closeCodes)}, ${figures.unanswered} unanswered, ${figures.reconnects} reconnects`,
        `fuzz: error codes ${JSON.stringify(figures.errorCodes)}`,
        `fuzz: crashes ${crashes} (internal errors ${stats.internalErrors}, process failures ${processFailures.length}); honest group: ${honestSent.length} messages and ${epoch - 1n} commits, ${honestErrors.length} errors`,
        `fuzz: heap before ${mb(heapBefore)}, peak ${mb(heapPeak)}, after ${mb(heapAfter)} (gc ${gc === undefined ? 'not exposed' : 'exposed'}); rss before ${mb(rssBefore)}, peak ${mb(rssPeak)}, after ${mb(rssAfter)}; server connections after ${stats.connections}`
      ].join('\n')
    )

    expect(figures.framesSent).toBeGreaterThanOrEqual(Number.isFinite(deadline) ? 1 : connections * framesPerConnection)
    expect(figures.unanswered).toBe(0)
    expect(figures.errorFrames + figures.responses + figures.closes).toBeGreaterThanOrEqual(figures.framesSent)
    expect(figures.errorFrames).toBeGreaterThan(figures.framesSent / 2)
    expect(crashes).toBe(0)
    expect(honestErrors).toEqual([])
    expect(honestSent.length).toBeGreaterThan(10)
    expect(heapAfter - heapBefore).toBeLessThan(64 * 1048576)
  })
})
