import { expect, it } from 'vitest'
import { converged, createTestNetwork, joined, providerCases, waitFor } from '../src/index.js'

const { crypto, ciphersuite } = providerCases().at(-1)!

it('users with several devices: adding a user adds every device; a member can remove its own other devices but not itself', async () => {
  const net = await createTestNetwork({ crypto, ciphersuite })
  const alicePhone = await net.client('alice', { deviceId: 'phone' })
  const aliceLaptop = await net.client('alice', { deviceId: 'laptop' })
  const bobPhone = await net.client('bob', { deviceId: 'phone' })
  const bobTablet = await net.client('bob', { deviceId: 'tablet' })
  // The first device of each user claimed it; each further device is linked by a listed one.
  await alicePhone.linkDevice(await aliceLaptop.linkRequest())
  await bobPhone.linkDevice(await bobTablet.linkRequest())
  for (const c of [aliceLaptop, bobPhone, bobTablet]) await c.publishKeyPackages({ count: 1 })

  const g = await alicePhone.createGroup()
  const outcome = await alicePhone.addUsers(g, ['bob', 'alice'])
  expect(outcome).toMatchObject({ kind: 'committed', epoch: 1n })
  if (outcome.kind === 'committed') expect([...outcome.added].sort()).toEqual(['alice/laptop', 'bob/phone', 'bob/tablet'])
  const groups = [g, await joined(aliceLaptop, g.groupId), await joined(bobPhone, g.groupId), await joined(bobTablet, g.groupId)]
  await converged(groups, 1n)
  expect(g.members().map((m) => m.clientId)).toEqual(['alice/phone', 'bob/phone', 'bob/tablet', 'alice/laptop'])

  await expect(g.removeMembers(['alice/phone'])).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  expect(await g.removeMembers(['alice'])).toMatchObject({ kind: 'committed', removed: ['alice/laptop'] })
  await converged([g, groups[2]!, groups[3]!], 2n)
  await waitFor(() => groups[1]!.status === 'removed', 'the laptop to be removed')
  expect(await groups[2]!.removeMembers(['bob'])).toMatchObject({ kind: 'committed', removed: ['bob/tablet'] })
  await converged([g, groups[2]!], 3n)
  expect(g.members().map((m) => m.clientId)).toEqual(['alice/phone', 'bob/phone'])
})
