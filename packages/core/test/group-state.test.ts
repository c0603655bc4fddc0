/**
 * The group state machine's transitions (src/group-state.ts): each legal one
 * gives the next variant with its data, and each illegal one is refused with
 * `INVALID_STATE` naming the state and the transition.
 */
import { describe, expect, it } from 'vitest'
import { defaultCapabilities, defaultLifetime, generateKeyPackage, getCiphersuiteFromName, getCiphersuiteImpl, type ClientState } from 'ts-mls'
import { createGroup } from '../src/ts-mls-fixes.js'
import { MlsToolkitError } from '../src/errors.js'
import {
  advanced,
  caughtUp,
  commitApplied,
  commitDiscarded,
  commitMerged,
  commitStarted,
  epochOf,
  failedOn,
  fromRecords,
  mlsOf,
  removedAt,
  resynced,
  type GroupState,
  type PendingCommit,
  type TransitionName
} from '../src/group-state.js'

async function epochZeroState(): Promise<ClientState> {
  const cs = await getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
  const credential = { credentialType: 'basic' as const, identity: new TextEncoder().encode('alice/phone') }
  const kp = await generateKeyPackage(credential, defaultCapabilities(), defaultLifetime, [], cs)
  return createGroup(new TextEncoder().encode('state-machine'), kp.publicPackage, kp.privatePackage, [], cs)
}

/** The same state one epoch later (only the epoch matters to the transitions). */
const nextEpoch = (state: ClientState): ClientState => ({ ...state, groupContext: { ...state.groupContext, epoch: state.groupContext.epoch + 1n } })

const pendingFor = (state: ClientState): PendingCommit => ({
  epoch: state.groupContext.epoch,
  intent: { kind: 'update' },
  commit: new Uint8Array([1]),
  welcome: undefined,
  newState: nextEpoch(state),
  consumed: [],
  added: [],
  removed: []
})

function allStates(mls: ClientState): Record<GroupState['kind'], GroupState> {
  return {
    joining: { kind: 'joining', mls },
    active: { kind: 'active', mls },
    committing: { kind: 'committing', mls, pending: pendingFor(mls) },
    failed: { kind: 'failed', mls, reason: 'cannot process the commit at seq 7' },
    removed: { kind: 'removed', epoch: 4n }
  }
}

type Kind = GroupState['kind']

/** Each transition, and the kinds it is legal from with the kind it leads to. */
function transitions(mls: ClientState): Record<TransitionName, { run: (from: GroupState) => GroupState; legal: Partial<Record<Kind, Kind>> }> {
  return {
    advanced: { run: (from) => advanced(from, mls), legal: { joining: 'joining', active: 'active', committing: 'committing' } },
    caughtUp: { run: (from) => caughtUp(from), legal: { joining: 'active' } },
    commitStarted: { run: (from) => commitStarted(from, pendingFor(mls)), legal: { active: 'committing' } },
    commitMerged: { run: (from) => commitMerged(from, nextEpoch(mls)), legal: { committing: 'active' } },
    commitDiscarded: { run: (from) => commitDiscarded(from), legal: { committing: 'active' } },
    commitApplied: { run: (from) => commitApplied(from, nextEpoch(mls)), legal: { joining: 'joining', active: 'active', committing: 'active' } },
    failedOn: { run: (from) => failedOn(from, 'a path secret it cannot decrypt'), legal: { joining: 'failed', active: 'failed', committing: 'failed' } },
    resynced: { run: (from) => resynced(from, nextEpoch(mls)), legal: { failed: 'active' } },
    removedAt: { run: (from) => removedAt(from, 9n), legal: { joining: 'removed', active: 'removed', committing: 'removed' } }
  }
}

