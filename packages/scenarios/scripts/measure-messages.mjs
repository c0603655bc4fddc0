// Measures, through the public API, what one application message costs the
// sender (`group.send()`, end to end through the in-process Group Channel) and a
// receiver (`group.receive()` of the same bytes), each on its own SQLite client
// store, in groups of growing size. Not a test: numbers go to docs/performance.md.
//
//   pnpm --filter @mls/scenarios build && node packages/scenarios/scripts/measure-messages.mjs --sizes 10,100,1000 --messages 30
//
// The group's other members are clients that publish one KeyPackage and close, so
// they never join (only alice and bob hold the group).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createMlsClient } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { sqliteClientStore } from '@mls/storage-sqlite'
import { createServices } from '@mls/server'
import { memoryClientStore, memoryServerStore } from '@mls/storage-memory'
import { memoryTransport } from '@mls/transport-memory'

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10,100,1000' },
    messages: { type: 'string', default: '30' },
    synchronous: { type: 'string', default: 'full' },
    store: { type: 'string', default: 'sqlite' }
  }
})
const sizes = values.sizes.split(',').map(Number)
const messages = Number(values.messages)
const synchronous = values.synchronous
/** Alice's and bob's stores: SQLite files (the default) or `memory`. */
const openStore = (path) => (values.store === 'memory' ? memoryClientStore({ name: path }) : sqliteClientStore({ path, synchronous }))

/** Directory + Group Channel in process (as `createTestNetwork`, which imports vitest). */
function createNetwork(crypto) {
  const limits = { fetchesPerMinute: 1e9, fetchBurst: 1e9, registrationsPerHour: 1e9, registrationBurst: 1e9 }
  const services = createServices({ store: memoryServerStore(), crypto, limits })
  const transport = memoryTransport({ services })
  const client = (userId, options = {}) =>
    createMlsClient({ userId, deviceId: 'phone', crypto, store: memoryClientStore({ name: userId }), transport, ...options })
  return { services, transport, client }
}

async function joined(client, groupId) {
  while (client.group(groupId) === undefined) await new Promise((resolve) => setTimeout(resolve, 5))
  return client.group(groupId)
}

/** The same store across bob's restart (closing a client closes its store). */
function keepOpen(store) {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'close') return async () => {}
      const value = Reflect.get(target, prop)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

/** Bytes written per store write, by wrapping the store. */
function counting(store) {
  const batches = []
  return {
    batches,
    store: new Proxy(store, {
      get(target, prop) {
        if (prop === 'write') {
          return async (ops, options) => {
            batches.push(ops.reduce((n, op) => n + (op.type === 'put' ? op.value.length + op.key.length : op.key.length), 0))
            return target.write(ops, options)
          }
        }
        const value = Reflect.get(target, prop)
        return typeof value === 'function' ? value.bind(target) : value
      }
    })
  }
}

async function measure(size) {
  const dir = mkdtempSync(join(tmpdir(), 'mls-measure-'))
  const crypto = nodeCrypto()
  const net = createNetwork(crypto)
  try {
    const aliceStore = counting(openStore(join(dir, 'alice.db')))
    const alice = await net.client('alice', { store: aliceStore.store })
    const bobPath = join(dir, 'bob.db')
    const bobFirstStore = openStore(bobPath)
    const bob = await net.client('bob', { store: values.store === 'memory' ? keepOpen(bobFirstStore) : bobFirstStore })
    await bob.publishKeyPackages({ count: 1 })
    const others = []
    for (let i = 0; i < size - 2; i++) {
      const c = await net.client(`member${i}`)
      await c.publishKeyPackages({ count: 1 })
      await c.close()
      others.push(c.userId)
    }
    const t0 = performance.now()
    const group = await alice.createGroup()
    await alice.addUsers(group, [bob.userId])
    for (let i = 0; i < others.length; i += 250) await alice.addUsers(group, others.slice(i, i + 250))
    const setupMs = performance.now() - t0
    const bobGroup = await joined(bob, group.groupId)
    while (bobGroup.epoch !== group.epoch) await bobGroup.sync()
    await bob.close()
    // Bob again from his store, not connected: he is handed alice's messages with `receive`.
    const bobStore = counting(values.store === 'memory' ? bobFirstStore : openStore(bobPath))
    const bobAgain = await createMlsClient({ userId: 'bob', deviceId: 'phone', crypto, store: bobStore.store, transport: net.transport, start: false })
    const reader = bobAgain.group(group.groupId)
    const sent = []
    const sendMs = []
    for (let i = 0; i < messages; i++) {
      const t = performance.now()
      const { seq } = await group.send(`message ${i}`)
      sendMs.push(performance.now() - t)
      sent.push(seq)
    }
    const entries = await net.services.channel.fetchEntries(alice.clientId, group.groupId, sent[0] - 1, { limit: messages })
    const receiveMs = []
    aliceStore.batches.length = 0
    for (const entry of entries) {
      const t = performance.now()
      const result = await reader.receive(entry.message)
      receiveMs.push(performance.now() - t)
      if (result.kind !== 'application') throw new Error(`unexpected ${result.kind}`)
    }
    await bobAgain.close()
    await alice.close()
    return { size, setupMs, send: median(sendMs), receive: median(receiveMs), receiveBatch: median(bobStore.batches) }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

console.log(`store=${values.store}${values.store === 'memory' ? '' : ` synchronous=${synchronous}`}, ${messages} messages per size, median ms`)
console.log('| members | send() | receive() | bytes written per receive |')
console.log('| ---: | ---: | ---: | ---: |')
for (const size of sizes) {
  const r = await measure(size)
  console.log(`| ${r.size} | ${r.send.toFixed(2)} | ${r.receive.toFixed(2)} | ${r.receiveBatch} |`)
}
