import { describe, expect, it } from 'vitest'
import { nodeCrypto } from '@mls/crypto-node'
import { converged, createTestNetwork, waitFor } from '../src/index.js'

// MlsClient.joinWelcome: a Welcome handed over outside the mailbox is checked as one from the
// mailbox, and a refused one changes nothing.

async function setup() {
  const net = await createTestNetwork({ crypto: nodeCrypto() })
  const alice = await net.client('alice')
  const bob = await net.client('bob')
  const carol = await net.client('carol')
  await bob.publishKeyPackages({ count: 2 })
  await carol.publishKeyPackages({ count: 2 })
  // Bob verifies Alice's device list while online, then goes offline while Alice adds him: the
  // Welcome reaches him only by hand, and he checks it against the list he verified.
  await bob.deviceList('alice')
  net.transport.setOnline(bob.clientId, false)
  const a = await alice.createGroup()
  await alice.addUsers(a, ['bob'])
  const [entry] = await net.services.channel.fetchWelcomes(bob.clientId, 0)
  return { net, alice, bob, carol, a, entry: entry! }
}

describe('joining from a Welcome handed over out of band', () => {
  it('joins, catches up and exchanges messages; the mailbox copy is then refused as already joined', async () => {
    const { net, alice, bob, a, entry } = await setup()
    expect(bob.group(a.groupId)).toBeUndefined()
    const rejected: string[] = []
    bob.on('welcome:rejected', (e) => rejected.push(e.error.code))
    const b = await bob.joinWelcome(entry.welcome, { commitSeq: entry.commitSeq })
    expect(b.status).toBe('joining')
    // Back online, Bob's client syncs its mailbox: the same Welcome is refused there as already joined.
    net.transport.setOnline(bob.clientId, true)
    await waitFor(() => rejected.length > 0, 'the mailbox copy to be refused')
    expect(rejected).toEqual(['WELCOME_INVALID'])
    await b.sync()
    await converged([a, b], 1n)
    const texts: string[] = []
    b.on('message:received', (m) => texts.push(new TextDecoder().decode(m.plaintext)))
    await a.send('out of band welcome')
    await waitFor(() => texts.includes('out of band welcome'), 'bob to read alice')
    expect(bob.group(a.groupId)).toBe(b)
    expect(b.status).toBe('active')
    await Promise.all([alice.close(), bob.close()])
  })

  it('refuses garbage, a Welcome for another client and a replay, with WELCOME_INVALID and nothing stored', async () => {
    const { net, alice, bob, carol, a, entry } = await setup()
    await expect(bob.joinWelcome(new Uint8Array([0, 1, 0, 3, 9]), { commitSeq: 1 })).rejects.toMatchObject({ code: 'WELCOME_INVALID' })
    await alice.addUsers(a, ['carol'])
    const [forCarol] = await net.services.channel.fetchWelcomes(carol.clientId, 0)
    await expect(bob.joinWelcome(forCarol!.welcome, { commitSeq: forCarol!.commitSeq })).rejects.toMatchObject({ code: 'WELCOME_INVALID' })
    expect(bob.listGroups()).toEqual([])
    await expect(bob.joinWelcome(entry.welcome, { commitSeq: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    await bob.joinWelcome(entry.welcome, { commitSeq: entry.commitSeq })
    await expect(bob.joinWelcome(entry.welcome, { commitSeq: entry.commitSeq })).rejects.toMatchObject({ code: 'WELCOME_INVALID' })
    expect(bob.listGroups()).toHaveLength(1)
    await Promise.all([alice.close(), bob.close(), carol.close()])
  })
})
