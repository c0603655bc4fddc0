/**
 * Regression tests of issue 7 ("no message lost, no group forked"): one per
 * defect, each failing before its fix.
 */
import { describe, expect, it } from 'vitest'
import type { Group, MlsClient, ReceivedMessage } from '@mls/core'
import { memoryClientStore } from '@mls/storage-memory'
import { seededScheduler, type Scheduler } from '@mls/transport-memory'
import { converged, createTestNetwork as createNetwork, faultyStore, groupWith, joined, keepOpen, providerCases, waitFor } from '../src/index.js'

const { crypto, ciphersuite } = providerCases().at(-1)!
const text = (m: ReceivedMessage): string => new TextDecoder().decode(m.plaintext)

/** The next message `group` receives; rejects at once if it rejects a message instead. */
function nextMessage(group: Group): Promise<ReceivedMessage> {
  return new Promise((resolve, reject) => {
    const offReceived = group.on('message:received', (m) => {
      offReceived()
      offRejected()
      resolve(m)
    })
    const offRejected = group.on('message:rejected', ({ error }) => {
      offReceived()
      offRejected()
      reject(error)
    })
  })
}

/** Resolves when `client` joins; rejects at once if it rejects a Welcome. */
function nextJoin(client: MlsClient): Promise<Group> {
  return new Promise((resolve, reject) => {
    const offJoined = client.on('group:joined', ({ group }) => {
      offJoined()
      offRejected()
      resolve(group)
    })
    const offRejected = client.on('welcome:rejected', ({ error }) => {
      offJoined()
      offRejected()
      reject(error)
    })
  })
}

