import { beforeAll, describe, expect, it } from 'vitest'
import { wireCredentials } from '@mls/core'
import { getCiphersuiteFromName, type CiphersuiteImpl } from '@mls/core/mls'
import { nodeCrypto } from '@mls/crypto-node'
import { loadOpenMls, OpenMlsPeer, TsMlsMember } from '../src/index.js'

// Live interop with OpenMLS (the WebAssembly build of @wireapp/core-crypto, run in this process).
// The OpenMLS clients are not clients of the toolkit's server: the test carries every KeyPackage,
// Welcome, commit and message between the two implementations by hand, as the bytes each puts on
// the wire. Each side checks the other's credentials with `wireCredentials`.

const DOMAIN = 'interop.example'
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const text = (b: Uint8Array) => new TextDecoder().decode(b)
let cs: CiphersuiteImpl
let groupCounter = 0
const newGroupId = () => new TextEncoder().encode(`interop-group-${++groupCounter}`)

// OpenMLS as core-crypto builds it refuses any member whose basic credential is not a Wire id
// (`Supplied client id was not of the format <user-id:device-id@domain>`), so the toolkit's members
// of a shared group carry Wire ids too; `wireCredentials` accepts them.
let oursCounter = 0
async function ours(): Promise<TsMlsMember> {
  const n = ++oursCounter
  return new TsMlsMember(`1111111${n}-1111-4111-8111-11111111111${n}:${(0xb0 + n).toString(16)}@${DOMAIN}`, cs, wireCredentials)
}

async function openMls(n: number): Promise<OpenMlsPeer> {
  return OpenMlsPeer.create(`0000000${n}-0000-4000-8000-00000000000${n}`, BigInt(0xa0 + n), DOMAIN)
}

/** Every member is at `epoch` and exports the same secret (RFC 9420 section 8.5). */
async function agree(groupId: Uint8Array, tsMembers: TsMlsMember[], peers: OpenMlsPeer[], epoch: bigint): Promise<string> {
  const secrets: string[] = []
  for (const m of tsMembers) {
    expect(m.epoch).toBe(epoch)
    secrets.push(hex(await m.exporterSecret(32)))
  }
  for (const p of peers) {
    expect(await p.epoch(groupId)).toBe(epoch)
    secrets.push(hex(await p.exporterSecret(groupId, 32)))
  }
  expect(new Set(secrets).size).toBe(1)
  return secrets[0]!
}

beforeAll(async () => {
  expect(await loadOpenMls()).toBe('10.3.0')
  cs = await nodeCrypto().getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
})

