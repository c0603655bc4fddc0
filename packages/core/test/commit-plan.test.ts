/** Planning a commit for an intent (src/commit-plan.ts), re-run on every attempt after a lost race. */
import { describe, expect, it } from 'vitest'
import type { KeyPackage } from 'ts-mls'
import { planCommit } from '../src/commit-plan.js'
import type { Member } from '../src/group-types.js'

const member = (leafIndex: number, clientId: string): Member => {
  const [userId = '', deviceId = ''] = clientId.split('/')
  return { leafIndex, clientId, userId, deviceId, signaturePublicKey: new Uint8Array([leafIndex]) }
}
const keyPackage = (clientId: string) => ({ clientId, keyPackage: { marker: clientId } as unknown as KeyPackage })

const members = [member(0, 'alice/laptop'), member(1, 'bob/phone'), member(2, 'bob/tablet'), member(4, 'carol/phone')]
const SELF = 'alice/laptop'

describe('planCommit', () => {
  it('adds only clients that are not members yet, once each', () => {
    const plan = planCommit({ kind: 'add', keyPackages: [keyPackage('bob/phone'), keyPackage('dave/phone'), keyPackage('dave/phone')] }, members, new Set(), SELF)
    expect(plan).toMatchObject({ kind: 'planned', added: ['dave/phone'], removed: [] })
    if (plan.kind === 'planned') expect(plan.proposals).toEqual([{ proposalType: 'add', add: { keyPackage: { marker: 'dave/phone' } } }])
  })

  it('reports an add of members only as not needed (a racing commit added them)', () => {
    expect(planCommit({ kind: 'add', keyPackages: [keyPackage('bob/phone')] }, members, new Set(), SELF)).toEqual({
      kind: 'not-needed',
      reason: 'Every client is already a member'
    })
  })

  it('removes every device of a named user, by leaf, and never the committer', () => {
    const plan = planCommit({ kind: 'remove', targets: ['bob', 'alice'] }, [...members, member(5, 'alice/phone')], new Set(), SELF)
    expect(plan).toMatchObject({ kind: 'planned', added: [], removed: ['bob/phone', 'bob/tablet', 'alice/phone'] })
    if (plan.kind === 'planned') expect(plan.proposals.map((p) => (p.proposalType === 'remove' ? p.remove.removed : -1))).toEqual([1, 2, 5])
  })

  it('removes a leaving member through its own pending proposal, not a second Remove', () => {
    const plan = planCommit({ kind: 'remove', targets: ['carol/phone', 'bob/tablet'] }, members, new Set([4]), SELF)
    expect(plan).toMatchObject({ kind: 'planned', removed: ['bob/tablet', 'carol/phone'] })
    if (plan.kind === 'planned') expect(plan.proposals).toEqual([{ proposalType: 'remove', remove: { removed: 2 } }])
  })

  it('reports a remove of clients no longer in the group as not needed', () => {
    expect(planCommit({ kind: 'remove', targets: ['erin/phone', SELF] }, members, new Set(), SELF)).toEqual({
      kind: 'not-needed',
      reason: 'No target is a member any more'
    })
  })

  it('plans an update as a commit with no proposals of its own', () => {
    expect(planCommit({ kind: 'update' }, members, new Set([4]), SELF)).toEqual({ kind: 'planned', proposals: [], added: [], removed: [] })
  })
})
