import { afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { createClaimEntry, createExternalRejoin, credentialFor, signChallenge, type MlsClient } from '@mls/core'
import type { Connection } from '@mls/core/interfaces'
import {
  createCommit,
  createGroupInfoWithExternalPubAndRatchetTree,
  decodeMlsMessage,
  defaultClientConfig,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  joinGroup,
  type CiphersuiteImpl,
  type ClientState,
  type MLSMessage,
  type Proposal,
  type PublicMessage
} from '@mls/core/mls'
import { framedContentTbs, signFramedContentTBS } from '@mls/core/mls-internals'
import { nodeCrypto } from '@mls/crypto-node'
import { webSockets } from '@mls/transport-ws'
import { converged, groupWith, joined, waitFor } from '@mls/scenarios'
import { serverUrl, webSocketClient, type Cleanups } from './fixtures.js'

const crypto = nodeCrypto()
const SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' as const
const cleanups: Cleanups = []

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

const server = (): Promise<string> => serverUrl('mls-hostile-', cleanups)

const client = (userId: string, url: string): Promise<MlsClient> => webSocketClient(userId, url, cleanups)

/** An attacker outside MlsClient: its own registered key, a raw connection, and its MLS state once it joins. */
async function rawSession(url: string, clientId: string) {
  const cs: CiphersuiteImpl = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(SUITE))
  const keys = await cs.signature.keygen()
  const connection: Connection = await webSockets({ url, WebSocket }).connect({
    clientId,
    signaturePublicKey: keys.publicKey,
    ciphersuite: SUITE,
    register: true,
    signChallenge: (challenge, binding) => signChallenge(challenge, clientId, keys.signKey, cs, binding)
  })
  cleanups.push(() => connection.close())
  const userId = clientId.split('/')[0]!
  await connection.directory.publishDeviceListEntry(
    await createClaimEntry(userId, { device: { clientId, signaturePublicKey: keys.publicKey, ciphersuite: SUITE }, signaturePrivateKey: keys.signKey, cs })
  )
  return { clientId, cs, keys, connection }
}

function publicMessage(message: MLSMessage): PublicMessage {
  if (message.wireformat !== 'mls_public_message') throw new Error('not a public message')
  return message.publicMessage
}

type CommitContent = Extract<PublicMessage['content'], { contentType: 'commit' }>

/** The attacker's own commit, changed and signed again with its key: validly signed, otherwise whatever it wants. */
async function forge(state: ClientState, message: PublicMessage, change: (c: CommitContent) => CommitContent, cs: CiphersuiteImpl): Promise<Uint8Array> {
  const content = change(message.content as CommitContent)
  const signature = await signFramedContentTBS(state.signaturePrivateKey, framedContentTbs(content, 'mls_public_message', state.groupContext), cs.signature)
  return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_public_message', publicMessage: { ...message, content, auth: { ...message.auth, signature } } as PublicMessage })
}

const flip = (bytes: Uint8Array): Uint8Array => bytes.map((b, i) => (i === 0 ? b ^ 1 : b))

