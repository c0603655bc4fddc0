import { describe, expect, it } from 'vitest'
import { toHex, utf8 } from '@mls/core'
import { createProposal, encodeMlsMessage, type Proposal } from '@mls/core/mls'
import { Member, TestClient, add, expectCode, forgeCommit, groupInfoOf, groupOf, harness, newGroupInfo, remove } from './helpers.js'

async function clients(h: Awaited<ReturnType<typeof harness>>, ...names: string[]): Promise<TestClient[]> {
  const out = []
  for (const name of names) {
    const client = await TestClient.register(h, `${name}/phone`)
    await client.upload(3)
    out.push(client)
  }
  return out
}

describe('channel: groups and commits', () => {
  it('creates a group once, from its creator\'s signed GroupInfo, with the creator as its only member', async () => {
    const h = await harness()
    const [alice, bob] = await clients(h, 'alice', 'bob')
    const groupId = utf8.encode('g1')
    const aliceInfo = await newGroupInfo(alice!, groupId)
    // Refused before anything is stored: another client's GroupInfo, another group's, another epoch's, garbage, none.
    await expect(h.services.channel.createGroup(bob!.clientId, groupId, { groupInfo: aliceInfo })).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      details: { reason: 'invalid-group-info' }
    })
    await expect(h.services.channel.createGroup(alice!.clientId, utf8.encode('g2'), { groupInfo: aliceInfo })).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      details: { reason: 'invalid-group-info' }
    })
    await expectCode(h.services.channel.createGroup(alice!.clientId, groupId, { groupInfo: new Uint8Array(40).fill(7) }), 'INVALID_MESSAGE')
    await expectCode(h.services.channel.createGroup(alice!.clientId, groupId, undefined as unknown as { groupInfo: Uint8Array }), 'INVALID_ARGUMENT')
    expect(await h.store.getGroup('6731')).toBeUndefined()

    await h.services.channel.createGroup(alice!.clientId, groupId, { groupInfo: aliceInfo })
    await expectCode(h.services.channel.createGroup(bob!.clientId, groupId, { groupInfo: await newGroupInfo(bob!, groupId) }), 'GROUP_EXISTS')
    expect(await h.store.getGroup('6731')).toEqual({
      groupId: '6731',
      epoch: 0n,
      lastSeq: 0,
      roster: [{ leafIndex: 0, clientId: 'alice/phone' }],
      access: [{ clientId: 'alice/phone', fromSeq: 0, untilSeq: null }]
    })
    expect(await h.store.getPublicState('6731')).toMatchObject({ epoch: 0n, groupInfo: aliceInfo })
    await expectCode(h.services.channel.createGroup(alice!.clientId, new Uint8Array(0), { groupInfo: aliceInfo }), 'INVALID_ARGUMENT')
    await expectCode(h.services.channel.createGroup(alice!.clientId, new Uint8Array(257), { groupInfo: aliceInfo }), 'INVALID_ARGUMENT')
  })

  it('orders an Add, delivers its Welcome only to the added client, and the joiner reads from after it', async () => {
    const h = await harness()
    const [alice, bob, carol] = await clients(h, 'alice', 'bob', 'carol')
    const a = await Member.create(alice!, utf8.encode('g'))
    const [bobKp] = await a.fetch('bob')
    const result = await a.commit([add(bobKp!.decoded)])
    expect(result).toEqual({ kind: 'accepted', seq: 1, epoch: 1n })
    expect(alice!.entrySeqs()).toEqual([1])
    expect(bob!.entrySeqs()).toEqual([])
    expect(bob!.welcomes()).toHaveLength(1)
    expect(carol!.welcomes()).toHaveLength(0)
    const mailbox = await h.services.channel.fetchWelcomes(bob!.clientId, 0)
    expect(mailbox).toEqual([{ seq: 1, groupId: utf8.encode('g'), welcome: bob!.welcomes()[0], commitSeq: 1 }])
    expect(await h.services.channel.fetchWelcomes(carol!.clientId, 0)).toEqual([])
    expect(await h.services.channel.fetchWelcomes(alice!.clientId, 0)).toEqual([])
    const b = await Member.join(bob!, mailbox[0]!.welcome, bobKp!.keyPackage)
    expect(b.epoch).toBe(1n)
    expect(await h.services.channel.fetchEntries(bob!.clientId, a.groupId, 0)).toEqual([])
    await b.send('hello')
    const entries = await h.services.channel.fetchEntries(alice!.clientId, a.groupId, 0)
    expect(entries.map((e) => [e.seq, e.kind, e.epoch, e.sender])).toEqual([
      [1, 'commit', 0n, 'alice/phone'],
      [2, 'application', 1n, 'bob/phone']
    ])
    expect(bob!.entrySeqs()).toEqual([2])
    expect(alice!.entrySeqs()).toEqual([1, 2])
  })

  it('accepts exactly one commit per epoch under concurrent posts; the rest get a conflict with the current epoch', async () => {
    const h = await harness()
    const [alice, bob, carol] = await clients(h, 'alice', 'bob', 'carol')
    const { members } = await groupOf(alice!, [bob!, carol!])
    const [a, b, c] = members as [Member, Member, Member]
    const prepared = [await a.prepareCommit(), await a.prepareCommit(), await b.prepareCommit(), await c.prepareCommit(), await b.prepareCommit()]
    const posters = [a, a, b, c, b]
    const results = await Promise.all(prepared.map((p, i) => posters[i]!.post(p)))
    expect(results.filter((r) => r.kind === 'accepted')).toEqual([{ kind: 'accepted', seq: 2, epoch: 2n }])
    expect(results.filter((r) => r.kind === 'conflict')).toEqual(Array.from({ length: 4 }, () => ({ kind: 'conflict', epoch: 2n })))
    const log = await h.services.channel.fetchEntries(alice!.clientId, a.groupId, 0)
    expect(log.map((e) => [e.seq, e.kind, e.epoch])).toEqual([
      [1, 'commit', 0n],
      [2, 'commit', 1n]
    ])
    const loser = results.findIndex((r) => r.kind === 'conflict')
    expect(await posters[loser]!.post(prepared[loser]!)).toEqual({ kind: 'conflict', epoch: 2n })
  })

  it('delivers a Welcome only if its commit was accepted', async () => {
    const h = await harness()
    const [alice, bob, carol] = await clients(h, 'alice', 'bob', 'carol')
    const { members } = await groupOf(alice!, [bob!])
    const [a, b] = members as [Member, Member]
    const [kpForA] = await a.fetch('carol')
    const [kpForB] = await b.fetch('carol')
    const fromA = await a.prepareCommit([add(kpForA!.decoded)])
    const fromB = await b.prepareCommit([add(kpForB!.decoded)])
    const [ra, rb] = await Promise.all([a.post(fromA), b.post(fromB)])
    const winner = ra.kind === 'accepted' ? fromA : fromB
    expect([ra.kind, rb.kind].sort()).toEqual(['accepted', 'conflict'])
    const mailbox = await h.services.channel.fetchWelcomes(carol!.clientId, 0)
    expect(mailbox).toHaveLength(1)
    expect(mailbox[0]?.welcome).toEqual(winner.welcome)
    expect(mailbox[0]?.commitSeq).toBe(2)
    expect(carol!.welcomes()).toEqual([winner.welcome])
  })

  it('refuses a Welcome that is missing, superfluous or for a KeyPackage the commit does not add, storing nothing', async () => {
    const h = await harness()
    const [alice] = await clients(h, 'alice', 'bob', 'carol')
    const a = await Member.create(alice!, utf8.encode('g'))
    const [bobKp, carolKp] = await a.fetch('bob', 'carol')
    const addBob = await a.prepareCommit([add(bobKp!.decoded)])
    const addCarol = await a.prepareCommit([add(carolKp!.decoded)])
    const addBoth = await a.prepareCommit([add(bobKp!.decoded), add(carolKp!.decoded)])
    const empty = await a.prepareCommit()
    await expectCode(a.post({ ...addBob, welcome: addCarol.welcome }), 'WELCOME_INVALID')
    await expectCode(a.post({ ...addBob, welcome: undefined }), 'WELCOME_INVALID')
    await expectCode(a.post({ ...empty, welcome: addBob.welcome }), 'WELCOME_INVALID')
    await expectCode(a.post({ ...addBoth, welcome: addBob.welcome }), 'WELCOME_INVALID')
    await expectCode(a.post({ ...addBob, welcome: addBob.commit }), 'WELCOME_INVALID')
    expect(await h.store.getGroup(Buffer.from('g').toString('hex'))).toMatchObject({ epoch: 0n, lastSeq: 0 })
    expect(await h.services.channel.fetchWelcomes('bob/phone', 0)).toEqual([])
    expect(await a.post(addBoth)).toMatchObject({ kind: 'accepted', seq: 1 })
    expect(await h.services.channel.fetchWelcomes('bob/phone', 0)).toHaveLength(1)
    expect(await h.services.channel.fetchWelcomes('carol/phone', 0)).toHaveLength(1)
  })

  it('takes an Add of a KeyPackage the Directory never served (handed over out of band) only under the key its client registered', async () => {
    const h = await harness()
    const [alice, bob] = await clients(h, 'alice', 'bob')
    const a = await Member.create(alice!, utf8.encode('g'))
    // A KeyPackage naming bob under a key bob never registered: refused, nothing delivered.
    const impostor = await bob!.keyPackage({ keys: await h.cs.signature.keygen() })
    await expectCode(a.commit([add(impostor.publicPackage)]), 'INVALID_MESSAGE')
    expect(await h.services.channel.fetchWelcomes(bob!.clientId, 0)).toEqual([])
    expect(a.epoch).toBe(0n)
    // bob's own KeyPackage, never uploaded: the Add is ordered and the Welcome routed to bob.
    const direct = await bob!.keyPackage()
    expect(await a.commit([add(direct.publicPackage)])).toEqual({ kind: 'accepted', seq: 1, epoch: 1n })
    expect(await h.services.channel.fetchWelcomes(bob!.clientId, 0)).toHaveLength(1)
  })

  it("creates a group from a lone creator's GroupInfo of a later epoch, not from one with other members", async () => {
    const h = await harness()
    const [alice, bob] = await clients(h, 'alice', 'bob')
    // Alice alone, one update into the group (epoch 1), as core-crypto exposes its first GroupInfo.
    const alone = await Member.create(alice!, utf8.encode('later'), false)
    alone.state = (await alone.prepareCommit()).newState
    expect(alone.epoch).toBe(1n)
    await h.services.channel.createGroup(alice!.clientId, alone.groupId, { groupInfo: await groupInfoOf(alone.state, h.cs) })
    expect(await h.store.getGroup(toHex(alone.groupId))).toMatchObject({ epoch: 1n, lastSeq: 0, roster: [{ leafIndex: 0, clientId: alice!.clientId }] })
    expect(await alone.commit()).toEqual({ kind: 'accepted', seq: 1, epoch: 2n })
    // With bob in the tree it is no new group.
    const pair = await Member.create(alice!, utf8.encode('pair'), false)
    pair.state = (await pair.prepareCommit([add((await bob!.keyPackage()).publicPackage)])).newState
    await expect(h.services.channel.createGroup(alice!.clientId, pair.groupId, { groupInfo: await groupInfoOf(pair.state, h.cs) })).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      details: { reason: 'invalid-group-info' }
    })
  })

  it('refuses commits that are not this group’s public commits from the caller’s own leaf', async () => {
    const h = await harness()
    const [alice, bob] = await clients(h, 'alice', 'bob')
    const { members } = await groupOf(alice!, [bob!])
    const [a, b] = members as [Member, Member]
    const other = await Member.create(alice!, utf8.encode('other group'))
    const fromA = await a.prepareCommit()
    const channel = h.services.channel
    await expect(channel.postCommit(bob!.clientId, a.groupId, { epoch: 1n, commit: fromA.commit })).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      message: expect.stringMatching(/not the caller/)
    })
    await expectCode(channel.postCommit(alice!.clientId, a.groupId, { epoch: 2n, commit: fromA.commit }), 'INVALID_MESSAGE')
    const otherCommit = await other.prepareCommit()
    await expectCode(channel.postCommit(alice!.clientId, a.groupId, { epoch: 0n, commit: otherCommit.commit }), 'INVALID_MESSAGE')
    await expectCode(channel.postCommit(alice!.clientId, a.groupId, { epoch: 1n, commit: await a.message('not a commit') }), 'INVALID_MESSAGE')
    await expectCode(channel.postCommit(alice!.clientId, a.groupId, { epoch: 1n, commit: new Uint8Array([0, 1, 0, 1, 7]) }), 'INVALID_MESSAGE')
    const proposal = await createProposal(b.state, true, { proposalType: 'remove', remove: { removed: 0 } }, h.cs)
    await expectCode(channel.postCommit(bob!.clientId, a.groupId, { epoch: 1n, commit: encodeMlsMessage(proposal.message) }), 'INVALID_MESSAGE')
    const withRef = await new Member(bob!, proposal.newState).prepareCommit()
    await expect(channel.postCommit(bob!.clientId, a.groupId, { epoch: 1n, commit: withRef.commit })).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      details: { reason: 'unknown-proposal-reference' }
    })
    await expectCode(channel.postCommit(alice!.clientId, utf8.encode('nope'), { epoch: 0n, commit: fromA.commit }), 'INVALID_MESSAGE')
    expect(await a.post(fromA)).toMatchObject({ kind: 'accepted', seq: 2 })
  })

  it('refuses commits from non-members and to unknown groups', async () => {
    const h = await harness()
    const [alice, bob, mallory] = await clients(h, 'alice', 'bob', 'mallory')
    const { groupId, members } = await groupOf(alice!, [bob!])
    const prepared = await members[0]!.prepareCommit()
    await expectCode(h.services.channel.postCommit(mallory!.clientId, groupId, { epoch: 1n, commit: prepared.commit }), 'NOT_A_MEMBER')
    const ghost = await Member.create(mallory!, utf8.encode('ghost'), false)
    const ghostCommit = await ghost.prepareCommit()
    await expectCode(h.services.channel.postCommit(mallory!.clientId, utf8.encode('ghost'), { epoch: 0n, commit: ghostCommit.commit }), 'UNKNOWN_GROUP')
  })

  it('refuses oversized commits and Welcomes', async () => {
    const h = await harness({ limits: { maxHandshakeBytes: 2000 } })
    const [alice] = await clients(h, 'alice', 'bob')
    const a = await Member.create(alice!, utf8.encode('g'))
    const [bobKp] = await a.fetch('bob')
    const prepared = await a.prepareCommit([add(bobKp!.decoded)])
    await expectCode(a.post({ ...prepared, commit: new Uint8Array(2001) }), 'PAYLOAD_TOO_LARGE')
    await expectCode(a.post({ ...prepared, welcome: new Uint8Array(2001) }), 'PAYLOAD_TOO_LARGE')
  })
})

