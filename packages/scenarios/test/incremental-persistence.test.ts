import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { createMlsClient, toHex, type MlsClient } from '@mls/core'
import type { ClientStore, StoreOperation } from '@mls/core/interfaces'
import { nodeCrypto } from '@mls/crypto-node'
import { createServices } from '@mls/server'
import { memoryClientStore, memoryServerStore } from '@mls/storage-memory'
import { sqliteClientStore } from '@mls/storage-sqlite'
import { memoryTransport } from '@mls/transport-memory'
import { converged, createTestNetwork, groupWith, inbox, joined, keepOpen, providerCases, waitFor } from '../src/index.js'

const [defaultCase] = providerCases()
const { crypto, ciphersuite } = defaultCase!
const dir = mkdtempSync(join(tmpdir(), 'mls-incremental-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** A store that records each batch it is given (the batches reach the real store unchanged). */
function recording<S extends ClientStore>(store: S): { store: S; batches: StoreOperation[][] } {
  const batches: StoreOperation[][] = []
  const proxy = new Proxy(store, {
    get(target, prop) {
      if (prop === 'write') {
        return async (operations: readonly StoreOperation[]) => {
          batches.push([...operations])
          return target.write(operations)
        }
      }
      const value = Reflect.get(target, prop) as unknown
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
    }
  })
  return { store: proxy, batches }
}

function rawContains(store: ReturnType<typeof memoryClientStore>, needle: Uint8Array): boolean {
  const hex = toHex(needle)
  return store.rawSnapshot().some((chunk) => toHex(chunk).includes(hex))
}

/** Every key's shape, with the group id and digests left out. */
function shapes(gid: string, ops: readonly StoreOperation[]): string[] {
  return ops.map((op) => `${op.type} ${op.key.replace(`group/${gid}/`, '').replace(/seen\/[0-9a-f]+$/, 'seen/<digest>').replace(/sent\/[0-9a-f]+$/, 'sent/<digest>')}`).sort()
}

describe('incremental persistence through the public API', () => {
  it('a message writes a few small records on both sides, deletes the consumed secret, and the group reloads from them', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const aliceStore = recording(memoryClientStore({ name: 'alice' }))
    const alice = await net.client('alice', { store: aliceStore.store })
    const bobMemory = memoryClientStore({ name: 'bob' })
    const bobStore = recording(keepOpen(bobMemory))
    let bob: MlsClient = await net.client('bob', { store: bobStore.store })
    await bob.publishKeyPackages({ count: 1 })
    // 20 more members (who never join): a tree of 43 nodes, two secret-tree records an epoch.
    const others: string[] = []
    for (let i = 0; i < 20; i++) {
      const other = await net.client(`member${i}`)
      await other.publishKeyPackages({ count: 1 })
      await other.close()
      others.push(other.userId)
    }
    const a = await alice.createGroup()
    await alice.addUsers(a, [bob.userId, ...others])
    const b = await joined(bob, a.groupId)
    await converged([a, b], 1n)
    const received = inbox(b)

    // The secret tree is derived lazily: Alice's first message of the epoch makes both derive her leaf from the
    // root down, which rewrites the records on that path. What follows is a message in steady state.
    await a.send('first')
    await waitFor(() => received.texts.includes('first'), 'bob to read the first message')
    const aliceNode = a.ownLeafIndex * 2
    const secret = b.mlsState!.secretTree[aliceNode]!.application.secret.slice()
    expect(rawContains(bobMemory, secret)).toBe(true)
    const [aliceBefore, bobBefore] = [aliceStore.batches.length, bobStore.batches.length]
    await a.send('small')
    await waitFor(() => received.texts.includes('small'), 'bob to read')
    const epochPrefix = `epoch/${'1'.padStart(20, '0')}/secrets/`
    // The sender: its advanced ratchet (one secret-tree record) and the plaintext kept until the echo.
    expect(shapes(a.groupIdHex, aliceStore.batches[aliceBefore]!)).toEqual([`put ${epochPrefix}000000`, 'put sent/<digest>'])
    // The receiver: the record with alice's ratchet, its cursor, the message's replay-window record.
    const bobBatch = bobStore.batches.slice(bobBefore).find((ops) => ops.some((op) => op.key.includes('/seen/')))!
    expect(shapes(b.groupIdHex, bobBatch)).toEqual([`put ${epochPrefix}000000`, 'put meta', 'put seen/<digest>'])
    expect(bobBatch.reduce((n, op) => n + (op.type === 'put' ? op.value.length : 0), 0)).toBeLessThan(4096)
    // Forward secrecy on disk: the secret the message key came from is overwritten.
    expect(rawContains(bobMemory, secret)).toBe(false)

    // Bob restarts from the records and carries on: same epoch, same authenticator, nothing delivered again.
    const authenticator = b.epochAuthenticator()
    await bob.close()
    bob = await net.client('bob', { store: bobStore.store })
    const b2 = bob.group(a.groupId)!
    expect(b2.epoch).toBe(1n)
    expect(b2.epochAuthenticator()).toEqual(authenticator)
    const again = inbox(b2)
    await a.send('after the restart')
    await waitFor(() => again.texts.length === 1, 'bob to read after the restart')
    expect(again.texts).toEqual(['after the restart'])
    await a.update()
    await converged([a, b2], 2n)
    await b2.send('bob in epoch 2')
    await waitFor(() => again.texts.length === 2, 'bob to see his own message echoed')
    await alice.close()
    await bob.close()
  }, 60_000)

  it('a group stored in the previous layout (golden v1 SQLite store) is rewritten on first load and loads again from the new records', async () => {
    const golden = fileURLToPath(new URL('./golden/', import.meta.url))
    const recorded = JSON.parse(readFileSync(join(golden, 'conversation-v1.json'), 'utf8')) as { groupId: string; epoch: string; epochAuthenticator: string }
    const path = join(dir, 'bob.sqlite')
    copyFileSync(join(golden, 'conversation-v1-bob.sqlite'), path)
    const gid = recorded.groupId
    const before = sqliteClientStore({ path })
    const oldMeta = JSON.parse(new TextDecoder().decode(await before.get(`group/${gid}/meta`))) as { digests: string[] }
    expect(oldMeta.digests.length).toBeGreaterThan(0)
    expect(await before.get(`group/${gid}/state`)).toBeDefined()
    await before.close()

    const transport = memoryTransport({ services: createServices({ store: memoryServerStore(), crypto: nodeCrypto() }) })
    const open = () => createMlsClient({ userId: 'bob', deviceId: 'phone', crypto: nodeCrypto(), store: sqliteClientStore({ path }), transport, start: false })
    for (let load = 0; load < 2; load++) {
      const bob = await open()
      const group = bob.group(gid)!
      expect(group.epoch).toBe(BigInt(recorded.epoch))
      expect(toHex(group.epochAuthenticator())).toBe(recorded.epochAuthenticator)
      await bob.close()
      const after = sqliteClientStore({ path })
      expect(await after.get(`group/${gid}/state`)).toBeUndefined()
      expect(await after.get(`group/${gid}/current`)).toBeDefined()
      expect(JSON.parse(new TextDecoder().decode(await after.get(`group/${gid}/meta`)))).not.toHaveProperty('digests')
      expect((await after.list(`group/${gid}/seen/`)).map((e) => e.key.split('/').at(-1))).toEqual([...oldMeta.digests].sort())
      await after.close()
    }
  }, 60_000)

  it('a two-member group reloads after each step of the four flows', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const store = memoryClientStore({ name: 'bob' })
    let bob = await net.client('bob', { store: keepOpen(store) })
    await bob.publishKeyPackages({ count: 1 })
    const [a] = await groupWith(alice, [bob])
    for (let step = 0; step < 3; step++) {
      await a.send(`message ${step}`)
      await a.update()
      const b = bob.group(a.groupId)!
      await converged([a, b], BigInt(step) + 2n)
      const kept = [...b.mlsState!.historicalReceiverData.keys()]
      expect(kept.length).toBeGreaterThan(0)
      await bob.close()
      bob = await net.client('bob', { store: keepOpen(store) })
      const reloaded = bob.group(a.groupId)!
      expect(reloaded.epochAuthenticator()).toEqual(a.epochAuthenticator())
      expect([...reloaded.mlsState!.historicalReceiverData.keys()]).toEqual(kept)
    }
    await alice.close()
    await bob.close()
  }, 60_000)
})