describe('hostile members against a real server process', () => {
  it('every invalid commit is refused by the channel with a typed reason, and the honest members never see one', async () => {
    const url = await server()
    const [alice, bob, carol] = [await client('alice', url), await client('bob', url), await client('carol', url)]
    for (const c of [alice, bob, carol]) await c.publishKeyPackages({ count: 3 })
    const [a, b, c] = await groupWith(alice, [bob, carol])

    // Mallory is an honest-looking member, added by alice from a KeyPackage the Directory served.
    const mallory = await rawSession(url, 'mallory/phone')
    const malloryPackage = await generateKeyPackageWithKey(credentialFor(mallory.clientId), defaultCapabilities(), defaultLifetime, [], mallory.keys, mallory.cs)
    await mallory.connection.directory.uploadKeyPackages({ keyPackages: [encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: malloryPackage.publicPackage })] })
    await alice.addUsers(a, ['mallory'])
    const [welcome] = await mallory.connection.channel.fetchWelcomes(0)
    const decodedWelcome = decodeMlsMessage(welcome!.welcome, 0)?.[0]
    if (decodedWelcome?.wireformat !== 'mls_welcome') throw new Error('expected a Welcome')
    const state = await joinGroup(decodedWelcome.welcome, malloryPackage.publicPackage, malloryPackage.privatePackage, emptyPskIndex, mallory.cs)
    await converged([a, b, c], 2n)
    expect(state.groupContext.epoch).toBe(2n)
    const groupId = a.groupId

    const genuine = await createCommit({ state, cipherSuite: mallory.cs }, { wireAsPublicMessage: true })
    const good = publicMessage(genuine.commit)
    const post = (commit: Uint8Array) => mallory.connection.channel.postCommit(groupId, { epoch: 2n, commit })
    const refused = (reason: string, code = 'INVALID_MESSAGE') => ({ code, details: expect.objectContaining({ reason }) })
    /** Replace the proposals; `withoutPath` also drops the update path (an Add-only or ReInit commit needs none). */
    const withProposals =
      (proposals: Proposal[], withoutPath = false) =>
      (content: CommitContent): CommitContent => ({
        ...content,
        commit: {
          proposals: proposals.map((proposal) => ({ proposalOrRefType: 'proposal' as const, proposal })),
          path: withoutPath ? undefined : content.commit.path
        }
      })
    const dave = await rawSession(url, 'dave/phone')
    const davePackage = await generateKeyPackageWithKey(credentialFor(dave.clientId), defaultCapabilities(), defaultLifetime, [], dave.keys, dave.cs)
    // A KeyPackage naming dave, signed with a key dave never registered.
    const forgedDavePackage = await generateKeyPackageWithKey(credentialFor(dave.clientId), defaultCapabilities(), defaultLifetime, [], await mallory.cs.signature.keygen(), mallory.cs)

    const reinit: Proposal = { proposalType: 'reinit', reinit: { groupId: new Uint8Array([1]), version: 'mls10', cipherSuite: SUITE, extensions: [] } }
    const attacks: [string, Uint8Array, ReturnType<typeof refused>][] = [
      ['an invalid signature', encodeMlsMessage({ version: 'mls10', wireformat: 'mls_public_message', publicMessage: { ...good, auth: { ...good.auth, signature: flip(good.auth.signature) } } as PublicMessage }), refused('bad-signature')],
      ["another member's leaf as sender", await forge(state, good, (content) => ({ ...content, sender: { senderType: 'member', leafIndex: 0 } }), mallory.cs), refused('unknown-sender')],
      ['a blank leaf as sender', await forge(state, good, (content) => ({ ...content, sender: { senderType: 'member', leafIndex: 9 } }), mallory.cs), refused('unknown-sender')],
      ['a Remove of a blank leaf', await forge(state, good, withProposals([{ proposalType: 'remove', remove: { removed: 9 } }]), mallory.cs), refused('invalid-proposals')],
      [
        'an Add of a KeyPackage the Directory never served, under a key its client is not registered with',
        encodeMlsMessage(
          (await createCommit({ state, cipherSuite: mallory.cs }, { wireAsPublicMessage: true, extraProposals: [{ proposalType: 'add', add: { keyPackage: forgedDavePackage.publicPackage } }] }))
            .commit
        ),
        refused('invalid-proposals')
      ],
      [
        'an Add of a KeyPackage that fails verification',
        await forge(state, good, withProposals([{ proposalType: 'add', add: { keyPackage: { ...davePackage.publicPackage, signature: flip(davePackage.publicPackage.signature) } } }], true), mallory.cs),
        refused('invalid-proposals')
      ],
      [
        'a ReInit',
        await forge(state, good, withProposals([reinit], true), mallory.cs),
        refused('unsupported-proposal')
      ],
      [
        "an UpdatePath whose leaf node signature is wrong",
        await forge(state, good, (content) => ({ ...content, commit: { ...content.commit, path: { ...content.commit.path!, leafNode: { ...content.commit.path!.leafNode, signature: flip(content.commit.path!.leafNode.signature) } } } }), mallory.cs),
        refused('invalid-update-path')
      ],
      [
        'an UpdatePath whose parent hash is wrong',
        await forge(
          state,
          good,
          (content) => ({ ...content, commit: { ...content.commit, path: { ...content.commit.path!, nodes: content.commit.path!.nodes.map((n, i) => (i === 0 ? { ...n, hpkePublicKey: davePackage.publicPackage.initKey } : n)) } } }),
          mallory.cs
        ),
        refused('invalid-update-path')
      ],
      ['40 random bytes', globalThis.crypto.getRandomValues(new Uint8Array(40)), refused('undecodable')]
    ]
    for (const [what, commit, expected] of attacks) {
      await expect(post(commit), what).rejects.toMatchObject(expected)
    }
    // A genuine commit with a GroupInfo that does not describe the epoch it leads to (so the channel would hand
    // external joiners a wrong one) is refused as a whole.
    const staleGroupInfo = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo: await createGroupInfoWithExternalPubAndRatchetTree(state, [], mallory.cs) })
    await expect(mallory.connection.channel.postCommit(groupId, { epoch: 2n, commit: encodeMlsMessage(genuine.commit), groupInfo: staleGroupInfo })).rejects.toMatchObject(
      refused('group-info-mismatch')
    )
    // External commits: mallory may only replace her own leaf, not add a second one.
    const groupInfo = (await mallory.connection.channel.fetchGroupInfo(groupId))!.groupInfo
    const secondLeaf = await createExternalRejoin(groupInfo, { credential: credentialFor(mallory.clientId), signatureKeys: mallory.keys, cs: mallory.cs, clientConfig: defaultClientConfig, resync: false })
    await expect(post(secondLeaf.commit)).rejects.toMatchObject(refused('invalid-external-commit'))
    // A stranger cannot post even a well-formed commit.
    const eve = await rawSession(url, 'eve/phone')
    await expect(eve.connection.channel.postCommit(groupId, { epoch: 2n, commit: encodeMlsMessage(genuine.commit) })).rejects.toMatchObject({ code: 'NOT_A_MEMBER' })
    // Nor fetch the GroupInfo, nor join by an external commit built from one.
    await expect(eve.connection.channel.fetchGroupInfo(groupId)).rejects.toMatchObject({ code: 'NOT_A_MEMBER' })
    const eveJoin = await createExternalRejoin(groupInfo, { credential: credentialFor(eve.clientId), signatureKeys: eve.keys, cs: eve.cs, clientConfig: defaultClientConfig, resync: false })
    await expect(eve.connection.channel.postCommit(groupId, { epoch: 2n, commit: eveJoin.commit })).rejects.toMatchObject({ code: 'NOT_A_MEMBER' })

    // Nothing reached the members: mallory (who reads from after the commit that added her, seq 2) sees an empty log,
    // and the next honest commit is the next entry.
    expect(await mallory.connection.channel.fetchEntries(groupId, 0)).toEqual([])
    const updated = await b.update()
    expect(updated.kind).toBe('committed')
    await converged([a, b, c], 3n)
    expect([a.cursor, b.cursor, c.cursor]).toEqual([3, 3, 3])
    const seen = await mallory.connection.channel.fetchEntries(groupId, 0)
    expect(seen.map((e) => [e.seq, e.sender])).toEqual([[3, 'bob/laptop']])
    // Mallory's own genuine commit is now stale: a conflict, not a fork.
    expect(await post(encodeMlsMessage(genuine.commit))).toEqual({ kind: 'conflict', epoch: 3n })
    await waitFor(() => [a, b, c].every((g) => g.status === 'active'), 'every honest member to stay active')
    expect(await joined(alice, groupId)).toBe(a)
  })
})