describe('channel: membership', () => {
  it('keeps non-members from reading or posting', async () => {
    const h = await harness()
    const [alice, bob, mallory] = await clients(h, 'alice', 'bob', 'mallory')
    const { groupId, members } = await groupOf(alice!, [bob!])
    const message = await members[0]!.message('secret')
    await expectCode(h.services.channel.fetchEntries(mallory!.clientId, groupId, 0), 'NOT_A_MEMBER')
    await expectCode(h.services.channel.postMessage(mallory!.clientId, groupId, message), 'NOT_A_MEMBER')
    await expectCode(h.services.channel.fetchEntries(mallory!.clientId, utf8.encode('unknown'), 0), 'UNKNOWN_GROUP')
    expect(await h.services.channel.postMessage(alice!.clientId, groupId, message)).toEqual({ seq: 2 })
    expect(mallory!.events).toEqual([])
  })

  it('cuts a removed member off after the commit that removed it', async () => {
    const h = await harness()
    const [alice, bob, carol] = await clients(h, 'alice', 'bob', 'carol')
    const { groupId, members } = await groupOf(alice!, [bob!, carol!])
    const [a, b] = members as [Member, Member, Member]
    expect(await a.send('before')).toEqual({ seq: 2 })
    const removal = await a.commit([remove(b.leafIndex)])
    expect(removal).toEqual({ kind: 'accepted', seq: 3, epoch: 2n })
    expect(await a.send('after')).toEqual({ seq: 4 })
    const read = await h.services.channel.fetchEntries(bob!.clientId, groupId, 0)
    expect(read.map((e) => e.seq)).toEqual([2, 3])
    expect(await h.services.channel.fetchEntries(bob!.clientId, groupId, 3)).toEqual([])
    expect(bob!.entrySeqs()).toEqual([2, 3])
    expect(carol!.entrySeqs()).toEqual([2, 3, 4])
    expect(alice!.entrySeqs()).toEqual([1, 2, 3, 4])
    await expectCode(b.send('still here?'), 'NOT_A_MEMBER')
    await expectCode(b.commit(), 'NOT_A_MEMBER')
    expect((await h.services.channel.fetchEntries(carol!.clientId, groupId, 0)).map((e) => e.seq)).toEqual([2, 3, 4])
  })

  it('tracks leaves as MLS does: a new member takes the leftmost blank leaf and can commit from it', async () => {
    const h = await harness()
    const [alice, bob, carol, dave] = await clients(h, 'alice', 'bob', 'carol', 'dave')
    const { groupId, members } = await groupOf(alice!, [bob!, carol!])
    const [a, b, c] = members as [Member, Member, Member]
    expect([b.leafIndex, c.leafIndex]).toEqual([1, 2])
    expect((await a.commit([remove(b.leafIndex)])).kind).toBe('accepted')
    const [daveKp] = await a.fetch('dave')
    expect(await a.commit([add(daveKp!.decoded)])).toMatchObject({ kind: 'accepted', seq: 3 })
    const d = await Member.join(dave!, dave!.welcomes()[0]!, daveKp!.keyPackage)
    expect(d.leafIndex).toBe(1)
    expect((await h.store.getGroup(Buffer.from(groupId).toString('hex')))?.roster).toEqual([
      { leafIndex: 0, clientId: 'alice/phone' },
      { leafIndex: 1, clientId: 'dave/phone' },
      { leafIndex: 2, clientId: 'carol/phone' }
    ])
    expect(await d.commit()).toEqual({ kind: 'accepted', seq: 4, epoch: 4n })
    expect((await h.services.channel.fetchEntries(dave!.clientId, groupId, 0)).map((e) => e.seq)).toEqual([4])
    expect((await h.services.channel.fetchEntries(bob!.clientId, groupId, 0)).map((e) => e.seq)).toEqual([2])
  })

  it('lets a removed and re-added member read both of its windows, and nothing between', async () => {
    const h = await harness()
    const [alice, bob] = await clients(h, 'alice', 'bob')
    const { groupId, members } = await groupOf(alice!, [bob!])
    const [a, b] = members as [Member, Member]
    await a.send('m2')
    await a.commit([remove(b.leafIndex)])
    await a.send('m4 (bob must not read)')
    const [again] = await a.fetch('bob')
    await a.commit([add(again!.decoded)])
    await a.send('m6')
    expect((await h.services.channel.fetchEntries(bob!.clientId, groupId, 0)).map((e) => e.seq)).toEqual([2, 3, 6])
    expect((await h.services.channel.fetchEntries(bob!.clientId, groupId, 0, { limit: 2 })).map((e) => e.seq)).toEqual([2, 3])
    expect((await h.services.channel.fetchEntries(bob!.clientId, groupId, 3, 5)).map((e) => e.seq)).toEqual([6])
  })
})

