import { describe, expect, it } from 'vitest'
import { createClaimEntry, createExternalRejoin, credentialFor, equalBytes, signChallenge } from '@mls/core'
import {
  decodeMlsMessage,
  defaultCapabilities,
  defaultClientConfig,
  defaultLifetime,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  createProposal,
  joinGroup
} from '@mls/core/mls'
import { converged, createTestNetwork, groupWith, providerCases, waitFor } from '../src/index.js'

const [defaultCase] = providerCases()
const { crypto, ciphersuite } = defaultCase!

describe('a member resyncs by external commit', () => {
  it('the channel orders it and every client processes it: same epoch authenticator, the group stays active', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const [alice, carol] = await Promise.all(['alice', 'carol'].map((u) => net.client(u)))
    await carol!.publishKeyPackages({ count: 1 })
    const [a, c] = await groupWith(alice!, [carol!])
    // Dave is a device outside MlsClient (his state is his own to lose); alice adds him.
    const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(ciphersuite))
    const keys = await cs.signature.keygen()
    const dave = 'dave/phone'
    const connection = await net.transport.connect({
      clientId: dave,
      signaturePublicKey: keys.publicKey,
      ciphersuite,
      register: true,
      signChallenge: (challenge, binding) => signChallenge(challenge, dave, keys.signKey, cs, binding)
    })
    await connection.directory.publishDeviceListEntry(await createClaimEntry('dave', { device: { clientId: dave, signaturePublicKey: keys.publicKey, ciphersuite }, signaturePrivateKey: keys.signKey, cs }))
    const kp = await generateKeyPackageWithKey(credentialFor(dave), defaultCapabilities(), defaultLifetime, [], keys, cs)
    await connection.directory.uploadKeyPackages({ keyPackages: [encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: kp.publicPackage })] })
    await alice!.addUsers(a, ['dave'])
    await converged([a, c], 2n)
    const [welcome] = await connection.channel.fetchWelcomes(0)
    const decoded = decodeMlsMessage(welcome!.welcome, 0)?.[0]
    if (decoded?.wireformat !== 'mls_welcome') throw new Error('expected a Welcome')
    await joinGroup(decoded.welcome, kp.publicPackage, kp.privatePackage, emptyPskIndex, cs)

    // Dave loses his state and rejoins from the channel's GroupInfo.
    const fetched = await connection.channel.fetchGroupInfo(a.groupId)
    expect(fetched?.epoch).toBe(2n)
    const told = [a.once('member:resynced'), c.once('member:resynced')]
    const rejoin = await createExternalRejoin(fetched!.groupInfo, {
      credential: credentialFor(dave),
      signatureKeys: keys,
      cs,
      clientConfig: defaultClientConfig,
      resync: true,
      authenticatedData: new TextEncoder().encode('lost my state')
    })
    expect(await connection.channel.postCommit(a.groupId, { epoch: rejoin.epoch, commit: rejoin.commit, groupInfo: rejoin.groupInfo })).toMatchObject({ kind: 'accepted', epoch: 3n })
    await converged([a, c], 3n)
    for (const event of await Promise.all(told)) expect(event).toEqual({ epoch: 3n, member: dave, reason: 'lost my state' })
    expect(equalBytes(a.epochAuthenticator(), rejoin.state.keySchedule.epochAuthenticator)).toBe(true)
    expect(a.members().map((m) => m.clientId).sort()).toEqual(['alice/phone', 'carol/phone', 'dave/phone'])
    // The group goes on: an honest commit after the resync is applied by everyone.
    await c.update()
    await converged([a, c], 4n)
    await waitFor(() => a.status === 'active' && c.status === 'active', 'both to stay active')
    await connection.close()
  })

  it('a standalone proposal reaches every client as a channel entry; clients keep it and the next commit includes it', async () => {
    const net = await createTestNetwork({ crypto, ciphersuite })
    const [alice, carol] = await Promise.all(['alice', 'carol'].map((u) => net.client(u)))
    await carol!.publishKeyPackages({ count: 1 })
    const [a, c] = await groupWith(alice!, [carol!])
    const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(ciphersuite))
    const keys = await cs.signature.keygen()
    const dave = 'dave/phone'
    const connection = await net.transport.connect({
      clientId: dave,
      signaturePublicKey: keys.publicKey,
      ciphersuite,
      register: true,
      signChallenge: (challenge, binding) => signChallenge(challenge, dave, keys.signKey, cs, binding)
    })
    await connection.directory.publishDeviceListEntry(await createClaimEntry('dave', { device: { clientId: dave, signaturePublicKey: keys.publicKey, ciphersuite }, signaturePrivateKey: keys.signKey, cs }))
    const kp = await generateKeyPackageWithKey(credentialFor(dave), defaultCapabilities(), defaultLifetime, [], keys, cs)
    await connection.directory.uploadKeyPackages({ keyPackages: [encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: kp.publicPackage })] })
    await alice!.addUsers(a, ['dave'])
    await converged([a, c], 2n)
    const [welcome] = await connection.channel.fetchWelcomes(0)
    const decoded = decodeMlsMessage(welcome!.welcome, 0)?.[0]
    if (decoded?.wireformat !== 'mls_welcome') throw new Error('expected a Welcome')
    const state = await joinGroup(decoded.welcome, kp.publicPackage, kp.privatePackage, emptyPskIndex, cs)
    // Dave leaves: he proposes his own removal.
    const kept = [a.once('proposal:received'), c.once('proposal:received')]
    const leave = await createProposal(state, true, { proposalType: 'remove', remove: { removed: state.privatePath.leafIndex } }, cs)
    const { seq } = await connection.channel.postProposal(a.groupId, encodeMlsMessage(leave.message))
    for (const event of await Promise.all(kept)) expect(event).toEqual({ epoch: 2n, seq, sender: dave, kind: 'remove', removes: [dave], adds: [] })
    await waitFor(() => a.cursor === seq && c.cursor === seq, 'both clients to move past the proposal')
    expect([a.status, c.status]).toEqual(['active', 'active'])
    // Carol's update includes dave's proposal by reference: dave is gone.
    await c.update()
    await converged([a, c], 3n)
    expect(a.members().map((m) => m.clientId).sort()).toEqual(['alice/phone', 'carol/phone'])
    await connection.close()
  })
})