/** Each test runs on an in-order network and on a seeded one that delays and reorders every message. */
describe.each([
  { network: 'in order', scheduler: (): Scheduler | undefined => undefined },
  { network: 'seeded reordering', scheduler: (): Scheduler | undefined => seededScheduler(7, { maxDelayMs: 3 }) }
])('issue 7 defects ($network)', ({ scheduler }) => {
  const createTestNetwork = (init: Parameters<typeof createNetwork>[0]) => {
    const s = scheduler()
    return createNetwork({ ...init, ...(s === undefined ? {} : { scheduler: s }) })
  }
  it('1: being removed from one group leaves the identity key intact for every other group', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((u) => net.client(u)))
    for (const c of [bob!, carol!, dave!]) await c.publishKeyPackages({ count: 2 })
    const [a1, b1] = await groupWith(alice!, [bob!])
    const [a2, c2] = await groupWith(alice!, [carol!])
    const removed = a1.once('group:removed')
    await b1.removeMembers(['alice'])
    await removed
    expect(a1.status).toBe('removed')

    // Alice's messages in the other group still verify.
    const received = nextMessage(c2)
    await a2.send('still alice')
    expect(text(await received)).toBe('still alice')
    // Her KeyPackages are still signed with her registered key.
    await expect(alice!.publishKeyPackages({ count: 1 })).resolves.toMatchObject({ oneTime: 1 })
    // Her commits are still accepted by the other members (no fork) and her Welcomes verify.
    const daveJoins = nextJoin(dave!)
    await alice!.addUsers(a2, ['dave'])
    const d2 = await daveJoins
    await converged([a2, c2, d2], 2n)
  })

  it('2: a storage failure while applying an application message loses nothing; it is retried', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const store = faultyStore(memoryClientStore({ name: 'bob' }))
    const bob = await net.client('bob', { store })
    await bob.publishKeyPackages({ count: 1 })
    const [a, b] = await groupWith(alice, [bob])
    const failures: unknown[] = []
    bob.on('sync:failed', ({ error }) => failures.push(error))
    store.faults.failWrites = 1
    const received = nextMessage(b)
    const { seq } = await a.send('kept')
    expect(text(await received)).toBe('kept')
    expect(store.faults.injected).toBe(1)
    expect(failures).toHaveLength(1)
    expect(b.cursor).toBe(seq)
  })

  it('2: a storage failure while applying a commit does not fail the group; it is retried', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const store = faultyStore(memoryClientStore({ name: 'bob' }))
    const bob = await net.client('bob', { store })
    await bob.publishKeyPackages({ count: 1 })
    const [a, b] = await groupWith(alice, [bob])
    const statuses: string[] = []
    b.on('status:changed', ({ to }) => statuses.push(to))
    store.faults.failWrites = 1
    const changed = new Promise<bigint>((resolve, reject) => {
      b.on('epoch:changed', ({ epoch }) => resolve(epoch))
      b.on('message:rejected', ({ error }) => reject(error))
    })
    await a.update()
    expect(await changed).toBe(2n)
    expect(store.faults.injected).toBe(1)
    expect(statuses).not.toContain('failed')
    await converged([a, b], 2n)
  })

  it('3: a storage failure while joining does not lose the Welcome; the join is retried', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const store = faultyStore(memoryClientStore({ name: 'bob' }))
    const bob = await net.client('bob', { store })
    await bob.publishKeyPackages({ count: 1 })
    const a = await alice.createGroup()
    store.faults.failWrites = 1
    const joins = nextJoin(bob)
    await alice.addUsers(a, ['bob'])
    const b = await joins
    expect(store.faults.injected).toBe(1)
    await converged([a, b], 1n)
  })

  it('3: a transport failure right after a join reports no rejected Welcome, and the member catches up', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const store = faultyStore(memoryClientStore({ name: 'bob' }))
    const bob = await net.client('bob', { store })
    await bob.publishKeyPackages({ count: 1 })
    const a = await alice.createGroup()
    const rejected: unknown[] = []
    bob.on('welcome:rejected', ({ error }) => rejected.push(error))
    let joinedCount = 0
    bob.on('group:joined', () => joinedCount++)
    // Cut Bob's network the moment his join is durable, and restore it a moment later.
    store.faults.afterWrite = (operations) => {
      if (!operations.some((o) => o.key === 'welcomes/cursor')) return
      store.faults.afterWrite = undefined
      net.transport.setOnline('bob/phone', false)
      setImmediate(() => net.transport.setOnline('bob/phone', true))
    }
    const joins = nextJoin(bob)
    await alice.addUsers(a, ['bob'])
    const b = await joins
    await a.send('after the blip')
    await waitFor(() => b.status === 'active' && b.cursor === a.cursor, 'bob to catch up')
    expect(rejected).toEqual([])
    expect(joinedCount).toBe(1)
  })

  it('4: sync reads to the head of the log when the server pages less than asked', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite, limits: { maxFetchLimit: 3, defaultFetchLimit: 3 } })
    const alice = await net.client('alice')
    const bob = await net.client('bob')
    await bob.publishKeyPackages({ count: 5 })
    const [a, b] = await groupWith(alice, [bob])
    const texts: string[] = []
    b.on('message:received', (m) => texts.push(text(m)))
    net.transport.setOnline('bob/phone', false)
    const sent = ['1', '2', '3', '4', '5', '6', '7', '8']
    for (const t of sent) await a.send(t)
    // Welcomes page too: four more groups while Bob is offline.
    const more: Group[] = []
    for (let i = 0; i < 4; i++) {
      const g = await alice.createGroup()
      await alice.addUsers(g, ['bob'])
      more.push(g)
    }
    net.transport.setOnline('bob/phone', true)
    await bob.sync()
    expect(texts).toEqual(sent)
    expect(b.cursor).toBe(a.cursor)
    expect(b.status).toBe('active')
    for (const g of more) expect(bob.group(g.groupId)?.status).toBe('active')
  })

  it('5: with start: false nothing is delivered before start(); then joins and messages reach client-wide listeners', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const bobStore = memoryClientStore({ name: 'bob' })
    const first = await net.client('bob', { store: keepOpen(bobStore) })
    await first.publishKeyPackages({ count: 1 })
    await first.close()
    // While Bob is away, Alice adds him and writes.
    const a = await alice.createGroup()
    await alice.addUsers(a, ['bob'])
    await a.send('while you were away')

    const bob = await net.client('bob', { store: keepOpen(bobStore), start: false })
    expect(bob.listGroups()).toEqual([])
    const seen: string[] = []
    bob.on('group:joined', ({ group }) => seen.push(`joined ${group.groupIdHex}`))
    bob.on('message:received', ({ group, message }) => seen.push(`${group.groupIdHex}: ${text(message)}`))
    const states: string[] = []
    bob.on('connection:state', ({ state }) => states.push(state))
    await bob.start()
    await waitFor(() => seen.length === 2, 'the join and the message')
    expect(seen).toEqual([`joined ${a.groupIdHex}`, `${a.groupIdHex}: while you were away`])
    expect(states).toEqual(['connecting', 'online'])
    await bob.close()
    expect(states.at(-1)).toBe('closed')
  })

  it('6: a Welcome after ordinary growth of a group of 7 is accepted', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const names = ['alice', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']
    const clients = await Promise.all(names.map((u) => net.client(u)))
    for (const c of clients.slice(1)) await c.publishKeyPackages({ count: 1 })
    const [alice, ...others] = clients as [MlsClient, ...MlsClient[]]
    const groups = await groupWith(alice, others.slice(0, 6))
    const a = groups[0]
    const f = groups[5]!
    expect(f.ownLeafIndex).toBe(5)
    await f.update()
    await a.update()
    await alice.addUsers(a, ['h'])
    await a.update()
    const joins = nextJoin(others[7]!)
    await alice.addUsers(a, ['i'])
    const last = await joins
    await converged([a, f, last, await joined(others[6]!, a.groupId)], a.epoch)
  })

  it('found by the simulator (seed 3): messages of the old epoch processed while a commit is pending do not break the next ones', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    // No automatic processing: the test decides when each member reads the log.
    const alice = await net.client('alice', { autoSync: false })
    const bob = await net.client('bob', { autoSync: false })
    await bob.publishKeyPackages({ count: 1 })
    const a = await alice.createGroup()
    await alice.addUsers(a, ['bob'])
    await bob.processWelcomes()
    const b = bob.group(a.groupId)!
    await converged([a, b], 1n)
    const texts: string[] = []
    a.on('message:received', (m) => texts.push(text(m)))
    await b.send('one, epoch 1') // ordered before Alice's commit, which she creates before reading it
    await a.update() // creates the commit at epoch 1, then reads 'one' (epoch 1) and her own commit
    expect(a.epoch).toBe(2n)
    await b.send('two, epoch 1') // Bob has not read the commit yet: still epoch 1, ordered after it
    await a.sync()
    expect(texts).toEqual(['one, epoch 1', 'two, epoch 1'])
  })

  it('found by the simulator (seed 8): a reconnect that fails is retried until the client is online again', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const bob = await net.client('bob', { retry: { initialDelayMs: 1, maxDelayMs: 8 } })
    await bob.publishKeyPackages({ count: 1 })
    const [a, b] = await groupWith(alice, [bob])
    net.transport.setOnline('bob/phone', false)
    await expect(bob.connect()).rejects.toMatchObject({ code: 'TRANSPORT_UNAVAILABLE' })
    expect(bob.connectionState).toBe('offline')
    const online = new Promise<void>((resolve) => bob.on('connection:state', ({ state }) => state === 'online' && resolve()))
    net.transport.setOnline('bob/phone', true)
    await online
    const received = nextMessage(b)
    await a.send('back')
    expect(text(await received)).toBe('back')
  })

  it('found by the simulator (seed 4): a member receives its own message after a restart between sending and the echo', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const store = memoryClientStore({ name: 'bob' })
    const open = () => net.client('bob', { store: keepOpen(store), autoSync: false, start: false })
    const first = await open()
    await first.start()
    await first.publishKeyPackages({ count: 1 })
    const a = await alice.createGroup()
    await alice.addUsers(a, ['bob'])
    await first.processWelcomes()
    await first.group(a.groupId)!.send('mine') // posted; the echo is not read before the restart
    await first.close()
    const bob = await open()
    const b = bob.group(a.groupId)!
    const received = nextMessage(b)
    await bob.start()
    const message = await received
    expect([text(message), message.own, message.sender]).toEqual(['mine', true, 'bob/phone'])
  })
})

