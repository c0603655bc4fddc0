import { describe, expect, it } from 'vitest'
import { createMlsClient, wireCredentials, type Group, type MlsClient } from '@mls/core'
import { nodeCrypto } from '@mls/crypto-node'
import { createServices } from '@mls/server'
import { memoryClientStore, memoryServerStore } from '@mls/storage-memory'
import { memoryTransport } from '@mls/transport-memory'

// The toolkit's own clients under a foreign id scheme: with `wireCredentials` installed in the
// clients and the services, a client's id is Wire's `<uuid>:<device>@<domain>` (what OpenMLS as
// core-crypto builds it demands of every member), end to end through the Directory and the channel.

const crypto = nodeCrypto()
const ALICE = 'aaaaaaaa-0000-4000-8000-000000000001@interop.example'
const BOB = 'bbbbbbbb-0000-4000-8000-000000000002@interop.example'

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

function network() {
  const services = createServices({ store: memoryServerStore(), crypto, credentials: wireCredentials })
  const transport = memoryTransport({ services })
  const client = (userId: string, deviceId: string): Promise<MlsClient> =>
    createMlsClient({ userId, deviceId, crypto, store: memoryClientStore({ name: `${userId}:${deviceId}` }), transport, credentials: wireCredentials })
  return { services, client }
}

describe('toolkit clients with Wire-style ids (wireCredentials)', () => {
  it('get Wire ids, publish, add, join, message and update through the real services', async () => {
    const { client } = network()
    const alice = await client(ALICE, 'a1')
    const bob = await client(BOB, 'b2')
    expect(alice.clientId).toBe('aaaaaaaa-0000-4000-8000-000000000001:a1@interop.example')
    expect(bob.clientId).toBe('bbbbbbbb-0000-4000-8000-000000000002:b2@interop.example')
    await bob.publishKeyPackages({ count: 2 })

    const a = await alice.createGroup()
    expect(await alice.addUsers(a, [BOB])).toMatchObject({ kind: 'committed', epoch: 1n, added: [bob.clientId] })
    await until(() => bob.group(a.groupId) !== undefined, 'bob to join')
    const b: Group = bob.group(a.groupId)!
    await until(() => a.epoch === 1n && b.epoch === 1n && b.status === 'active', 'epoch 1')
    expect(b.epochAuthenticator()).toEqual(a.epochAuthenticator())
    // Members are named as the validator reads their credentials.
    expect(a.members().map((m) => [m.clientId, m.userId, m.deviceId])).toEqual([
      [alice.clientId, ALICE, 'a1'],
      [bob.clientId, BOB, 'b2']
    ])

    const received: { sender: string; text: string }[] = []
    b.on('message:received', (m) => received.push({ sender: m.sender, text: new TextDecoder().decode(m.plaintext) }))
    await a.send('hello under Wire ids')
    await until(() => received.length === 1, 'bob to read alice')
    expect(received).toEqual([{ sender: alice.clientId, text: 'hello under Wire ids' }])

    expect(await b.update()).toMatchObject({ kind: 'committed', epoch: 2n })
    await until(() => a.epoch === 2n, 'alice to apply bob’s update')
    expect(a.epochAuthenticator()).toEqual(b.epochAuthenticator())
    await Promise.all([alice.close(), bob.close()])
  })

  it('refuses a malformed Wire id for a client, with a typed error', async () => {
    const { client } = network()
    await expect(client(ALICE, 'not-hex')).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })
})
