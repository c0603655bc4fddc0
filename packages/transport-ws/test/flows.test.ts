import { afterEach, describe, expect, it } from 'vitest'
import { decodeMlsMessage, emptyPskIndex, getCiphersuiteFromName, processPrivateMessage } from '@mls/core/mls'
import { converged, createWsNetwork, crypto, inbox, joined, waitFor, type WsNetwork } from './helpers.js'

let net: WsNetwork | undefined
afterEach(async () => {
  await net?.close()
  net = undefined
})

describe('the four flows over real sockets', () => {
  it('setup, add B then C with Welcomes, B updates, A removes B: equal epoch authenticators, B reads nothing after', async () => {
    net = await createWsNetwork()
    const health = await fetch(net.server.url.replace('ws://', 'http://') + 'health')
    expect(health.status).toBe(200)
    expect(await health.json()).toMatchObject({ status: 'ok', protocolVersion: 1 })

    // 1. Setup: every client uploads KeyPackages to the Directory.
    const alice = await net.client('alice')
    const bob = await net.client('bob')
    const carol = await net.client('carol')
    for (const c of [alice, bob, carol]) expect(await c.publishKeyPackages({ count: 3 })).toEqual({ oneTime: 3, lastResort: true })

    // 2. A creates the group and adds B, then C.
    const a = await alice.createGroup()
    expect(await alice.addUsers(a, ['bob'])).toMatchObject({ kind: 'committed', epoch: 1n, added: ['bob/phone'] })
    const b = await joined(bob, a.groupId)
    await converged([a, b], 1n)
    const aliceInbox = inbox(a)
    const bobInbox = inbox(b)
    await a.send('hello bob')
    await waitFor(() => bobInbox.texts.includes('hello bob'), 'bob to read alice')

    const bobEpochs: bigint[] = []
    b.on('epoch:changed', (e) => bobEpochs.push(e.epoch))
    expect(await alice.addUsers(a, ['carol'])).toMatchObject({ kind: 'committed', epoch: 2n })
    const c = await joined(carol, a.groupId)
    const carolInbox = inbox(c)
    const auth2 = await converged([a, b, c], 2n)
    expect(bobEpochs).toEqual([2n])
    expect(c.members().map((m) => m.clientId)).toEqual(['alice/phone', 'bob/phone', 'carol/phone'])
    await c.send('hi all, carol here')
    await waitFor(() => aliceInbox.texts.includes('hi all, carol here') && bobInbox.texts.includes('hi all, carol here'), 'carol read by all')

    // 3. B updates its leaf; every member, B included, applies it on delivery.
    expect(await b.update()).toMatchObject({ kind: 'committed', epoch: 3n })
    const auth3 = await converged([a, b, c], 3n)
    expect(auth3).not.toEqual(auth2)
    await b.send('bob after update')
    await waitFor(() => aliceInbox.texts.includes('bob after update') && carolInbox.texts.includes('bob after update'), 'bob read after update')

    // 4. A removes B; B can read nothing sent afterwards.
    const bobCompromised = b.mlsState!
    const removed = b.once('group:removed')
    expect(await a.removeMembers(['bob'])).toMatchObject({ kind: 'committed', epoch: 4n, removed: ['bob/phone'] })
    await converged([a, c], 4n)
    expect(await removed).toMatchObject({ epoch: 4n, by: 'alice/phone' })
    expect(b.status).toBe('removed')
    const bobCount = bobInbox.texts.length
    const sent = await a.send('secret after bob left')
    await waitFor(() => carolInbox.texts.includes('secret after bob left'), 'carol reads after removal')
    expect(bobInbox.texts.length).toBe(bobCount)

    await b.sync()
    expect(bobInbox.texts.length).toBe(bobCount)
    await expect(net.services.channel.fetchEntries('bob/phone', a.groupId, sent.seq - 1)).resolves.toEqual([])
    // The state B held before its removal cannot decrypt what was sent after.
    const carolEntries = await net.services.channel.fetchEntries('carol/phone', a.groupId, sent.seq - 1)
    expect(carolEntries).toHaveLength(1)
    const decoded = decodeMlsMessage(carolEntries[0]!.message, 0)![0]
    expect(decoded.wireformat).toBe('mls_private_message')
    const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
    if (decoded.wireformat === 'mls_private_message') {
      await expect(processPrivateMessage(bobCompromised, decoded.privateMessage, emptyPskIndex, cs)).rejects.toThrow()
    }
    expect(net.server.stats().internalErrors).toBe(0)
  })

  it('two clients commit in the same epoch over the network: one wins, the group converges', async () => {
    net = await createWsNetwork()
    const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((u) => net!.client(u)))
    for (const c of [alice!, bob!, carol!, dave!]) await c.publishKeyPackages({ count: 2 })
    const a = await alice!.createGroup()
    await alice!.addUsers(a, ['bob'])
    const b = await joined(bob!, a.groupId)
    await converged([a, b], 1n)

    const [carolKps, daveKps] = await Promise.all([alice!.fetchKeyPackages(['carol']), bob!.fetchKeyPackages(['dave'])])
    const [ra, rb] = await Promise.all([a.addMembers(carolKps), b.addMembers(daveKps)])
    expect([ra.kind, rb.kind]).toEqual(['committed', 'committed'])
    expect([ra.attempts, rb.attempts].sort()).toEqual([1, 2])
    const c = await joined(carol!, a.groupId)
    const d = await joined(dave!, a.groupId)
    await converged([a, b, c, d], 3n)
    expect(a.members().map((m) => m.clientId).sort()).toEqual(['alice/phone', 'bob/phone', 'carol/phone', 'dave/phone'])

    // Concurrent updates from every member while messages fly.
    const results = await Promise.all([a.update(), b.update(), c.update(), d.send('in the race')])
    expect(results.slice(0, 3).every((r) => 'kind' in r && r.kind === 'committed')).toBe(true)
    await converged([a, b, c, d], 6n)
  })
})
