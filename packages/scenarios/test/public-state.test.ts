import { describe, expect, it } from 'vitest'
import { toHex, type Group } from '@mls/core'
import { decodeMlsMessage, getCiphersuiteFromName } from '@mls/core/mls'
import { encodeGroupContext, treeHashRoot } from '@mls/core/mls-internals'
import { decodePublicGroupState } from '@mls/core/public-group'
import { converged, createTestNetwork, joined, providerCases, type TestNetwork } from '../src/index.js'

const [defaultCase] = providerCases()
const { crypto, ciphersuite } = defaultCase!

/** The channel's public state of the group equals every member's: GroupContext (tree hash, transcript hash, epoch) and the uploaded GroupInfo's. */
async function channelAgrees(net: TestNetwork, groups: readonly Group[]): Promise<void> {
  const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(ciphersuite))
  const record = await net.serverStore.getPublicState(toHex(groups[0]!.groupId))
  if (record === undefined) throw new Error('the channel holds no public state')
  const state = decodePublicGroupState(record.state)
  if (state === undefined) throw new Error('the public state does not decode')
  expect(await treeHashRoot(state.ratchetTree, cs.hash)).toEqual(state.groupContext.treeHash)
  for (const group of groups) {
    const own = group.mlsState!
    expect(encodeGroupContext(state.groupContext)).toEqual(encodeGroupContext(own.groupContext))
    expect(state.confirmationTag).toEqual(own.confirmationTag)
  }
  const groupInfo = decodeMlsMessage(record.groupInfo!, 0)?.[0]
  if (groupInfo?.wireformat !== 'mls_group_info') throw new Error('the channel keeps no GroupInfo for this epoch')
  expect(encodeGroupContext(groupInfo.groupInfo.groupContext)).toEqual(encodeGroupContext(state.groupContext))
}

describe('the channel follows each group as a public observer', () => {
  it('after every accepted commit its GroupContext and tree hash equal the members\', and it keeps the committer\'s GroupInfo', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const [alice, bob, carol, dave] = await Promise.all(['alice', 'bob', 'carol', 'dave'].map((u) => net.client(u)))
    for (const c of [bob!, carol!, dave!]) await c.publishKeyPackages({ count: 2 })
    const a = await alice!.createGroup()
    await channelAgrees(net, [a])
    await alice!.addUsers(a, ['bob', 'carol'])
    const [b, c] = [await joined(bob!, a.groupId), await joined(carol!, a.groupId)]
    await converged([a, b, c], 1n)
    await channelAgrees(net, [a, b, c])
    await b.update()
    await converged([a, b, c], 2n)
    await channelAgrees(net, [a, b, c])
    await carol!.addUsers(c, ['dave'])
    const d = await joined(dave!, a.groupId)
    await converged([a, b, c, d], 3n)
    await channelAgrees(net, [a, b, c, d])
    await d.removeMembers(['bob'])
    await converged([a, c, d], 4n)
    await channelAgrees(net, [a, c, d])
  })
})
