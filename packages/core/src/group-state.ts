import type { ClientState } from 'ts-mls'
import type { ClientId } from './interfaces/common.js'
import { UsageError } from './errors.js'
import type { CommitIntent, GroupStatus } from './group-types.js'

/**
 * The group's state machine as one tagged union that carries each state's
 * data (the model is OpenMLS's `MlsGroupState::PendingCommit | Operational |
 * Inactive`), and its transitions as functions from one variant to the next.
 * A combination the machine does not know (a pending commit of a group that
 * is not committing, a removed group holding secrets, a failed group without
 * its reason) cannot be represented. A transition called from a state where it
 * is not legal throws `INVALID_STATE` and changes nothing.
 *
 * ```text
 *   Welcome ──▶ joining ──caughtUp──▶ active ──commitStarted──▶ committing
 *   active ◀──commitMerged | commitDiscarded | commitApplied── committing
 *   joining | active | committing ──failedOn──▶ failed ──resynced──▶ active
 *   joining | active | committing ──removedAt──▶ removed (terminal)
 *   advanced and commitApplied keep joining and active as they are
 * ```
 *
 * The persisted form of a state is the `group/<id>/meta` record (its `status`
 * is the variant's `kind`), `group/<id>/state` and, while committing,
 * `group/<id>/pending` (group-records.ts).
 */
export type GroupState = JoiningState | ActiveState | CommittingState | FailedState | RemovedState

/** Joined from a Welcome, catching up on the log; may receive and send, commits wait for `active`. */
export interface JoiningState {
  readonly kind: 'joining'
  /** The ts-mls state of the current epoch. */
  readonly mls: ClientState
}

/** Operational: may send, receive and commit. */
export interface ActiveState {
  readonly kind: 'active'
  /** The ts-mls state of the current epoch. */
  readonly mls: ClientState
}

/** A created commit waits for the channel; the group keeps receiving in its current epoch. */
export interface CommittingState {
  readonly kind: 'committing'
  /** The ts-mls state of the current epoch (the commit's epoch). */
  readonly mls: ClientState
  /** The commit, and the state it leads to once the channel confirms it. */
  readonly pending: PendingCommit
}

/** This member alone cannot follow the log; it rejoins by an external commit replacing its old leaf. */
export interface FailedState {
  readonly kind: 'failed'
  /** The last state this member had: the rejoin replaces its leaf. */
  readonly mls: ClientState
  /** Why the group failed: the reason the rejoin signs. */
  readonly reason: string
}

/** Removed by a commit: terminal, no secrets left. */
export interface RemovedState {
  readonly kind: 'removed'
  /** The epoch the removing commit created. */
  readonly epoch: bigint
}

/** A created commit waiting for the channel. */
export interface PendingCommit {
  /** The epoch the commit is for. */
  readonly epoch: bigint
  /** What the commit call wanted, to retry it after losing a race. */
  readonly intent: CommitIntent
  /** The encoded commit (an MLSMessage), as posted. */
  readonly commit: Uint8Array
  /** The encoded Welcome for the members it adds. */
  readonly welcome: Uint8Array | undefined
  /** The ts-mls state the commit leads to. */
  readonly newState: ClientState
  /** Secrets to zero once the commit is settled (empty after a restart). */
  readonly consumed: readonly Uint8Array[]
  /** Clients the commit adds. */
  readonly added: readonly ClientId[]
  /** Clients the commit removes. */
  readonly removed: readonly ClientId[]
}

/** The states that hold the current epoch's ts-mls state and follow the log. */
export type LiveState = JoiningState | ActiveState | CommittingState

/** The name of each transition, as reported in its `INVALID_STATE` error. */
export type TransitionName =
  | 'advanced'
  | 'caughtUp'
  | 'commitStarted'
  | 'commitMerged'
  | 'commitDiscarded'
  | 'commitApplied'
  | 'failedOn'
  | 'resynced'
  | 'removedAt'

function refuse(transition: TransitionName, from: GroupState): never {
  throw new UsageError('INVALID_STATE', `The group is ${from.kind}: ${transition} is not a transition from it`, {
    details: { from: from.kind, transition }
  })
}

function isLive(state: GroupState): state is LiveState {
  return state.kind === 'joining' || state.kind === 'active' || state.kind === 'committing'
}

/** A group created by this member: `active` at once. */
export function created(mls: ClientState): ActiveState {
  return { kind: 'active', mls }
}

