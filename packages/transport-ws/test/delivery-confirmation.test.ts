import { WebSocket } from 'ws'
import { afterEach, describe, expect, it } from 'vitest'
import { createMlsClient, type MlsClient } from '@mls/core'
import { memoryClientStore } from '@mls/storage-memory'
import { createWsNetwork, crypto, groupWith, waitFor, type WsNetwork } from './helpers.js'
import { decodeClientFrame } from '../src/codec.js'

/** A client socket that answers every ping with a pong of its own choosing, never the ping's number. */
class WrongPong extends WebSocket {
  pongs = 0
  /** The `afterSeq` of every fetchEntries this client sent: a fetch may move its cursor, a pong may not. */
  readonly fetchedAfter: number[] = []
  constructor(url: string) {
    super(url, { autoPong: false })
    this.on('ping', () => {
      this.pongs++
      this.pong('0')
    })
    const send = this.send.bind(this) as (...args: unknown[]) => void
    this.send = ((...args: unknown[]) => {
      const [data] = args
      if (data instanceof Uint8Array) {
        try {
          const { request } = decodeClientFrame(data)
          if (request.type === 'fetchEntries') this.fetchedAfter.push(request.afterSeq)
        } catch {
          // Not a request frame this test looks at.
        }
      }
      send(...args)
    }) as WebSocket['send']
  }
}

let network: WsNetwork | undefined
afterEach(async () => {
  await network?.close()
  network = undefined
})

describe('pushed entries count as fetched only once a pong proves they arrived', () => {
  it("moves the cursor of a client whose pong echoes the ping that followed the pushes, never one that answers with another number", async () => {
    network = await createWsNetwork({ limits: { heartbeatIntervalMs: 200 } })
    const net = network
    const alice = await net.client('alice')
    const sockets: WrongPong[] = []
    const bob: MlsClient = await createMlsClient({
      userId: 'bob',
      deviceId: 'phone',
      crypto,
      store: memoryClientStore({ name: 'bob' }),
      transport: net.transport(net.server.url, {
        WebSocket: class extends WrongPong {
          constructor(url: string) {
            super(url)
            sockets.push(this)
          }
        }
      })
    })
    for (const c of [alice, bob]) await c.publishKeyPackages({ count: 2 })
    const [a, b] = await groupWith(alice, [bob])
    const received: string[] = []
    b.on('message:received', (m) => received.push(new TextDecoder().decode(m.plaintext)))
    const connectionsBefore = sockets.length
    const bobFetchedTo = async () => (await net.store.readFetchCursors(a.groupIdHex)).find((c) => c.clientId === 'bob/phone')?.seq
    await net.services.channel.flushFetchCursors()
    const bobStart = await bobFetchedTo()

    for (let i = 0; i < 5; i++) await a.send(`m${i}`)
    const head = (await net.store.getGroup(a.groupIdHex))?.lastSeq ?? 0
    await waitFor(() => received.length === 5, 'bob to receive the 5 pushed messages')
    // Alice's pongs echo the ping: her cursor reaches the head without her fetching.
    await waitFor(async () => {
      await net.services.channel.flushFetchCursors()
      return (await net.store.readFetchCursors(a.groupIdHex)).find((c) => c.clientId === 'alice/phone')?.seq === head
    }, "alice's cursor to reach the head through confirmed pushes")
    // Bob answered pings (his connection stayed up) but never with their number: his cursor did not move.
    const pongsThen = sockets.at(-1)?.pongs ?? 0
    await waitFor(() => (sockets.at(-1)?.pongs ?? 0) >= pongsThen + 2, 'two more pings answered by bob')
    await net.services.channel.flushFetchCursors()
    expect(sockets.length).toBe(connectionsBefore)
    expect(bobStart).toBeLessThan(head)
    // Only bob's own fetches may have moved it (his client may catch up by fetching, on a slow machine it does):
    // never past the furthest point he fetched from.
    const fetchedTo = Math.max(bobStart ?? 0, ...sockets.flatMap((socket) => socket.fetchedAfter))
    expect(await bobFetchedTo()).toBe(fetchedTo === (bobStart ?? 0) ? bobStart : fetchedTo)
  })
})