describe('OpenMLS (core-crypto 10.3.0, WASM) and the toolkit in one group', () => {
  it('OpenMLS refuses a member whose credential is not a Wire id, and ids are Wire-style', async () => {
    const peer = await openMls(5)
    const groupId = newGroupId()
    await peer.createGroup(groupId)
    const toolkitStyle = new TsMlsMember('alice/phone', cs, wireCredentials)
    const bare = (await toolkitStyle.keyPackage()).bare
    await peer.add(groupId, [bare])
    await expect(peer.members(groupId)).rejects.toThrow(/not of the format/)
    const other = await openMls(1)
    expect(other.clientId).toMatch(/^00000001-0000-4000-8000-000000000001:a1@interop\.example$/)
    expect(wireCredentials.parseClientId(other.clientId)).toEqual({ userId: '00000001-0000-4000-8000-000000000001@interop.example', deviceId: 'a1' })
    expect(() => wireCredentials.parseClientId('not-an-id')).toThrow(/Not a client id/)
  })

  it('the toolkit creates the group and adds OpenMLS; messages, updates and a removal both ways', async () => {
    const alice = await ours()
    const peer = await openMls(2)
    const groupId = newGroupId()
    await alice.createGroup(groupId)

    // OpenMLS hands out a bare KeyPackage; the toolkit adds it.
    const kp = await peer.keyPackage()
    const added = await alice.add([kp])
    expect(hex(await peer.join(added.welcome))).toBe(hex(groupId))
    const e1 = await agree(groupId, [alice], [peer], 1n)
    expect(await peer.members(groupId)).toEqual([alice.clientId, peer.clientId].sort())

    // Application messages both ways.
    expect(await peer.receive(groupId, await alice.send('hello from ts-mls'))).toMatchObject({ kind: 'application', sender: alice.clientId })
    const fromPeer = await alice.receive(await peer.send(groupId, 'hello from OpenMLS'))
    expect(fromPeer.kind === 'application' && text(fromPeer.plaintext)).toBe('hello from OpenMLS')

    // An update from each side.
    expect(await peer.receive(groupId, await alice.update())).toEqual({ kind: 'commit' })
    const e2 = await agree(groupId, [alice], [peer], 2n)
    expect(await alice.receive((await peer.update(groupId)).commit)).toEqual({ kind: 'commit', epoch: 3n })
    const e3 = await agree(groupId, [alice], [peer], 3n)
    expect(new Set([e1, e2, e3]).size).toBe(3)

    // The toolkit removes OpenMLS: OpenMLS learns it is out, and cannot read what follows.
    const removal = await alice.remove([peer.clientId])
    await peer.receive(groupId, removal)
    expect(alice.members()).toEqual([alice.clientId])
    const after = await alice.send('after the removal')
    await expect(peer.receive(groupId, after)).rejects.toThrow()
  })

  it('OpenMLS creates the group and adds the toolkit; messages, updates and a removal both ways', async () => {
    const peer = await openMls(3)
    const bob = await ours()
    const groupId = newGroupId()
    await peer.createGroup(groupId)

    // The toolkit's KeyPackage, as the bare structure and as an MLSMessage: OpenMLS takes only the bare one.
    const { bare, framed } = await bob.keyPackage()
    await expect(peer.add(groupId, [framed])).rejects.toThrow(/DecodingError/)
    expect(await peer.epoch(groupId)).toBe(0n)
    const added = await peer.add(groupId, [bare])
    expect(added.welcome).toBeDefined()
    expect(hex(await bob.join(added.welcome!))).toBe(hex(groupId))
    await agree(groupId, [bob], [peer], 1n)
    expect(bob.members()).toEqual([bob.clientId, peer.clientId].sort())

    const fromPeer = await bob.receive(await peer.send(groupId, 'welcome, bob'))
    expect(fromPeer.kind === 'application' && text(fromPeer.plaintext)).toBe('welcome, bob')
    expect(await peer.receive(groupId, await bob.send('thanks'))).toMatchObject({ kind: 'application', sender: bob.clientId })

    expect(await bob.receive((await peer.update(groupId)).commit)).toEqual({ kind: 'commit', epoch: 2n })
    await agree(groupId, [bob], [peer], 2n)
    expect(await peer.receive(groupId, await bob.update())).toEqual({ kind: 'commit' })
    await agree(groupId, [bob], [peer], 3n)

    // OpenMLS removes the toolkit's member.
    const removal = await peer.remove(groupId, [bob.clientId])
    await bob.receive(removal.commit)
    expect(bob.removed).toBe(true)
    expect(await peer.members(groupId)).toEqual([peer.clientId])
  })

  it('a three-party group mixing both implementations converges after every step', async () => {
    const alice = await ours()
    const peer = await openMls(4)
    const dave = await ours()
    const groupId = newGroupId()
    await alice.createGroup(groupId)

    // The toolkit adds OpenMLS.
    const add1 = await alice.add([await peer.keyPackage()])
    await peer.join(add1.welcome)
    await agree(groupId, [alice], [peer], 1n)

    // OpenMLS adds a second toolkit member: the toolkit's existing member applies OpenMLS's commit.
    await dave.keyPackage()
    const { framed } = await dave.keyPackage()
    const add2 = await peer.add(groupId, [framed.subarray(4)])
    expect(await alice.receive(add2.commit)).toEqual({ kind: 'commit', epoch: 2n })
    await dave.join(add2.welcome!)
    await agree(groupId, [alice, dave], [peer], 2n)
    const all = [alice.clientId, dave.clientId, peer.clientId].sort()
    expect(alice.members()).toEqual(all)
    expect(dave.members()).toEqual(all)
    expect(await peer.members(groupId)).toEqual(all)

    // A message from each reaches the two others.
    const m1 = await peer.send(groupId, 'from OpenMLS')
    for (const m of [alice, dave]) expect(text(((await m.receive(m1)) as { plaintext: Uint8Array }).plaintext)).toBe('from OpenMLS')
    const m2 = await dave.send('from dave')
    expect(await peer.receive(groupId, m2)).toMatchObject({ kind: 'application', sender: dave.clientId })
    expect(text(((await alice.receive(m2)) as { plaintext: Uint8Array }).plaintext)).toBe('from dave')

    // An update by the toolkit, then one by OpenMLS, applied by everyone.
    const u1 = await dave.update()
    await alice.receive(u1)
    await peer.receive(groupId, u1)
    await agree(groupId, [alice, dave], [peer], 3n)
    const u2 = (await peer.update(groupId)).commit
    await alice.receive(u2)
    await dave.receive(u2)
    await agree(groupId, [alice, dave], [peer], 4n)

    // OpenMLS removes the first toolkit member; the remaining two agree.
    const r = (await peer.remove(groupId, [alice.clientId])).commit
    await alice.receive(r)
    expect(alice.removed).toBe(true)
    await dave.receive(r)
    await agree(groupId, [dave], [peer], 5n)
    expect(dave.members()).toEqual([dave.clientId, peer.clientId].sort())
  })
})
