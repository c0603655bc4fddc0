import { describe, expect, it } from 'vitest'
import { createClaimEntry, credentialFor, signChallenge, toHex, type Group, type MlsClient } from '@mls/core'
import {
  createCommit,
  decodeMlsMessage,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  joinGroup,
  type PublicMessage
} from '@mls/core/mls'
import { framedContentTbs, signFramedContentTBS } from '@mls/core/mls-internals'
import { converged, createTestNetwork, joined, providerCases, type TestNetwork } from '../src/index.js'

const [defaultCase] = providerCases()
const { crypto, ciphersuite } = defaultCase!
const NAMES = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy']

/** Ten members in one group at epoch 1, each with a client that retries a lost commit up to ten times. */
async function tenMembers(net: TestNetwork): Promise<{ clients: MlsClient[]; groups: Group[] }> {
  const clients = await Promise.all(NAMES.map((u) => net.client(u, { maxCommitAttempts: 12 })))
  for (const c of clients.slice(1)) await c.publishKeyPackages({ count: 1 })
  const a = await clients[0]!.createGroup()
  await clients[0]!.addUsers(a, NAMES.slice(1))
  const groups = [a, ...(await Promise.all(clients.slice(1).map((c) => joined(c, a.groupId))))]
  await converged(groups, 1n)
  return { clients, groups }
}

/** Each member commits an update at once; every one is committed, one per epoch, and all agree. */
async function raceAndConverge(net: TestNetwork, groups: Group[], from: bigint): Promise<void> {
  const results = await Promise.all(groups.map((g) => g.update()))
  expect(results.every((r) => r.kind === 'committed')).toBe(true)
  const epochs = results.map((r) => (r.kind === 'committed' ? r.epoch : -1n)).sort((x, y) => (x < y ? -1 : 1))
  expect(epochs).toEqual(groups.map((_, i) => from + 1n + BigInt(i)))
  await converged(groups, from + BigInt(groups.length))
  const log = await net.services.channel.fetchEntries('alice/phone', groups[0]!.groupId, 0)
  const commits = log.filter((e) => e.kind === 'commit')
  // One history: exactly one commit per epoch, in order, each from an honest member.
  expect(commits.map((e) => e.epoch)).toEqual(Array.from({ length: commits.length }, (_, i) => BigInt(i)))
  expect(new Set(commits.map((e) => e.sender)).size).toBeLessThanOrEqual(NAMES.length)
}

describe('ten members committing concurrently', () => {
  it('converge on one history with equal epoch authenticators', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const { groups } = await tenMembers(net)
    await raceAndConverge(net, groups, 1n)
  })

  it('converge the same with a hostile member posting forged commits throughout, every one refused', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const { clients, groups } = await tenMembers(net)
    // Mallory joins honestly, then forges.
    const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(ciphersuite))
    const keys = await cs.signature.keygen()
    const mallory = 'mallory/phone'
    const connection = await net.transport.connect({
      clientId: mallory,
      signaturePublicKey: keys.publicKey,
      ciphersuite,
      register: true,
      signChallenge: (challenge, binding) => signChallenge(challenge, mallory, keys.signKey, cs, binding)
    })
    await connection.directory.publishDeviceListEntry(
      await createClaimEntry('mallory', { device: { clientId: mallory, signaturePublicKey: keys.publicKey, ciphersuite }, signaturePrivateKey: keys.signKey, cs })
    )
    const kp = await generateKeyPackageWithKey(credentialFor(mallory), defaultCapabilities(), defaultLifetime, [], keys, cs)
    await connection.directory.uploadKeyPackages({ keyPackages: [encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: kp.publicPackage })] })
    await clients[0]!.addUsers(groups[0]!, ['mallory'])
    await converged(groups, 2n)
    const [welcome] = await connection.channel.fetchWelcomes(0)
    const decoded = decodeMlsMessage(welcome!.welcome, 0)?.[0]
    if (decoded?.wireformat !== 'mls_welcome') throw new Error('expected a Welcome')
    const state = await joinGroup(decoded.welcome, kp.publicPackage, kp.privatePackage, emptyPskIndex, cs)
    const genuine = await createCommit({ state, cipherSuite: cs }, { wireAsPublicMessage: true })
    if (genuine.commit.wireformat !== 'mls_public_message') throw new Error('expected a PublicMessage')
    const template = genuine.commit.publicMessage

    // While the ten race, Mallory posts a forged commit for whatever epoch the group is at: a Remove of a blank
    // leaf, signed with her key, and one with a corrupted signature.
    let racing = true
    const refusals: string[] = []
    const accepted: bigint[] = []
    const attacker = (async () => {
      while (racing) {
        const epoch = (await net.serverStore.getGroup(toHex(groups[0]!.groupId)))!.epoch
        const content = { ...template.content, epoch, commit: { proposals: [{ proposalOrRefType: 'proposal' as const, proposal: { proposalType: 'remove' as const, remove: { removed: 40 } } }], path: template.content.contentType === 'commit' ? template.content.commit.path : undefined } }
        const context = { ...state.groupContext, epoch }
        const signature = await signFramedContentTBS(state.signaturePrivateKey, framedContentTbs(content as PublicMessage['content'], 'mls_public_message', context), cs.signature)
        const forged = [
          { ...template, content, auth: { ...template.auth, signature } },
          { ...template, content, auth: { ...template.auth, signature: signature.map((b, i) => (i === 0 ? b ^ 1 : b)) } }
        ]
        for (const publicMessage of forged) {
          const commit = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_public_message', publicMessage: publicMessage as PublicMessage })
          try {
            const result = await connection.channel.postCommit(groups[0]!.groupId, { epoch, commit })
            if (result.kind === 'accepted') accepted.push(epoch)
          } catch (error) {
            refusals.push((error as { code?: string }).code ?? 'unknown')
          }
        }
      }
    })()
    try {
      await raceAndConverge(net, groups, 2n)
    } finally {
      racing = false
      await attacker
    }
    expect(accepted).toEqual([])
    expect(refusals.length).toBeGreaterThan(0)
    expect(new Set(refusals)).toEqual(new Set(['INVALID_MESSAGE']))
    const log = await connection.channel.fetchEntries(groups[0]!.groupId, 0)
    expect(log.filter((e) => e.sender === mallory)).toEqual([])
    expect(groups.every((g) => g.status === 'active')).toBe(true)
    await connection.close()
  })
})