describe('channel: application messages', () => {
  it('refuses a replayed message', async () => {
    const h = await harness()
    const [alice, bob] = await clients(h, 'alice', 'bob')
    const { groupId, members } = await groupOf(alice!, [bob!])
    const message = await members[0]!.message('once')
    expect(await h.services.channel.postMessage(alice!.clientId, groupId, message)).toEqual({ seq: 2 })
    await expectCode(h.services.channel.postMessage(alice!.clientId, groupId, message), 'REPLAYED_MESSAGE')
    await expectCode(h.services.channel.postMessage(bob!.clientId, groupId, message), 'REPLAYED_MESSAGE')
    expect((await h.services.channel.fetchEntries(bob!.clientId, groupId, 0)).map((e) => e.seq)).toEqual([2])
  })

  it('refuses oversized messages', async () => {
    const h = await harness({ limits: { maxMessageBytes: 1000 } })
    const [alice] = await clients(h, 'alice')
    const a = await Member.create(alice!, utf8.encode('g'))
    await expectCode(a.send('x'.repeat(2000)), 'PAYLOAD_TOO_LARGE')
    expect(await a.send('small')).toEqual({ seq: 1 })
    const defaults = await harness()
    const [carol] = await clients(defaults, 'carol')
    const c = await Member.create(carol!, utf8.encode('g'))
    await expectCode(defaults.services.channel.postMessage(carol!.clientId, c.groupId, new Uint8Array((1 << 20) + 1)), 'PAYLOAD_TOO_LARGE')
  })

  it('accepts messages from the current epoch and the two before it only', async () => {
    const h = await harness()
    const [alice] = await clients(h, 'alice')
    const a = await Member.create(alice!, utf8.encode('g'))
    const atEpoch0 = await a.message('e0')
    await a.commit()
    const atEpoch1 = await a.message('e1')
    await a.commit()
    await a.commit()
    expect(a.epoch).toBe(3n)
    await expect(h.services.channel.postMessage(alice!.clientId, a.groupId, atEpoch0)).rejects.toMatchObject({
      code: 'WRONG_EPOCH',
      details: { epoch: 0n, currentEpoch: 3n }
    })
    expect(await h.services.channel.postMessage(alice!.clientId, a.groupId, atEpoch1)).toEqual({ seq: 4 })
    const narrow = await harness({ limits: { epochWindow: 0 } })
    const [bob] = await clients(narrow, 'bob')
    const b = await Member.create(bob!, utf8.encode('g'))
    const stale = await b.message('e0')
    await b.commit()
    await expectCode(narrow.services.channel.postMessage(bob!.clientId, b.groupId, stale), 'WRONG_EPOCH')
  })

  it('refuses handshakes, other groups and garbage as application messages', async () => {
    const h = await harness()
    const [alice] = await clients(h, 'alice')
    const a = await Member.create(alice!, utf8.encode('g'))
    const other = await Member.create(alice!, utf8.encode('other'))
    const commit = await a.prepareCommit()
    await expectCode(h.services.channel.postMessage(alice!.clientId, a.groupId, commit.commit), 'INVALID_MESSAGE')
    await expectCode(h.services.channel.postMessage(alice!.clientId, a.groupId, await other.message('elsewhere')), 'INVALID_MESSAGE')
    await expectCode(h.services.channel.postMessage(alice!.clientId, a.groupId, new Uint8Array([1, 2, 3])), 'INVALID_MESSAGE')
    await expectCode(h.services.channel.postMessage(alice!.clientId, utf8.encode('unknown'), await a.message('x')), 'INVALID_MESSAGE')
    expect(await h.services.channel.fetchEntries(alice!.clientId, a.groupId, 0)).toEqual([])
  })
})

