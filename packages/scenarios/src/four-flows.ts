import { expect } from 'vitest'
import type { CryptoProvider, Group, MlsClient } from '@mls/core'
import { decodeMlsMessage, emptyPskIndex, getCiphersuiteFromName, processPrivateMessage } from '@mls/core/mls'
import { converged, inbox, joined, waitFor } from './index.js'

export interface FourFlowsInit {
  /** The three clients, A, B and C, already connected to the services under test. */
  alice: MlsClient
  bob: MlsClient
  carol: MlsClient
  /** B's crypto provider (to try B's pre-removal keys on a later message). */
  bobCrypto: CryptoProvider
}

export interface FourFlowsResult {
  a: Group
  c: Group
  /** Every plaintext sent during the run. */
  plaintexts: string[]
}

/**
 * The seed's four flows with every check: setup (KeyPackages), A adds B then C
 * (Welcome + Commit), B updates its leaf, A removes B. Members agree on the
 * epoch authenticator after every step; after its removal B receives nothing,
 * the channel serves it nothing, and the state it held before cannot decrypt
 * what is sent afterwards. Runs over whatever transport the clients use.
 */
export async function fourFlows({ alice, bob, carol, bobCrypto }: FourFlowsInit): Promise<FourFlowsResult> {
  const plaintexts: string[] = []
  const send = async (group: Group, text: string) => {
    plaintexts.push(text)
    return group.send(text)
  }

  // 1. Setup: every client uploads KeyPackages to the Directory.
  for (const c of [alice, bob, carol]) {
    expect(await c.publishKeyPackages({ count: 3 })).toEqual({ oneTime: 3, lastResort: true })
  }

  // 2. A creates the group and adds B: Welcome(B), Commit to the channel.
  const a = await alice.createGroup()
  expect(a.epoch).toBe(0n)
  expect(await alice.addUsers(a, [bob.userId])).toMatchObject({ kind: 'committed', epoch: 1n, added: [bob.clientId] })
  const b = await joined(bob, a.groupId)
  await converged([a, b], 1n)
  expect((await bob.directory.countKeyPackages()).oneTime).toBe(2)

  const aliceInbox = inbox(a)
  const bobInbox = inbox(b)
  await send(a, 'hello bob')
  await waitFor(() => bobInbox.texts.includes('hello bob'), 'bob to read alice')
  expect(bobInbox.from).toContain(alice.clientId)

  // Add C: Welcome(C); A and B apply the commit when the channel delivers it.
  const bobEpochs: bigint[] = []
  b.on('epoch:changed', (e) => bobEpochs.push(e.epoch))
  expect(await alice.addUsers(a, [carol.userId])).toMatchObject({ kind: 'committed', epoch: 2n })
  const c = await joined(carol, a.groupId)
  const carolInbox = inbox(c)
  const auth2 = await converged([a, b, c], 2n)
  expect(bobEpochs).toEqual([2n])
  const all = [alice.clientId, bob.clientId, carol.clientId]
  expect(a.members().map((m) => m.clientId)).toEqual(all)
  expect(c.members().map((m) => m.clientId)).toEqual(all)

  await send(c, 'hi all, carol here')
  await waitFor(() => aliceInbox.texts.includes('hi all, carol here') && bobInbox.texts.includes('hi all, carol here'), 'carol read by all')

  // 3. B updates its leaf: every member, B included, applies it on delivery.
  const bobLeafBefore = b.mlsState!.ratchetTree[b.ownLeafIndex * 2]
  expect(await b.update()).toMatchObject({ kind: 'committed', epoch: 3n })
  const auth3 = await converged([a, b, c], 3n)
  expect(auth3).not.toEqual(auth2)
  const bobLeafAfter = b.mlsState!.ratchetTree[b.ownLeafIndex * 2]
  expect(bobLeafAfter?.nodeType === 'leaf' && bobLeafBefore?.nodeType === 'leaf').toBe(true)
  if (bobLeafAfter?.nodeType === 'leaf' && bobLeafBefore?.nodeType === 'leaf') {
    expect(bobLeafAfter.leaf.hpkePublicKey).not.toEqual(bobLeafBefore.leaf.hpkePublicKey)
  }
  await send(b, 'bob after update')
  await waitFor(() => aliceInbox.texts.includes('bob after update') && carolInbox.texts.includes('bob after update'), 'bob read after update')

  // 4. A removes B: everyone else applies it; B can read nothing sent afterwards.
  const bobCompromised = b.mlsState!
  const removedEvent = b.once('group:removed')
  expect(await a.removeMembers([bob.userId])).toMatchObject({ kind: 'committed', epoch: 4n, removed: [bob.clientId] })
  await converged([a, c], 4n)
  expect(await removedEvent).toMatchObject({ epoch: 4n, by: alice.clientId })
  expect(b.status).toBe('removed')
  expect(a.members().map((m) => m.clientId)).toEqual([alice.clientId, carol.clientId])

  const bobCount = bobInbox.texts.length
  const sent = await send(a, 'secret after bob left')
  await waitFor(() => carolInbox.texts.includes('secret after bob left'), 'carol reads after removal')
  expect(bobInbox.texts.length).toBe(bobCount)

  // B cannot fetch it from the channel any more...
  await expect(b.sync()).resolves.toBeUndefined()
  expect(bobInbox.texts.length).toBe(bobCount)
  await expect(bob.channel.fetchEntries(a.groupId, sent.seq - 1)).resolves.toEqual([])
  // ...and even with the state it held before its removal, it cannot decrypt it.
  const entries = await carol.channel.fetchEntries(a.groupId, sent.seq - 1)
  expect(entries).toHaveLength(1)
  const decoded = decodeMlsMessage(entries[0]!.message, 0)![0]
  expect(decoded.wireformat).toBe('mls_private_message')
  const cs = await bobCrypto.getCiphersuiteImpl(getCiphersuiteFromName(bob.ciphersuite))
  if (decoded.wireformat === 'mls_private_message') {
    await expect(processPrivateMessage(bobCompromised, decoded.privateMessage, emptyPskIndex, cs)).rejects.toThrow()
  }
  return { a, c, plaintexts }
}
