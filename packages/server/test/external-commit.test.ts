import { describe, expect, it } from 'vitest'
import { createExternalRejoin, credentialFor, utf8 } from '@mls/core'
import { decodeMlsMessage, defaultClientConfig, emptyPskIndex, processPublicMessage } from '@mls/core/mls'
import { createServices } from '../src/index.js'
import { Member, TestClient, expectCode, groupOf, harness } from './helpers.js'

async function clients(h: Awaited<ReturnType<typeof harness>>, ...names: string[]): Promise<TestClient[]> {
  const out = []
  for (const name of names) {
    const client = await TestClient.register(h, `${name}/phone`)
    await client.upload(2)
    out.push(client)
  }
  return out
}

function rejoinInit(client: TestClient, resync: boolean) {
  return { credential: credentialFor(client.clientId), signatureKeys: client.keys, cs: client.h.cs, clientConfig: defaultClientConfig, resync }
}

async function apply(member: Member, commit: Uint8Array): Promise<void> {
  const decoded = decodeMlsMessage(commit, 0)?.[0]
  if (decoded?.wireformat !== 'mls_public_message') throw new Error('not a PublicMessage')
  member.state = (await processPublicMessage(member.state, decoded.publicMessage, emptyPskIndex, member.client.h.cs)).newState
}

describe('channel: external commits', () => {
  it('a device in the roster resyncs: it fetches the GroupInfo, replaces its own leaf, and everyone agrees', async () => {
    const h = await harness()
    const [alice, bob, carol] = await clients(h, 'alice', 'bob', 'carol')
    const { groupId, members } = await groupOf(alice!, [bob!, carol!])
    const [a, , c] = members as [Member, Member, Member]
    const fetched = await h.services.channel.fetchGroupInfo(bob!.clientId, groupId)
    expect(fetched?.epoch).toBe(1n)
    const rejoin = await createExternalRejoin(fetched!.groupInfo, rejoinInit(bob!, true))
    const result = await h.services.channel.postCommit(bob!.clientId, groupId, { epoch: rejoin.epoch, commit: rejoin.commit, groupInfo: rejoin.groupInfo })
    expect(result).toEqual({ kind: 'accepted', seq: 2, epoch: 2n })
    // Everyone, bob included, is pushed the commit; alice and carol process it and agree with bob's new state.
    expect(bob!.entrySeqs()).toEqual([2])
    await apply(a, rejoin.commit)
    await apply(c, rejoin.commit)
    expect(a.state.keySchedule.epochAuthenticator).toEqual(rejoin.state.keySchedule.epochAuthenticator)
    expect(c.state.keySchedule.epochAuthenticator).toEqual(rejoin.state.keySchedule.epochAuthenticator)
    expect((await h.store.getGroup(Buffer.from(groupId).toString('hex')))!.roster).toEqual([
      { leafIndex: 0, clientId: 'alice/phone' },
      { leafIndex: 1, clientId: 'bob/phone' },
      { leafIndex: 2, clientId: 'carol/phone' }
    ])
    // The uploaded GroupInfo is the next one handed out, and the group goes on.
    expect((await h.services.channel.fetchGroupInfo(carol!.clientId, groupId))?.groupInfo).toEqual(rejoin.groupInfo)
    const b = new Member(bob!, rejoin.state)
    expect(await b.commit()).toMatchObject({ kind: 'accepted', epoch: 3n })
  })

  it('refuses strangers, a resync that keeps the old leaf, and a Welcome; a policy can let strangers join', async () => {
    const h = await harness()
    const [alice, bob, eve] = await clients(h, 'alice', 'bob', 'eve')
    const { groupId } = await groupOf(alice!, [bob!])
    await expect(h.services.channel.fetchGroupInfo(eve!.clientId, groupId)).rejects.toMatchObject({ code: 'NOT_A_MEMBER', details: { reason: 'external-join-refused' } })
    await expectCode(h.services.channel.fetchGroupInfo(eve!.clientId, utf8.encode('nope')), 'UNKNOWN_GROUP')
    const groupInfo = (await h.services.channel.fetchGroupInfo(alice!.clientId, groupId))!.groupInfo
    // Eve got hold of the GroupInfo anyway: her join is still refused.
    const join = await createExternalRejoin(groupInfo, rejoinInit(eve!, false))
    await expect(h.services.channel.postCommit(eve!.clientId, groupId, { epoch: 1n, commit: join.commit })).rejects.toMatchObject({
      code: 'NOT_A_MEMBER',
      details: { reason: 'external-join-refused' }
    })
    // Bob, a member, may only replace his own leaf: joining a second time is refused.
    const second = await createExternalRejoin(groupInfo, rejoinInit(bob!, false))
    await expect(h.services.channel.postCommit(bob!.clientId, groupId, { epoch: 1n, commit: second.commit })).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      details: { reason: 'invalid-external-commit' }
    })
    const resync = await createExternalRejoin(groupInfo, rejoinInit(bob!, true))
    await expectCode(h.services.channel.postCommit(bob!.clientId, groupId, { epoch: 1n, commit: resync.commit, welcome: new Uint8Array([1]) }), 'WELCOME_INVALID')
    // Alice cannot post bob's resync: the leaf it brings names bob.
    await expect(h.services.channel.postCommit(alice!.clientId, groupId, { epoch: 1n, commit: resync.commit })).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      details: { reason: 'invalid-external-commit' }
    })
    // A GroupInfo that does not describe the new epoch is refused with it.
    await expect(h.services.channel.postCommit(bob!.clientId, groupId, { epoch: 1n, commit: resync.commit, groupInfo })).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      details: { reason: 'group-info-mismatch' }
    })
    expect((await h.store.getGroup(Buffer.from(groupId).toString('hex')))!.epoch).toBe(1n)

    // With a policy that lets eve in, the same kind of join is accepted and she reads from it on.
    const open = createServices({ store: h.store, crypto: h.crypto, now: () => h.clock.now, externalJoinPolicy: ({ caller }) => caller === 'eve/phone' })
    const fresh = (await open.channel.fetchGroupInfo(eve!.clientId, groupId))!.groupInfo
    const joined = await createExternalRejoin(fresh, rejoinInit(eve!, false))
    expect(await open.channel.postCommit(eve!.clientId, groupId, { epoch: 1n, commit: joined.commit })).toEqual({ kind: 'accepted', seq: 2, epoch: 2n })
    expect((await open.channel.fetchEntries(eve!.clientId, groupId, 0)).map((e) => e.seq)).toEqual([])
    expect((await h.store.getGroup(Buffer.from(groupId).toString('hex')))!.roster.map((e) => e.clientId)).toEqual(['alice/phone', 'bob/phone', 'eve/phone'])
  })
})