describe('channel: reading and push', () => {
  it('pages entries with a default and a maximum limit', async () => {
    const h = await harness({ limits: { defaultFetchLimit: 3, maxFetchLimit: 5 } })
    const [alice] = await clients(h, 'alice')
    const a = await Member.create(alice!, utf8.encode('g'))
    for (let i = 0; i < 8; i++) await a.send(`m${i}`)
    const channel = h.services.channel
    expect((await channel.fetchEntries(alice!.clientId, a.groupId, 0)).map((e) => e.seq)).toEqual([1, 2, 3])
    expect((await channel.fetchEntries(alice!.clientId, a.groupId, 0, { limit: 100 })).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5])
    expect((await channel.fetchEntries(alice!.clientId, a.groupId, 6, { limit: 100 })).map((e) => e.seq)).toEqual([7, 8])
    await expectCode(channel.fetchEntries(alice!.clientId, a.groupId, -1), 'INVALID_ARGUMENT')
    await expectCode(channel.fetchEntries(alice!.clientId, a.groupId, 0, { limit: 0 }), 'INVALID_ARGUMENT')
    const entries = await channel.fetchEntries(alice!.clientId, a.groupId, 0, 1)
    entries[0]!.message.fill(0)
    expect((await channel.fetchEntries(alice!.clientId, a.groupId, 0, 1))[0]?.message.some((x) => x !== 0)).toBe(true)
    const controller = new AbortController()
    controller.abort()
    await expectCode(channel.fetchEntries(alice!.clientId, a.groupId, 0, { signal: controller.signal }), 'ABORTED')
    await expectCode(channel.postMessage(alice!.clientId, a.groupId, await a.message('x'), { signal: controller.signal }), 'ABORTED')
    await expectCode(channel.fetchWelcomes(alice!.clientId, 0, { signal: controller.signal }), 'ABORTED')
  })

  it('pages Welcomes', async () => {
    const h = await harness()
    const [alice, bob] = await clients(h, 'alice', 'bob')
    for (const name of ['g1', 'g2', 'g3']) {
      const a = await Member.create(alice!, utf8.encode(name))
      const [kp] = await a.fetch('bob')
      await a.commit([add(kp!.decoded)])
    }
    const all = await h.services.channel.fetchWelcomes(bob!.clientId, 0)
    expect(all.map((w) => [w.seq, utf8.decode(w.groupId), w.commitSeq])).toEqual([
      [1, 'g1', 1],
      [2, 'g2', 1],
      [3, 'g3', 1]
    ])
    expect((await h.services.channel.fetchWelcomes(bob!.clientId, 1, { limit: 1 })).map((w) => w.seq)).toEqual([2])
    expect(bob!.events.map((e) => e.type)).toEqual(['welcome:appended', 'welcome:appended', 'welcome:appended'])
  })

  it('stops pushing after unsubscribe and survives a throwing listener', async () => {
    const h = await harness()
    const [alice, bob] = await clients(h, 'alice', 'bob')
    const { members } = await groupOf(alice!, [bob!])
    h.services.subscribe(alice!.clientId, () => {
      throw new Error('listener failure')
    })
    const extra: number[] = []
    const stop = h.services.subscribe(bob!.clientId, (e) => {
      if (e.type === 'entry:appended') extra.push(e.entry.seq)
    })
    expect(await members[0]!.send('one')).toEqual({ seq: 2 })
    stop()
    bob!.unsubscribe()
    expect(await members[0]!.send('two')).toEqual({ seq: 3 })
    expect(extra).toEqual([2])
    expect(bob!.entrySeqs()).toEqual([2])
    expect(alice!.entrySeqs()).toEqual([1, 2, 3])
  })
})

