import { describe, expect, it } from 'vitest'
import { converged, createTestNetwork, joined, providerCases } from '../src/index.js'

const [defaultCase] = providerCases()
const { crypto, ciphersuite } = defaultCase!

async function pair(retainGenerations?: number) {
  const net = await createTestNetwork({ crypto, ciphersuite })
  const alice = await net.client('alice')
  // Bob takes messages by hand (receive), as an app with its own delivery would.
  const bob = await net.client('bob', { autoSync: false, ...(retainGenerations === undefined ? {} : { retainGenerations }) })
  await bob.publishKeyPackages({ count: 1 })
  const a = await alice.createGroup()
  await alice.addUsers(a, ['bob'])
  await bob.processWelcomes()
  const b = await joined(bob, a.groupId)
  await converged([a, b], 1n)
  const ciphertexts = async (from: number) => (await alice.channel.fetchEntries(a.groupId, from)).map((e) => e.message)
  return { net, alice, bob, a, b, ciphertexts }
}

const text = (r: { kind: string; plaintext?: Uint8Array }) => (r.plaintext === undefined ? r.kind : new TextDecoder().decode(r.plaintext))

describe('application messages out of order, across epochs, and duplicated', () => {
  it('messages of one epoch decrypt in any order within the retention limits; duplicates are ignored', async () => {
    const { a, b, ciphertexts } = await pair()
    const start = a.cursor
    for (const t of ['m1', 'm2', 'm3', 'm4']) await a.send(t)
    const [m1, m2, m3, m4] = (await ciphertexts(start)).filter((_, i, all) => i >= all.length - 4)
    expect(text(await b.receive(m3!))).toBe('m3')
    expect(text(await b.receive(m1!))).toBe('m1')
    expect(text(await b.receive(m4!))).toBe('m4')
    expect(text(await b.receive(m2!))).toBe('m2')
    expect(await b.receive(m2!)).toEqual({ kind: 'duplicate' })
  })

  it('a message far beyond the out-of-order window is rejected with a typed error and changes nothing', async () => {
    const { a, b, ciphertexts } = await pair(3)
    const start = a.cursor
    for (let i = 0; i < 6; i++) await a.send(`n${i}`)
    const all = (await ciphertexts(start)).slice(-6)
    expect(text(await b.receive(all[5]!))).toBe('n5')
    const auth = b.epochAuthenticator()
    await expect(b.receive(all[0]!)).rejects.toMatchObject({ code: 'MESSAGE_REJECTED' })
    expect(b.epochAuthenticator()).toEqual(auth)
    expect(text(await b.receive(all[4]!))).toBe('n4')
  })

  it('a message from a recent past epoch still decrypts; a future-epoch message waits for its epoch', async () => {
    const { a, b, alice } = await pair()
    const start = a.cursor
    await a.send('old epoch')
    await a.update()
    await a.send('new epoch')
    const entries = await alice.channel.fetchEntries(a.groupId, start)
    expect(entries.map((e) => e.kind)).toEqual(['application', 'commit', 'application'])
    const [oldMsg, commit, newMsg] = entries.map((e) => e.message)
    // The new-epoch message arrives before the commit: it waits.
    expect(await b.receive(newMsg!)).toEqual({ kind: 'waiting-for-epoch', epoch: 2n })
    const got: string[] = []
    b.on('message:received', (m) => got.push(new TextDecoder().decode(m.plaintext)))
    expect(await b.receive(commit!)).toMatchObject({ kind: 'commit', epoch: 2n })
    expect(got).toEqual(['new epoch'])
    // The old-epoch message arrives after the commit: retained keys decrypt it.
    expect(text(await b.receive(oldMsg!))).toBe('old epoch')
    expect(b.epoch).toBe(2n)
  })
})
