/**
 * A group of 10,000 members end to end on core's engine (issue 11), slow (minutes), so outside `pnpm test`:
 * `pnpm --filter @mls/core test:large`. The creator adds 9,999 members in one commit, the last one joins
 * from the Welcome (with the ratchet tree in it), and six commits are created and processed, more than the
 * four epochs retained; the member's state is encoded and decoded at the end. On ts-mls 1.6.4 the Welcome
 * could not be encoded (stack overflow) and the fifth commit threw (`removeOldHistoricalReceiverData`).
 */
import { describe, expect, it } from 'vitest'
import type { ClientState } from 'ts-mls'
import { decodeGroupState, defaultCapabilities, defaultLifetime, emptyPskIndex, generateKeyPackage, getCiphersuiteFromName, getCiphersuiteImpl } from 'ts-mls'
import { createCommit, createGroup, encodeGroupState, encodeMlsMessage, joinGroup, processPrivateMessage } from '../src/ts-mls-fixes.js'

const members = Number(process.env.MLS_LARGE_MEMBERS ?? 10_000)

describe(`a group of ${members} members`, () => {
  it('is created, joined from its Welcome, and goes through six commits; its state is stored and read back', async () => {
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
    const keyPackages = []
    for (let i = 0; i < members; i++) {
      keyPackages.push(await generateKeyPackage({ credentialType: 'basic', identity: new TextEncoder().encode(`member-${i}`) }, defaultCapabilities(), defaultLifetime, [], cs))
    }
    const creatorKeys = keyPackages[0]!
    let creator: ClientState = await createGroup(new TextEncoder().encode('ten-thousand'), creatorKeys.publicPackage, creatorKeys.privatePackage, [], cs)
    const added = await createCommit(
      { state: creator, cipherSuite: cs },
      { extraProposals: keyPackages.slice(1).map((k) => ({ proposalType: 'add' as const, add: { keyPackage: k.publicPackage } })), ratchetTreeExtension: true }
    )
    creator = added.newState
    expect(added.welcome).toBeDefined()
    const welcomeBytes = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: added.welcome! })
    expect(welcomeBytes.length).toBeGreaterThan(members * 100)
    const last = keyPackages[members - 1]!
    let member = await joinGroup(added.welcome!, last.publicPackage, last.privatePackage, emptyPskIndex, cs)
    expect(member.groupContext.epoch).toBe(1n)
    for (let epoch = 2n; epoch <= 7n; epoch++) {
      const commit = await createCommit({ state: creator, cipherSuite: cs })
      creator = commit.newState
      if (commit.commit.wireformat !== 'mls_private_message') throw new Error('expected a PrivateMessage')
      const processed = await processPrivateMessage(member, commit.commit.privateMessage, emptyPskIndex, cs)
      member = processed.newState
      expect(member.groupContext.epoch).toBe(epoch)
      expect(member.groupContext.treeHash).toEqual(creator.groupContext.treeHash)
    }
    expect(member.historicalReceiverData.size).toBe(4)
    const stored = encodeGroupState(member)
    const readBack = decodeGroupState(stored, 0)
    expect(readBack?.[0].groupContext.epoch).toBe(7n)
    expect(readBack?.[0].ratchetTree.filter((node, i) => i % 2 === 0 && node !== undefined)).toHaveLength(members)
  }, 3_600_000)
})
