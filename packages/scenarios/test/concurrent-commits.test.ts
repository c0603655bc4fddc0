import { describe, expect, it } from 'vitest'
import { converged, createTestNetwork, groupWith, joined, providerCases, waitFor } from '../src/index.js'
import { seededScheduler } from '@mls/transport-memory'

describe.each(providerCases())('two members commit in the same epoch ($name)', ({ crypto, ciphersuite }) => {
  it('one commit wins, the other intent is retried on the new epoch, and the group converges', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((u) => net.client(u)))
    for (const c of [alice!, bob!, carol!, dave!]) await c.publishKeyPackages({ count: 2 })
    const [a, b] = await groupWith(alice!, [bob!])

    // Both fetch KeyPackages and commit against epoch 1 at the same time.
    const [carolKps, daveKps] = await Promise.all([alice!.fetchKeyPackages(['carol']), bob!.fetchKeyPackages(['dave'])])
    const [ra, rb] = await Promise.all([a.addMembers(carolKps), b.addMembers(daveKps)])
    expect([ra.kind, rb.kind]).toEqual(['committed', 'committed'])
    const attempts = [ra.attempts, rb.attempts].sort()
    expect(attempts).toEqual([1, 2])

    const c = await joined(carol!, a.groupId)
    const d = await joined(dave!, a.groupId)
    await converged([a, b, c, d], 3n)
    expect(a.members().map((m) => m.clientId).sort()).toEqual(['alice/phone', 'bob/phone', 'carol/phone', 'dave/phone'])
  })

  it('a retried intent that another commit already fulfilled is reported as not needed', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((u) => net.client(u)))
    for (const c of [alice!, bob!, carol!]) await c.publishKeyPackages({ count: 2 })
    const [a, b, c] = await groupWith(alice!, [bob!, carol!])

    const [ra, rb] = await Promise.all([a.removeMembers(['carol']), b.removeMembers(['carol'])])
    const kinds = [ra.kind, rb.kind].sort()
    expect(kinds).toEqual(['committed', 'not-needed'])
    await converged([a, b], 2n)
    expect(c.status).toBe('removed')
  })

  it('converges under an adversarial network that reorders every request, response and push', async () => {
    const scheduler = seededScheduler(0xc0ffee, { maxDelayMs: 8 })
    const net = await createTestNetwork({ crypto, ciphersuite, scheduler })
    const clients = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((u) => net.client(u)))
    for (const c of clients) await c.publishKeyPackages({ count: 4 })
    const [alice, bob, carol, dave] = clients as [typeof clients[0], typeof clients[0], typeof clients[0], typeof clients[0]]
    const a = await alice.createGroup()
    await alice.addUsers(a, ['bob', 'carol'])
    const b = await joined(bob, a.groupId)
    const c = await joined(carol, a.groupId)
    const texts: string[] = []
    c.on('message:received', (m) => texts.push(new TextDecoder().decode(m.plaintext)))
    // Three members commit concurrently while messages fly.
    const results = await Promise.all([
      a.update(),
      b.update(),
      c.addMembers(await carol.fetchKeyPackages(['dave'])),
      a.send('m1'),
      b.send('m2')
    ])
    expect(results.slice(0, 3).every((r) => 'kind' in r && r.kind === 'committed')).toBe(true)
    const d = await joined(dave, a.groupId)
    await converged([a, b, c, d], 4n)
    await Promise.all([a.sync(), b.sync(), c.sync()])
    await waitFor(() => texts.length === 2, 'carol to read both messages')
    expect(texts.sort()).toEqual(['m1', 'm2'])
  })
})
