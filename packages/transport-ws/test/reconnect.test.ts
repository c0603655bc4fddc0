import { afterEach, describe, expect, it } from 'vitest'
import { errorCode } from '@mls/core'
import type { ChannelEvent } from '@mls/core/interfaces'
import { converged, createWsNetwork, credentialsFor, groupWith, inbox, newGroupInfo, waitFor, type WsNetwork } from './helpers.js'

let net: WsNetwork | undefined
afterEach(async () => {
  await net?.close()
  net = undefined
})

describe('reconnecting over real sockets', () => {
  it('a client cut off for several epochs reconnects by itself and catches up in order, nothing lost or duplicated', async () => {
    net = await createWsNetwork()
    const link = await net.proxy()
    const alice = await net.client('alice')
    const bob = await net.client('bob')
    const carol = await net.client('carol', { viaProxy: link })
    for (const c of [alice, bob, carol]) await c.publishKeyPackages({ count: 2 })
    const [a, b, c] = await groupWith(alice, [bob, carol])
    const carolInbox = inbox(c)
    const failures: unknown[] = []
    carol.on('sync:failed', (e) => failures.push(e.error))

    link.cut()
    await a.send('one')
    await a.update()
    await b.send('two')
    await b.update()
    await a.send('three')
    await a.update()
    await converged([a, b], 4n)
    expect(c.epoch).toBe(1n)
    expect(carolInbox.texts).toEqual([])

    link.restore()
    await converged([a, b, c], 4n)
    await waitFor(() => carolInbox.texts.length >= 3, 'carol to catch up')
    await a.send('four')
    await waitFor(() => carolInbox.texts.length >= 4, 'carol to read after reconnecting')
    await c.sync()
    expect(carolInbox.texts).toEqual(['one', 'two', 'three', 'four'])
    expect(carolInbox.from).toEqual(['alice/phone', 'bob/phone', 'alice/phone', 'alice/phone'])
    const seqs = carolInbox.seqs as number[]
    expect([...seqs].sort((x, y) => x - y)).toEqual(seqs)
    expect(new Set(seqs).size).toBe(4)

    // Carol can commit again over the restored connection.
    expect(await c.update()).toMatchObject({ kind: 'committed', epoch: 5n })
    await converged([a, b, c], 5n)
    expect(failures.every((e) => String(errorCode(e)).startsWith('TRANSPORT_'))).toBe(true)
  })

  it.each(['both', 'to-client'] as const)(
    'a commit in flight when the link drops (%s lost) rejects with TRANSPORT_*, and the group settles after the reconnect',
    async (direction) => {
      net = await createWsNetwork()
      const link = await net.proxy()
      const alice = await net.client('alice')
      const bob = await net.client('bob', { viaProxy: link })
      for (const c of [alice, bob]) await c.publishKeyPackages({ count: 1 })
      const [a, b] = await groupWith(alice, [bob])

      link.blackhole(direction)
      const update = b.update()
      await new Promise((r) => setTimeout(r, 100))
      link.cut()
      const outcome = await update.then(
        (r) => r.kind,
        (e: unknown) => errorCode(e)
      )
      expect(outcome).toMatch(/^TRANSPORT_/)
      link.restore()
      // Accepted by the server (answer lost) or never received: either way both members end at epoch 2.
      await converged([a, b], 2n)
      expect(b.status).toBe('active')
      expect(await b.update()).toMatchObject({ kind: 'committed', epoch: 3n })
      await converged([a, b], 3n)
    }
  )

  it('in-flight requests reject with TRANSPORT_UNAVAILABLE, requests made while reconnecting go through, subscribers see connection:restored', async () => {
    net = await createWsNetwork()
    const link = await net.proxy()
    const creds = await credentialsFor('dave/laptop')
    const connection = await net.transport(link.url, { heartbeatIntervalMs: 0 }).connect(creds)
    const events: ChannelEvent['type'][] = []
    connection.channel.subscribe((e) => events.push(e.type))
    await connection.channel.createGroup(new Uint8Array([1, 2, 3]), { groupInfo: await newGroupInfo(creds, new Uint8Array([1, 2, 3])) })

    link.blackhole()
    const inFlight = connection.directory.countKeyPackages()
    await new Promise((r) => setTimeout(r, 50))
    link.cut()
    await expect(inFlight).rejects.toMatchObject({ code: 'TRANSPORT_UNAVAILABLE' })
    const whileDown = connection.directory.countKeyPackages()
    await new Promise((r) => setTimeout(r, 300))
    link.restore()
    await expect(whileDown).resolves.toEqual({ oneTime: 0, lastResort: false })
    await waitFor(() => events.includes('connection:restored'), 'connection:restored')
    await expect(connection.channel.fetchEntries(new Uint8Array([1, 2, 3]), 0)).resolves.toEqual([])
    await connection.close()
    await expect(connection.directory.countKeyPackages()).rejects.toMatchObject({ code: 'TRANSPORT_CLOSED' })
  })

  it('a dead network is detected by the heartbeat; requests time out with TRANSPORT_TIMEOUT', async () => {
    net = await createWsNetwork()
    const link = await net.proxy()
    const creds = await credentialsFor('erin/phone')
    const quiet = await net.transport(link.url, { heartbeatIntervalMs: 0, requestTimeoutMs: 300 }).connect(creds)
    link.blackhole()
    await expect(quiet.directory.countKeyPackages()).rejects.toMatchObject({ code: 'TRANSPORT_TIMEOUT' })
    await quiet.close()
    link.restore()

    const watched = await net
      .transport(link.url, { heartbeatIntervalMs: 100, requestTimeoutMs: 1000 })
      .connect({ ...creds, register: false })
    const events: ChannelEvent['type'][] = []
    watched.channel.subscribe((e) => events.push(e.type))
    link.blackhole()
    await new Promise((r) => setTimeout(r, 500))
    link.restore()
    await waitFor(() => events.includes('connection:restored'), 'connection:restored after the heartbeat dropped the dead link', 10_000)
    await expect(watched.directory.countKeyPackages()).resolves.toEqual({ oneTime: 0, lastResort: false })
    await watched.close()
  })

  it('connect rejects with the service error code, and the server close shuts the session', async () => {
    net = await createWsNetwork()
    const transport = net.transport()
    const creds = await credentialsFor('frank/phone')
    await expect(transport.connect({ ...creds, register: false })).rejects.toMatchObject({ code: 'UNKNOWN_IDENTITY' })
    const session = await transport.connect(creds)
    const other = await credentialsFor('frank/phone')
    await expect(transport.connect(other)).rejects.toMatchObject({ code: 'IDENTITY_CONFLICT' })
    await expect(transport.connect({ ...other, register: false })).rejects.toMatchObject({ code: 'AUTHENTICATION_FAILED' })
    await session.close()
    await session.close()
  })
})