describe('group state machine transitions', async () => {
  const mls = await epochZeroState()
  const states = allStates(mls)
  const kinds = Object.keys(states) as Kind[]

  for (const [name, transition] of Object.entries(transitions(mls)) as [TransitionName, ReturnType<typeof transitions>[TransitionName]][]) {
    for (const from of kinds) {
      const to = transition.legal[from]
      if (to !== undefined) {
        it(`${name}: ${from} → ${to}`, () => {
          const before = states[from]
          const next = transition.run(before)
          expect(next.kind).toBe(to)
          // The variant carries exactly its own data.
          if (next.kind === 'committing') expect(next.pending.epoch).toBe(epochOf(next))
          if (next.kind === 'failed') expect(next.reason).toBe('a path secret it cannot decrypt')
          if (next.kind === 'removed') {
            expect(next.epoch).toBe(9n)
            expect(mlsOf(next)).toBeUndefined()
            expect(Object.keys(next).sort()).toEqual(['epoch', 'kind'])
          }
          if (next.kind === 'active') expect('pending' in next).toBe(false)
          // Transitions are pure: the state they came from is unchanged.
          expect(before).toEqual(allStates(mls)[from])
        })
      } else {
        it(`${name} from ${from} is refused with INVALID_STATE`, () => {
          let error: unknown
          try {
            transition.run(states[from])
          } catch (caught) {
            error = caught
          }
          expect(MlsToolkitError.isInstance(error)).toBe(true)
          const typed = error as MlsToolkitError
          expect(typed.code).toBe('INVALID_STATE')
          expect(typed.details).toEqual({ from, transition: name })
        })
      }
    }
  }

  it('the epochs move only where the transition says', () => {
    expect(epochOf(commitMerged(states.committing, nextEpoch(mls)))).toBe(1n)
    expect(epochOf(commitDiscarded(states.committing))).toBe(0n)
    expect(epochOf(commitApplied(states.active, nextEpoch(mls)))).toBe(1n)
    expect(epochOf(caughtUp(states.joining))).toBe(0n)
  })

  it('advanced refuses a state of another epoch (a commit is not a ratchet step)', () => {
    expect(() => advanced(states.active, nextEpoch(mls))).toThrow(expect.objectContaining({ code: 'INVALID_STATE' }))
  })

  it('commitStarted refuses a pending commit of another epoch', () => {
    const stale = { ...pendingFor(mls), epoch: 5n }
    expect(() => commitStarted(states.active, stale)).toThrow(expect.objectContaining({ code: 'INVALID_STATE' }))
  })

  describe('from the stored records', () => {
    it('rebuilds each variant', () => {
      const pending = pendingFor(mls)
      expect(fromRecords({ status: 'joining', epoch: 0n }, mls, undefined)).toEqual({ kind: 'joining', mls })
      expect(fromRecords({ status: 'active', epoch: 0n }, mls, undefined)).toEqual({ kind: 'active', mls })
      expect(fromRecords({ status: 'committing', epoch: 0n }, mls, pending)).toEqual({ kind: 'committing', mls, pending })
      expect(fromRecords({ status: 'failed', epoch: 0n, failure: 'why' }, mls, undefined)).toEqual({ kind: 'failed', mls, reason: 'why' })
      expect(fromRecords({ status: 'removed', epoch: 3n }, undefined, undefined)).toEqual({ kind: 'removed', epoch: 3n })
    })

    it('never builds an illegal combination from records that hold one', () => {
      // A pending record beside a status other than committing is stale: it is not carried.
      expect(fromRecords({ status: 'active', epoch: 0n }, mls, pendingFor(mls))).toEqual({ kind: 'active', mls })
      expect(fromRecords({ status: 'failed', epoch: 0n, failure: 'why' }, mls, pendingFor(mls))).toEqual({ kind: 'failed', mls, reason: 'why' })
      // Committing without its commit (or with one of another epoch) is active.
      expect(fromRecords({ status: 'committing', epoch: 0n }, mls, undefined)).toEqual({ kind: 'active', mls })
      expect(fromRecords({ status: 'committing', epoch: 0n }, mls, { ...pendingFor(mls), epoch: 7n })).toEqual({ kind: 'active', mls })
      // A removed group keeps no secrets even if a state record survived.
      expect(fromRecords({ status: 'removed', epoch: 3n }, mls, pendingFor(mls))).toEqual({ kind: 'removed', epoch: 3n })
      // A live status without its MLS state cannot be built.
      expect(fromRecords({ status: 'active', epoch: 0n }, undefined, undefined)).toBeUndefined()
    })
  })
})
