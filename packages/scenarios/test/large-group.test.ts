import { describe, expect, it } from 'vitest'
import type { Group, MlsClient } from '@mls/core'
import { converged, createTestNetwork, joined, providerCases, waitFor } from '../src/index.js'

const SIZE = 100
const BATCH = 33

describe('a group of 100 members', () => {
  const [fastest] = providerCases().slice(-1)
  it(`is created with batched adds, everyone joins from its Welcome, and all agree after one member's commit (${fastest!.name})`, async () => {
    const net = await createTestNetwork({ crypto: fastest!.crypto, ciphersuite: fastest!.ciphersuite })
    const clients: MlsClient[] = []
    for (let i = 0; i < SIZE; i++) {
      const c = await net.client(`user${String(i).padStart(3, '0')}`)
      if (i > 0) await c.publishKeyPackages({ count: 1 })
      clients.push(c)
    }
    const creator = clients[0]!
    const g = await creator.createGroup()
    const others = clients.slice(1).map((c) => c.userId)
    let epoch = 0n
    for (let i = 0; i < others.length; i += BATCH) {
      const outcome = await creator.addUsers(g, others.slice(i, i + BATCH))
      expect(outcome.kind).toBe('committed')
      epoch++
    }
    const groups: Group[] = [g]
    for (const c of clients.slice(1)) groups.push(await joined(c, g.groupId))
    await converged(groups, epoch)
    expect(g.members()).toHaveLength(SIZE)

    // One member in the middle commits an update; all the others process it.
    const committer = groups[57]!
    expect(await committer.update()).toMatchObject({ kind: 'committed', epoch: epoch + 1n })
    await converged(groups, epoch + 1n)
    for (const grp of groups) expect(grp.members()).toHaveLength(SIZE)

    const received = new Set<string>()
    for (const grp of groups) grp.on('message:received', () => received.add(toKey(grp)))
    await groups[99]!.send('hello, hundred')
    await waitFor(() => received.size === SIZE, 'everyone to receive the message (the sender sees its echo)', 60_000)
  }, 600_000)
})

function toKey(g: Group): string {
  return String(g.ownLeafIndex)
}
