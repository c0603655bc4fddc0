import { describe, expect, it } from 'vitest'
import { processPrivateMessage, decodeMlsMessage, emptyPskIndex, getCiphersuiteFromName } from '@mls/core/mls'
import type { ChannelEntry } from '@mls/core'
import { converged, createTestNetwork, inbox, joined, providerCases, waitFor } from '../src/index.js'

import type { CiphersuiteName, CryptoProvider } from '@mls/core'
import { nobleCrypto } from '@mls/crypto-noble'
import { libsodiumCrypto } from '@mls/crypto-libsodium'
import { nodeCrypto } from '@mls/crypto-node'

describe.each(providerCases())('the four flows of the seed ($name)', ({ crypto, ciphersuite }) => {
  it('setup, add B then C, B updates, A removes B: members agree at every step and B reads nothing after', async () => {
    await fourFlows(crypto, ciphersuite, [crypto, crypto, crypto])
  })
})

describe.each(['MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', 'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519'] as const)(
  'a mixed group: A on node:crypto, B on noble, C on libsodium (%s)',
  (suite) => {
    it('runs the four flows and agrees on every epoch authenticator', async () => {
      await fourFlows(nodeCrypto(), suite, [nodeCrypto(), nobleCrypto(), libsodiumCrypto()])
    })
  }
)

async function fourFlows(serverCrypto: CryptoProvider, ciphersuite: CiphersuiteName, [cryptoA, cryptoB, cryptoC]: CryptoProvider[]) {
  const crypto = cryptoB!
  const net = await createTestNetwork({ crypto: serverCrypto, ciphersuite })

  // 1. Setup: every client uploads KeyPackages to the Directory.
  const alice = await net.client('alice', { crypto: cryptoA! })
  const bob = await net.client('bob', { crypto: cryptoB! })
  const carol = await net.client('carol', { crypto: cryptoC! })
  for (const c of [alice, bob, carol]) {
    expect(await c.publishKeyPackages({ count: 3 })).toEqual({ oneTime: 3, lastResort: true })
  }

  // 2. A creates the group and adds B: Welcome(B), Commit to the channel.
  const a = await alice.createGroup()
  expect(a.epoch).toBe(0n)
  const addBob = await alice.addUsers(a, ['bob'])
  expect(addBob).toMatchObject({ kind: 'committed', epoch: 1n, added: ['bob/phone'] })
  const b = await joined(bob, a.groupId)
  await converged([a, b], 1n)
  expect((await bob.directory.countKeyPackages()).oneTime).toBe(2)

  const aliceInbox = inbox(a)
  const bobInbox = inbox(b)
  await a.send('hello bob')
  await waitFor(() => bobInbox.texts.includes('hello bob'), 'bob to read alice')
  expect(bobInbox.from).toContain('alice/phone')

  // Add C: Welcome(C); A and B apply the commit when the channel delivers it.
  const bobEpochs: bigint[] = []
  b.on('epoch:changed', (e) => bobEpochs.push(e.epoch))
  expect(await alice.addUsers(a, ['carol'])).toMatchObject({ kind: 'committed', epoch: 2n })
  const c = await joined(carol, a.groupId)
  const carolInbox = inbox(c)
  const auth2 = await converged([a, b, c], 2n)
  expect(bobEpochs).toEqual([2n])
  expect(a.members().map((m) => m.clientId)).toEqual(['alice/phone', 'bob/phone', 'carol/phone'])
  expect(c.members().map((m) => m.clientId)).toEqual(['alice/phone', 'bob/phone', 'carol/phone'])

  await c.send('hi all, carol here')
  await waitFor(() => aliceInbox.texts.includes('hi all, carol here') && bobInbox.texts.includes('hi all, carol here'), 'carol read by all')

  // 3. B updates its leaf: every member, B included, applies it on delivery.
  const bobLeafBefore = b.mlsState!.ratchetTree[b.ownLeafIndex * 2]
  const update = await b.update()
  expect(update).toMatchObject({ kind: 'committed', epoch: 3n })
  const auth3 = await converged([a, b, c], 3n)
  expect(auth3).not.toEqual(auth2)
  const bobLeafAfter = b.mlsState!.ratchetTree[b.ownLeafIndex * 2]
  expect(bobLeafAfter?.nodeType === 'leaf' && bobLeafBefore?.nodeType === 'leaf').toBe(true)
  if (bobLeafAfter?.nodeType === 'leaf' && bobLeafBefore?.nodeType === 'leaf') {
    expect(bobLeafAfter.leaf.hpkePublicKey).not.toEqual(bobLeafBefore.leaf.hpkePublicKey)
  }
  await b.send('bob after update')
  await waitFor(() => aliceInbox.texts.includes('bob after update') && carolInbox.texts.includes('bob after update'), 'bob read after update')

  // 4. A removes B: everyone else applies it; B can read nothing sent afterwards.
  const bobCompromised = b.mlsState!
  const removedEvent = b.once('group:removed')
  expect(await a.removeMembers(['bob'])).toMatchObject({ kind: 'committed', epoch: 4n, removed: ['bob/phone'] })
  await converged([a, c], 4n)
  expect(await removedEvent).toMatchObject({ epoch: 4n, by: 'alice/phone' })
  expect(b.status).toBe('removed')
  expect(a.members().map((m) => m.clientId)).toEqual(['alice/phone', 'carol/phone'])

  const bobCount = bobInbox.texts.length
  await a.send('secret after bob left')
  await waitFor(() => carolInbox.texts.includes('secret after bob left'), 'carol reads after removal')
  expect(bobInbox.texts.length).toBe(bobCount)

  // B cannot fetch it from the channel any more...
  await expect(bob.directory && b.sync()).resolves.toBeUndefined()
  const entries = await net.services.channel.fetchEntries('carol/phone', a.groupId, 0)
  const last = entries.at(-1) as ChannelEntry
  await expect(net.services.channel.fetchEntries('bob/phone', a.groupId, last.seq - 1)).resolves.toEqual([])
  // ...and even with the state it held before its removal, it cannot decrypt it.
  const decoded = decodeMlsMessage(last.message, 0)![0]
  expect(decoded.wireformat).toBe('mls_private_message')
  const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(ciphersuite))
  if (decoded.wireformat === 'mls_private_message') {
    await expect(processPrivateMessage(bobCompromised, decoded.privateMessage, emptyPskIndex, cs)).rejects.toThrow()
  }
}
