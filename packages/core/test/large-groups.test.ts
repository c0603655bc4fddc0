/**
 * 10,000-member groups (issue 11): the structures whose size grows with the group are encoded and
 * retained without recursion or argument lists that grow with it. Built synthetically from one real
 * leaf so the test is fast; the end-to-end run at 10,000 members is `pnpm --filter @mls/core test:large`.
 */
import { describe, expect, it } from 'vitest'
import type { ClientState, RatchetTree } from 'ts-mls'
import { createGroup, defaultCapabilities, defaultLifetime, encodeGroupState as upstreamEncodeGroupState, generateKeyPackage, getCiphersuiteFromName, getCiphersuiteImpl } from 'ts-mls'
import { decodeRatchetTree, encodeRatchetTree as upstreamEncodeRatchetTree } from 'ts-mls/ratchetTree.js'
import { addHistoricalReceiverData as upstreamAddHistoricalReceiverData } from 'ts-mls/clientState.js'
import { addHistoricalReceiverData, decodeGroupState, encodeGroupState, encodeRatchetTree } from '../src/ts-mls-fixes.js'

const members = 10_000

async function smallGroup(): Promise<ClientState> {
  const cs = await getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
  const credential = { credentialType: 'basic' as const, identity: new TextEncoder().encode('alice') }
  const keys = await generateKeyPackage(credential, defaultCapabilities(), defaultLifetime, [], cs)
  return createGroup(new TextEncoder().encode('large'), keys.publicPackage, keys.privatePackage, [], cs)
}

/** The width of a tree of 10,000 members: the next power of two. */
const width = 16_384

/** A full tree of `width` leaves whose first `leaves` hold the same leaf node, parents blank (the shape right after one big Add). */
function treeOf(state: ClientState, leaves: number): RatchetTree {
  const leaf = state.ratchetTree[0]
  if (leaf?.nodeType !== 'leaf') throw new Error('expected a leaf at node 0')
  const tree: RatchetTree = new Array(2 * width - 1).fill(undefined)
  for (let i = 0; i < leaves; i++) tree[2 * i] = leaf
  return tree
}

describe('a ratchet tree of 10,000 members', () => {
  it('ts-mls 1.6.4 overflows the stack encoding it (the vector encoder nests one closure per node)', async () => {
    const tree = treeOf(await smallGroup(), members)
    expect(() => upstreamEncodeRatchetTree(tree)).toThrow(RangeError)
  })

  it('is encoded by the patched encoder, and decodes to the same tree', async () => {
    const tree = treeOf(await smallGroup(), members)
    const bytes = encodeRatchetTree(tree)
    const decoded = decodeRatchetTree(bytes, 0)
    expect(decoded?.[1]).toBe(bytes.length)
    expect(decoded?.[0].length).toBe(tree.length)
    expect(decoded?.[0].filter((node) => node !== undefined).length).toBe(members)
  })

  it('a group state holding it is encoded and decodes to the same state', async () => {
    const state = await smallGroup()
    const big = { ...state, ratchetTree: treeOf(state, members) }
    expect(() => upstreamEncodeGroupState(big)).toThrow(RangeError)
    const bytes = encodeGroupState(big)
    const decoded = decodeGroupState(bytes, 0)
    expect(decoded?.[0].ratchetTree.length).toBe(2 * width - 1)
    expect(decoded?.[0].ratchetTree.filter((node) => node !== undefined).length).toBe(members)
    expect(decoded?.[0].groupContext.epoch).toBe(state.groupContext.epoch)
  })
})

describe('retaining the receiver data of past epochs at 10,000 members', () => {
  /** A state at `epoch` whose secret tree has one node per tree node of a 10,000-leaf group, with 4 older epochs retained. */
  function stateAt(state: ClientState, epoch: bigint): ClientState {
    const node = state.secretTree[0]!
    const secretTree = new Array<typeof node>(2 * width - 1).fill(node)
    const historicalReceiverData = new Map<bigint, ClientState['historicalReceiverData'] extends Map<bigint, infer V> ? V : never>()
    for (let past = epoch - 4n; past < epoch; past++) {
      historicalReceiverData.set(past, {
        secretTree,
        ratchetTree: state.ratchetTree,
        senderDataSecret: state.keySchedule.senderDataSecret,
        groupContext: { ...state.groupContext, epoch: past },
        resumptionPsk: state.keySchedule.resumptionPsk
      })
    }
    return { ...state, secretTree, historicalReceiverData, groupContext: { ...state.groupContext, epoch } }
  }

  it('ts-mls 1.6.4 throws when an epoch falls out of the retention window (a spread of every secret as arguments)', async () => {
    const state = stateAt(await smallGroup(), 10n)
    expect(state.clientConfig.keyRetentionConfig.retainKeysForEpochs).toBe(4)
    expect(() => upstreamAddHistoricalReceiverData(state)).toThrow(RangeError)
  })

  it('the patched one keeps the newest four epochs', async () => {
    const state = stateAt(await smallGroup(), 10n)
    const [retained, deleted] = addHistoricalReceiverData(state)
    expect([...retained.keys()]).toEqual([7n, 8n, 9n, 10n])
    expect(deleted).toEqual([])
  })
})
