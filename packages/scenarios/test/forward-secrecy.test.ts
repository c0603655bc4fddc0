import { describe, expect, it } from 'vitest'
import { decodeMlsMessage, emptyPskIndex, processPrivateMessage } from '@mls/core/mls'
import { memoryClientStore } from '@mls/storage-memory'
import { converged, createTestNetwork, groupWith, joined, providerCases, waitFor } from '../src/index.js'

const [defaultCase] = providerCases()
const { crypto, ciphersuite } = defaultCase!

function rawContains(store: ReturnType<typeof memoryClientStore>, needle: Uint8Array): boolean {
  const hex = Buffer.from(needle).toString('hex')
  return store.rawSnapshot().some((chunk) => {
    // Values are JSON (base64) or binary ts-mls encodings: search both forms.
    const asHex = Buffer.from(chunk).toString('hex')
    const asText = Buffer.from(chunk).toString('utf8')
    return asHex.includes(hex) || asText.includes(Buffer.from(needle).toString('base64'))
  })
}

describe('forward secrecy: secrets are deleted when the protocol says', () => {
  it('a KeyPackage private key is deleted once used to join; the last-resort one only when rotated', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const bobStore = memoryClientStore({ name: 'bob' })
    const bob = await net.client('bob', { store: bobStore })
    await alice.publishKeyPackages({ count: 1 })
    await bob.publishKeyPackages({ count: 1 })
    const before = await bobStore.list('keypackage/')
    expect(before).toHaveLength(2)
    const a = await alice.createGroup()
    await alice.addUsers(a, ['bob'])
    await joined(bob, a.groupId)
    const after = await bobStore.list('keypackage/')
    expect(after).toHaveLength(1)
    const used = before.find((e) => !after.some((x) => x.key === e.key))!
    const usedRecord = JSON.parse(Buffer.from(used.value).toString('utf8')) as { initPrivateKey: { $b: string }; lastResort: boolean }
    expect(usedRecord.lastResort).toBe(false)
    expect(rawContains(bobStore, Buffer.from(usedRecord.initPrivateKey.$b, 'base64'))).toBe(false)

    // The pool is empty now: the next joiner path is the last resort, which survives its use...
    const b2 = await alice.createGroup()
    await alice.addUsers(b2, ['bob'])
    await joined(bob, b2.groupId)
    const lastResort = await bobStore.list('keypackage/')
    expect(lastResort).toHaveLength(1)
    // ...until it is rotated.
    await bob.publishKeyPackages({ count: 0, rotateLastResort: true })
    const rotated = await bobStore.list('keypackage/')
    expect(rotated).toHaveLength(1)
    expect(rotated[0]!.key).not.toBe(lastResort[0]!.key)
    const oldRecord = JSON.parse(Buffer.from(lastResort[0]!.value).toString('utf8')) as { initPrivateKey: { $b: string } }
    expect(rawContains(bobStore, Buffer.from(oldRecord.initPrivateKey.$b, 'base64'))).toBe(false)
  })

  it('a client replenishes its KeyPackages when a join leaves fewer than configured', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const bob = await net.client('bob', { keyPackages: { batchSize: 3, replenishBelow: 2 } })
    await bob.publishKeyPackages()
    expect(await bob.directory.countKeyPackages()).toEqual({ oneTime: 3, lastResort: true })
    for (let i = 0; i < 2; i++) {
      const g = await alice.createGroup()
      await alice.addUsers(g, ['bob'])
      await joined(bob, g.groupId)
    }
    await waitFor(async () => (await bob.directory.countKeyPackages()).oneTime === 4, 'bob to replenish: 3 - 2 + 3')
  })

  it('epoch secrets beyond the retention window are gone from storage', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice', { retainEpochs: 2 })
    const bobStore = memoryClientStore({ name: 'bob' })
    const bob = await net.client('bob', { store: bobStore, retainEpochs: 2 })
    await bob.publishKeyPackages({ count: 1 })
    const [a, b] = await groupWith(alice, [bob])
    const epoch1 = b.mlsState!
    const epoch1Secrets = [epoch1.keySchedule.senderDataSecret.slice(), epoch1.keySchedule.exporterSecret.slice()]
    expect(epoch1Secrets.every((s) => rawContains(bobStore, s))).toBe(true)
    await a.update()
    await converged([a, b], 2n)
    // Within the window: epoch 1's receiver data is still kept (for late messages).
    expect(b.mlsState!.historicalReceiverData.has(1n)).toBe(true)
    for (let i = 0; i < 3; i++) await a.update()
    await converged([a, b], 5n)
    expect([...b.mlsState!.historicalReceiverData.keys()].every((e) => e >= 3n)).toBe(true)
    for (const secret of epoch1Secrets) expect(rawContains(bobStore, secret)).toBe(false)
  })

  it('message keys are deleted after use: the stored state cannot decrypt a message twice', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const bob = await net.client('bob')
    await bob.publishKeyPackages({ count: 1 })
    const a = await alice.createGroup()
    await alice.addUsers(a, ['bob'])
    const b = await joined(bob, a.groupId)
    const { seq } = await a.send('read once')
    await waitFor(() => b.cursor === seq, 'bob to read')
    const entry = (await net.services.channel.fetchEntries('bob/phone', a.groupId, seq - 1))[0]!
    const pm = decodeMlsMessage(entry.message, 0)![0]
    if (pm.wireformat !== 'mls_private_message') throw new Error('expected a PrivateMessage')
    const cs = await crypto.getCiphersuiteImpl({ ...(await import('@mls/core/mls')).getCiphersuiteFromName(ciphersuite) })
    await expect(processPrivateMessage(b.mlsState!, pm.privateMessage, emptyPskIndex, cs)).rejects.toThrow()
  })

  it('a removed member deletes the group secrets from its store', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const alice = await net.client('alice')
    const bobStore = memoryClientStore({ name: 'bob' })
    const bob = await net.client('bob', { store: bobStore })
    await bob.publishKeyPackages({ count: 1 })
    const [a, b] = await groupWith(alice, [bob])
    const secrets = [b.mlsState!.keySchedule.exporterSecret.slice(), b.mlsState!.keySchedule.senderDataSecret.slice(), b.mlsState!.signaturePrivateKey.slice()]
    expect(secrets.slice(0, 2).every((s) => rawContains(bobStore, s))).toBe(true)
    await a.removeMembers(['bob'])
    await waitFor(() => b.status === 'removed', 'bob to be removed')
    expect(await bobStore.get(`group/${b.groupIdHex}/state`)).toBeUndefined()
    expect(rawContains(bobStore, secrets[0]!)).toBe(false)
    expect(rawContains(bobStore, secrets[1]!)).toBe(false)
    expect(b.mlsState).toBeUndefined()
  })
})
