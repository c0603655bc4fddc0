import { expect, it } from 'vitest'
import { memoryClientStore } from '@mls/storage-memory'
import { createTestNetwork, groupWith, keepOpen, providerCases, waitFor } from '../src/index.js'

const { crypto, ciphersuite } = providerCases().at(-1)!

it('with a durable inbox, received messages stay in the store until acknowledged and survive a restart', async () => {
  const net = await createTestNetwork({ crypto, ciphersuite })
  const alice = await net.client('alice')
  const store = memoryClientStore({ name: 'bob' })
  const open = () => net.client('bob', { store: keepOpen(store), durableInbox: true })
  let bob = await open()
  await bob.publishKeyPackages({ count: 1 })
  const [a, b] = await groupWith(alice, [bob])
  const ids: string[] = []
  b.on('message:received', (m) => ids.push(m.id))
  await a.send('one')
  await a.send('two')
  await waitFor(() => ids.length === 2, 'bob to receive')
  expect((await b.unacknowledged()).map((m) => new TextDecoder().decode(m.plaintext))).toEqual(['one', 'two'])
  await b.acknowledge(ids[0]!)
  expect((await b.unacknowledged()).map((m) => m.id)).toEqual([ids[1]])

  // "Crash": the application never acknowledged 'two'; after a restart it is still there, with the same id.
  await bob.close()
  bob = await open()
  const again = await bob.group(a.groupId)!.unacknowledged()
  expect(again.map((m) => [m.id, new TextDecoder().decode(m.plaintext), m.sender])).toEqual([[ids[1], 'two', 'alice/phone']])
  await bob.group(a.groupId)!.acknowledge(again.map((m) => m.id))
  expect(await bob.group(a.groupId)!.unacknowledged()).toEqual([])
  expect(await store.list(`group/${b.groupIdHex}/inbox/`)).toEqual([])
})
