import { describe, expect, it } from 'vitest'
import { nodeCrypto } from '@mls/crypto-node'
import { errorCode, welcomesFrom, type Invitation, type MlsClient, type WelcomePolicy } from '@mls/core'
import type { ClientStore } from '@mls/core/interfaces'
import { memoryClientStore } from '@mls/storage-memory'
import { createTestNetwork, keepOpen, waitFor } from '../src/index.js'

// Issue 12, "invitations are the app's choice": MlsClientInit.welcomePolicy decides which Welcomes to join.
// A declined Welcome is consumed without joining (no group, a one-time KeyPackage deleted); `ask` keeps a
// pending invitation until acceptInvitation/declineInvitation. Without a policy every Welcome is joined.

async function setup(policy: WelcomePolicy | undefined) {
  const net = await createTestNetwork({ crypto: nodeCrypto() })
  const store = keepOpen(memoryClientStore({ name: 'victim' }))
  const victim = await net.client('victim', { store, ...(policy === undefined ? {} : { welcomePolicy: policy }) })
  await victim.publishKeyPackages({ count: 4 })
  const friend = await net.client('friend')
  const stranger = await net.client('stranger')
  const declined: Invitation[] = []
  const pending: Invitation[] = []
  victim.on('welcome:declined', (e) => declined.push(e.invitation))
  victim.on('invitation:pending', (e) => pending.push(e.invitation))
  return { net, store, victim, friend, stranger, declined, pending }
}

/** KeyPackages whose private keys the victim keeps (one-time ones plus the last-resort one). */
async function storedKeyPackages(store: ClientStore): Promise<number> {
  return (await store.list('keypackage/')).length
}

async function closeAll(...clients: MlsClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c.close()))
}

describe('welcomePolicy', () => {
  it('a declined Welcome is consumed without joining: no group is created, its one-time KeyPackage is deleted, later Welcomes still flow', async () => {
    const { store, victim, friend, stranger, declined } = await setup(welcomesFrom((userId) => userId === 'friend', 'decline'))
    const before = await storedKeyPackages(store)
    const spam = await stranger.createGroup()
    await stranger.addUsers(spam, ['victim'])
    await waitFor(() => declined.length === 1, 'the stranger’s Welcome to be declined')
    expect(declined[0]!.inviter?.userId).toBe('stranger')
    expect(declined[0]!.groupIdHex).toBe(spam.groupIdHex)
    expect(declined[0]!.members.map((m) => m.userId).sort()).toEqual(['stranger', 'victim'])
    expect(victim.group(spam.groupId)).toBeUndefined()
    expect(victim.listGroups()).toEqual([])
    expect(await victim.invitations()).toEqual([])
    expect(await storedKeyPackages(store)).toBe(before - 1)
    // The friend's Welcome, after it in the mailbox, is joined: the mailbox moved past the declined one.
    const chat = await friend.createGroup()
    await friend.addUsers(chat, ['victim'])
    await waitFor(() => victim.group(chat.groupId)?.status === 'active', 'the victim to join the friend’s group')
    expect(victim.listGroups().map((g) => g.groupIdHex)).toEqual([chat.groupIdHex])
    // Processing the mailbox again joins nothing more: the declined Welcome is consumed.
    expect(await victim.processWelcomes()).toEqual([])
    expect(victim.group(spam.groupId)).toBeUndefined()
    await closeAll(victim, friend, stranger)
  })

  it('ask: an invitation waits (across a restart) until the app accepts it, then the group is joined and caught up', async () => {
    const { net, store, victim, stranger, pending } = await setup(() => 'ask')
    const group = await stranger.createGroup()
    await stranger.addUsers(group, ['victim'])
    await waitFor(() => pending.length === 1, 'the invitation to be pending')
    expect(victim.group(group.groupId)).toBeUndefined()
    await group.send('before the answer')
    await victim.close()
    // The pending invitation is kept in the store; the restarted client lists it and does not ask again.
    const pendingAgain: Invitation[] = []
    const restarted = await net.client('victim', { store, welcomePolicy: () => 'ask', start: false })
    restarted.on('invitation:pending', (e) => pendingAgain.push(e.invitation))
    await restarted.start()
    const [invitation] = await restarted.invitations()
    expect(invitation?.groupIdHex).toBe(group.groupIdHex)
    expect(invitation?.inviter?.clientId).toBe(stranger.clientId)
    expect(pendingAgain).toEqual([])
    const texts: string[] = []
    restarted.on('message:received', (e) => texts.push(new TextDecoder().decode(e.message.plaintext)))
    const joined = await restarted.acceptInvitation(invitation!.id)
    await waitFor(() => joined.status === 'active' && texts.includes('before the answer'), 'the accepted group to catch up')
    expect(await restarted.invitations()).toEqual([])
    await group.send('after the answer')
    await waitFor(() => texts.includes('after the answer'), 'a message after accepting')
    expect(await restarted.acceptInvitation(invitation!.id).catch(errorCode)).toBe('INVALID_ARGUMENT')
    await closeAll(restarted, stranger)
  })

  it('ask, then decline: the invitation goes, its one-time KeyPackage is deleted, and nothing is joined', async () => {
    const { store, victim, stranger, pending, declined } = await setup(() => 'ask')
    const before = await storedKeyPackages(store)
    const group = await stranger.createGroup()
    await stranger.addUsers(group, ['victim'])
    await waitFor(() => pending.length === 1, 'the invitation to be pending')
    // Kept while the app decides.
    expect(await storedKeyPackages(store)).toBe(before)
    await victim.declineInvitation(pending[0]!.id)
    expect(await storedKeyPackages(store)).toBe(before - 1)
    expect(declined.map((i) => i.groupIdHex)).toEqual([group.groupIdHex])
    expect(await victim.invitations()).toEqual([])
    expect(victim.group(group.groupId)).toBeUndefined()
    expect(await victim.declineInvitation(pending[0]!.id).catch(errorCode)).toBe('INVALID_ARGUMENT')
    await closeAll(victim, stranger)
  })

  it('a policy that throws keeps the invitation pending (nothing joined, nothing lost)', async () => {
    const { victim, stranger, pending } = await setup(() => {
      throw new Error('the app failed')
    })
    const group = await stranger.createGroup()
    await stranger.addUsers(group, ['victim'])
    await waitFor(() => pending.length === 1, 'the invitation to be pending')
    expect(victim.group(group.groupId)).toBeUndefined()
    expect((await victim.invitations()).map((i) => i.groupIdHex)).toEqual([group.groupIdHex])
    await closeAll(victim, stranger)
  })

  it('without a policy every Welcome is joined (the documented default)', async () => {
    const { victim, stranger, pending, declined } = await setup(undefined)
    const group = await stranger.createGroup()
    await stranger.addUsers(group, ['victim'])
    await waitFor(() => victim.group(group.groupId)?.status === 'active', 'the victim to join')
    expect(pending).toEqual([])
    expect(declined).toEqual([])
    await closeAll(victim, stranger)
  })
})