describe('channel: roster rules', () => {
  it('refuses commits that remove the committer or a blank leaf, or re-add a member', async () => {
    const h = await harness()
    const [alice, bob] = await clients(h, 'alice', 'bob')
    const { groupId, members } = await groupOf(alice!, [bob!])
    const [a, b] = members as [Member, Member]
    const prepared = await a.prepareCommit()
    const [bobAgain] = await a.fetch('bob')
    const byValue = (proposals: Proposal[]) => proposals.map((proposal) => ({ proposalOrRefType: 'proposal' as const, proposal }))
    const post = async (proposals: Proposal[]) =>
      h.services.channel.postCommit(alice!.clientId, groupId, { epoch: 1n, commit: await forgeCommit(a, prepared.commit, (c) => ({ ...c, proposals: byValue(proposals) })) })
    const invalidProposals = { code: 'INVALID_MESSAGE', details: { reason: 'invalid-proposals' } }
    await expect(post([remove(a.leafIndex)])).rejects.toMatchObject(invalidProposals)
    await expect(post([remove(5)])).rejects.toMatchObject(invalidProposals)
    await expect(post([remove(b.leafIndex), remove(b.leafIndex)])).rejects.toMatchObject(invalidProposals)
    await expect(post([add(bobAgain!.decoded)])).rejects.toMatchObject(invalidProposals)
    expect(await a.post(prepared)).toMatchObject({ kind: 'accepted', epoch: 2n })
  })
})
