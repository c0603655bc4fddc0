import { afterEach, describe, expect, it } from 'vitest'
import { fourFlows, groupWith } from '@mls/scenarios'
import { converged, createWsNetwork, crypto, joined, type WsNetwork } from './helpers.js'

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
    expect(await health.json()).toMatchObject({ status: 'ok', protocolVersion: 2 })

    await fourFlows({ alice: await net.client('alice'), bob: await net.client('bob'), carol: await net.client('carol'), bobCrypto: crypto })
    expect(net.server.stats().internalErrors).toBe(0)
  })

  it('two clients commit in the same epoch over the network: one wins, the group converges', async () => {
    net = await createWsNetwork()
    const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((u) => net!.client(u)))
    for (const c of [alice!, bob!, carol!, dave!]) await c.publishKeyPackages({ count: 2 })
    const [a, b] = await groupWith(alice!, [bob!])

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
