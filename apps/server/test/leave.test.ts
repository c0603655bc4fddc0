import { afterEach, describe, expect, it } from 'vitest'
import { type Group, type MlsClient } from '@mls/core'
import { converged, groupWith, waitFor } from '@mls/scenarios'
import { serverUrl, webSocketClient, type Cleanups } from './fixtures.js'

const cleanups: Cleanups = []

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const server = (): Promise<string> => serverUrl('mls-leave-', cleanups)

const client = (userId: string, url: string): Promise<MlsClient> => webSocketClient(userId, url, cleanups)

const ids = (g: Group) => g.members().map((m) => m.clientId).sort()

describe('leaving a group over WebSocket, against a real server process', () => {
  it('a self-Remove proposal is kept by every member and the next commit, of any kind, removes the leaver', async () => {
    const url = await server()
    const [alice, bob, carol] = [await client('alice', url), await client('bob', url), await client('carol', url)]
    for (const c of [alice, bob, carol]) await c.publishKeyPackages({ count: 3 })
    const [a, b, c] = await groupWith(alice, [bob, carol])
    const proposals = [a, c].map((g) => g.once('proposal:received'))
    const removed = b.once('group:removed')

    const { seq } = await b.leave()
    for (const proposal of await Promise.all(proposals)) expect(proposal).toMatchObject({ seq, sender: 'bob/laptop', removes: ['bob/laptop'] })
    // Ordering the proposal changes no epoch: bob is still a member until a commit includes it.
    expect([a.epoch, b.epoch, c.epoch]).toEqual([1n, 1n, 1n])
    expect(b.status).toBe('active')
    await waitFor(() => a.cursor >= seq, 'alice to keep the proposal')

    // Carol's next commit is a plain update; it includes bob's proposal by reference.
    const outcome = await c.update()
    expect(outcome.kind).toBe('committed')
    expect(await removed).toMatchObject({ epoch: 2n, by: 'carol/laptop' })
    expect(b.status).toBe('removed')
    await converged([a, c], 2n)
    expect(ids(a)).toEqual(['alice/laptop', 'carol/laptop'])
    expect(ids(c)).toEqual(['alice/laptop', 'carol/laptop'])

    // The group carries on without bob.
    const heard = a.once('message:received')
    await c.send('bye bob')
    expect(new TextDecoder().decode((await heard).plaintext)).toBe('bye bob')
    await expect(b.send('still here?')).rejects.toMatchObject({ code: 'INVALID_STATE' })
  })

  it('removing a member that already asked to leave commits its proposal instead of a duplicate Remove', async () => {
    const url = await server()
    const [alice, bob, carol] = [await client('alice', url), await client('bob', url), await client('carol', url)]
    for (const c of [alice, bob, carol]) await c.publishKeyPackages({ count: 3 })
    const [a, b, c] = await groupWith(alice, [bob, carol])
    const kept = a.once('proposal:received')
    await b.leave()
    await kept
    const outcome = await a.removeMembers(['bob'])
    expect(outcome).toMatchObject({ kind: 'committed', removed: ['bob/laptop'] })
    await converged([a, c], 2n)
    await waitFor(() => b.status === 'removed', 'bob to be removed')
    expect(ids(c)).toEqual(['alice/laptop', 'carol/laptop'])
  })

  it('leave() while this member’s removal is already pending posts nothing and resolves with alreadyProposed, seen or not', async () => {
    const url = await server()
    const [alice, bob, carol] = [await client('alice', url), await client('bob', url), await client('carol', url)]
    for (const c of [alice, bob, carol]) await c.publishKeyPackages({ count: 3 })
    const [a, b, c] = await groupWith(alice, [bob, carol])
    // Alice proposes bob's removal; bob asks to leave right away, whether or not the push has reached him yet
    // (if not, the channel refuses his Remove as a second one of his leaf and he catches up).
    const { seqs } = await a.propose.remove(['bob'])
    const left = await b.leave()
    expect(left).toMatchObject({ alreadyProposed: true })
    expect(left.seq).toBeGreaterThanOrEqual(seqs[0]!)
    // Asked again: known pending, nothing posted.
    expect(await b.leave()).toMatchObject({ alreadyProposed: true })
    const proposals = (await alice.channel.fetchEntries(a.groupId, 0)).filter((e) => e.kind === 'proposal')
    expect(proposals.map((e) => e.seq)).toEqual(seqs)
    // The next commit removes him.
    const removed = b.once('group:removed')
    expect(await c.update()).toMatchObject({ kind: 'committed' })
    expect(await removed).toMatchObject({ epoch: 2n })
    await converged([a, c], 2n)
    expect(ids(a)).toEqual(['alice/laptop', 'carol/laptop'])
  })
})
