import { describe, expect, it } from 'vitest'
import type { MlsClient } from '@mls/core'
import { memoryClientStore } from '@mls/storage-memory'
import { converged, createTestNetwork, groupWith, inbox, joined, keepOpen, providerCases, waitFor } from '../src/index.js'

describe.each(providerCases())('offline members and restarts ($name)', ({ crypto, ciphersuite }) => {
  it('a member offline for several epochs catches up from its cursor, in order, with nothing lost or duplicated', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((u) => net.client(u)))
    for (const c of [alice!, bob!, carol!]) await c.publishKeyPackages({ count: 2 })
    const [a, b, c] = await groupWith(alice!, [bob!, carol!])
    const carolInbox = inbox(c)

    net.transport.setOnline('carol/phone', false)
    await a.send('one')
    await a.update()
    await b.send('two')
    await b.update()
    await a.send('three')
    await a.update()
    await converged([a, b], 4n)
    expect(c.epoch).toBe(1n)
    expect(carolInbox.texts).toEqual([])

    net.transport.setOnline('carol/phone', true)
    await converged([a, b, c], 4n)
    await waitFor(() => carolInbox.texts.length === 3, 'carol to catch up')
    expect(carolInbox.texts).toEqual(['one', 'two', 'three'])
    await c.sync()
    expect(carolInbox.texts).toEqual(['one', 'two', 'three'])
  })

  it('a member rebuilt from its store after every step continues with nothing lost or applied twice', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const carol = await net.client('carol')
    const bobStore = memoryClientStore({ name: 'bob' })
    // Closing a client closes its store; reopen over the same memory by keeping the store open.
    const openBob = (): Promise<MlsClient> => net.client('bob', { store: keepOpen(bobStore) })
    let bob = await openBob()
    for (const c of [alice, bob, carol]) await c.publishKeyPackages({ count: 2 })
    const a = await alice.createGroup()
    const gid = a.groupId
    const restart = async (): Promise<MlsClient> => {
      await bob.close()
      bob = await openBob()
      return bob
    }

    await alice.addUsers(a, ['bob'])
    await joined(bob, gid)
    await restart()
    await converged([a, bob.group(gid)!], 1n)

    await alice.addUsers(a, ['carol'])
    const c = await joined(carol, gid)
    await restart()
    await converged([a, bob.group(gid)!, c], 2n)

    const seen: string[] = []
    const sent = await a.send('before restart')
    await waitFor(() => bob.group(gid)!.cursor === sent.seq, 'bob to process the message')
    await restart()
    bob.group(gid)!.on('message:received', (m) => seen.push(new TextDecoder().decode(m.plaintext)))
    await a.send('after restart')
    await waitFor(() => seen.includes('after restart'), 'bob reads after restart')
    expect(seen).toEqual(['after restart'])

    await bob.group(gid)!.update()
    await restart()
    await converged([a, bob.group(gid)!, c], 3n)

    await a.removeMembers(['carol'])
    await restart()
    await converged([a, bob.group(gid)!], 4n)
    expect(bob.group(gid)!.members().map((m) => m.clientId)).toEqual(['alice/phone', 'bob/phone'])
    const aliceSeen: string[] = []
    a.on('message:received', (m) => aliceSeen.push(new TextDecoder().decode(m.plaintext)))
    await bob.group(gid)!.send('still here')
    await waitFor(() => aliceSeen.includes('still here'), 'alice reads bob after restarts')
  })

  it('a crash between creating a commit and its confirmation resumes without an epoch fork', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const bobStore = memoryClientStore({ name: 'bob' })
    let bob = await net.client('bob', { store: keepOpen(bobStore) })
    for (const c of [alice, bob]) await c.publishKeyPackages({ count: 2 })
    const [a, b] = await groupWith(alice, [bob])

    // Bob creates and posts an update commit, then "crashes" before it is confirmed:
    // he goes offline right after posting so he never sees the confirmation.
    const original = net.services.channel.postCommit.bind(net.services.channel)
    net.services.channel.postCommit = async (...args: Parameters<typeof original>) => {
      if (args[0] === 'bob/phone') net.transport.setOnline('bob/phone', false)
      return original(...args)
    }
    await expect(b.update()).rejects.toMatchObject({ code: 'TRANSPORT_UNAVAILABLE' })
    expect(b.status).toBe('committing')
    net.services.channel.postCommit = original
    await bob.close()
    net.transport.setOnline('bob/phone', true)

    bob = await net.client('bob', { store: keepOpen(bobStore) })
    const b2 = bob.group(a.groupId)!
    await converged([a, b2], 2n)
    expect(b2.hasPendingCommit).toBe(false)
    const got: string[] = []
    a.on('message:received', (m) => got.push(new TextDecoder().decode(m.plaintext)))
    await b2.send('no fork')
    await waitFor(() => got.includes('no fork'), 'alice reads bob after recovery')
  })
})


describe('background sync failures', () => {
  it('a failed background sync is retried with backoff until the member has caught up, without any new push', async () => {
    const { crypto, ciphersuite } = providerCases().at(-1)!
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const bob = await net.client('bob')
    await bob.publishKeyPackages({ count: 1 })
    const [a, b] = await groupWith(alice, [bob])
    const bobInbox = inbox(b)
    const failures: unknown[] = []
    bob.on('sync:failed', (e) => failures.push(e.error))
    // Bob's next three fetches fail, as a flaky server would.
    const original = net.services.channel.fetchEntries.bind(net.services.channel)
    let failuresLeft = 3
    net.services.channel.fetchEntries = async (...args: Parameters<typeof original>) => {
      if (args[0] === 'bob/phone' && failuresLeft > 0) {
        failuresLeft--
        throw Object.assign(new Error('flaky'), { code: 'TRANSPORT_UNAVAILABLE' })
      }
      return original(...args)
    }
    net.transport.setOnline('bob/phone', false)
    await a.send('missed push')
    net.transport.setOnline('bob/phone', true)
    await a.send('gap push')
    await waitFor(() => bobInbox.texts.length === 2, 'bob to catch up after retries', 20_000)
    expect(bobInbox.texts).toEqual(['missed push', 'gap push'])
    expect(failures.length).toBeGreaterThanOrEqual(1)
    expect(failuresLeft).toBe(0)
  })
})