/** A group joined from a Welcome: `joining` until it reaches the head of the log. */
export function joined(mls: ClientState): JoiningState {
  return { kind: 'joining', mls }
}

/** The same epoch moved on (a message sent or received, a proposal kept): same variant, new ts-mls state. */
export function advanced<S extends GroupState>(from: S, mls: ClientState): S
export function advanced(from: GroupState, mls: ClientState): LiveState {
  if (!isLive(from)) refuse('advanced', from)
  if (mls.groupContext.epoch !== from.mls.groupContext.epoch) refuse('advanced', from)
  return { ...from, mls }
}

/** `joining` → `active`: the first sync that reached the head of the log. */
export function caughtUp(from: GroupState): ActiveState {
  if (from.kind !== 'joining') refuse('caughtUp', from)
  return { kind: 'active', mls: from.mls }
}

/** `active` → `committing`: a commit for the current epoch was created and persisted. */
export function commitStarted(from: GroupState, pending: PendingCommit): CommittingState {
  if (from.kind !== 'active' || pending.epoch !== from.mls.groupContext.epoch) refuse('commitStarted', from)
  return { kind: 'committing', mls: from.mls, pending }
}

/** `committing` → `active` in the next epoch: the channel delivered this member's own commit. */
export function commitMerged(from: GroupState, mls: ClientState): ActiveState {
  if (from.kind !== 'committing') refuse('commitMerged', from)
  return { kind: 'active', mls }
}

/** `committing` → `active` in the same epoch: the commit lost its race (or was never ordered). */
export function commitDiscarded(from: GroupState): ActiveState {
  if (from.kind !== 'committing') refuse('commitDiscarded', from)
  return { kind: 'active', mls: from.mls }
}

/**
 * Another member's commit moved the group to the next epoch: `joining` stays
 * `joining`, `active` stays `active`, and `committing` becomes `active` (its
 * own commit for that epoch lost).
 */
export function commitApplied(from: GroupState, mls: ClientState): JoiningState | ActiveState {
  if (!isLive(from)) refuse('commitApplied', from)
  return from.kind === 'joining' ? { kind: 'joining', mls } : { kind: 'active', mls }
}

/** A commit this member alone cannot process: → `failed` (a pending commit of the old epoch is dropped). */
export function failedOn(from: GroupState, reason: string): FailedState {
  if (!isLive(from)) refuse('failedOn', from)
  return { kind: 'failed', mls: from.mls, reason }
}

/** `failed` → `active`: this member rejoined by an external commit. */
export function resynced(from: GroupState, mls: ClientState): ActiveState {
  if (from.kind !== 'failed') refuse('resynced', from)
  return { kind: 'active', mls }
}

/** A commit removed this member: → `removed` (terminal). */
export function removedAt(from: GroupState, epoch: bigint): RemovedState {
  if (!isLive(from)) refuse('removedAt', from)
  return { kind: 'removed', epoch }
}

/** The status the public API reports for a state. */
export function statusOf(state: GroupState): GroupStatus {
  return state.kind
}

/** The epoch a state is in (for `removed`, the epoch of the removing commit). */
export function epochOf(state: GroupState): bigint {
  return state.kind === 'removed' ? state.epoch : state.mls.groupContext.epoch
}

/** The ts-mls state of a state that has one. */
export function mlsOf(state: GroupState): ClientState | undefined {
  return state.kind === 'removed' ? undefined : state.mls
}

/**
 * The state stored records describe. `status` comes from `group/<id>/meta`;
 * a `committing` record without its pending commit is `active` (the commit was
 * never posted); a pending record beside any other status is stale and ignored.
 * Returns `undefined` for a live status whose ts-mls state is missing.
 */
export function fromRecords(
  record: { status: GroupStatus; epoch: bigint; failure?: string },
  mls: ClientState | undefined,
  pending: PendingCommit | undefined
): GroupState | undefined {
  if (record.status === 'removed') return { kind: 'removed', epoch: record.epoch }
  if (mls === undefined) return undefined
  switch (record.status) {
    case 'joining':
      return { kind: 'joining', mls }
    case 'active':
      return { kind: 'active', mls }
    case 'committing':
      return pending === undefined || pending.epoch !== mls.groupContext.epoch ? { kind: 'active', mls } : { kind: 'committing', mls, pending }
    case 'failed':
      return { kind: 'failed', mls, reason: record.failure ?? 'the group state failed' }
  }
}
