import type { KeyPackage } from 'ts-mls'
import type { ClientId } from './interfaces/common.js'
import type { MlsToolkitError } from './errors.js'

/**
 * The named states of a group, and their transitions:
 *
 * - `joining`: joined from a Welcome and persisted, catching up on the
 *   channel entries ordered after the commit that added this member. The first
 *   sync that reaches the head of the log → `active`. Messages are received
 *   and may be sent; commits wait for `active`.
 * - `active`: the member can send and commit. `commit()` → `committing`.
 * - `committing`: a commit was created and waits for the channel. Its
 *   confirmation (the channel delivering it in order) merges it → `active`;
 *   another member's commit for the same epoch discards it → `active`
 *   (the intent is then retried or reported as not needed).
 * - `removed`: a commit removed this member. Terminal; secrets are deleted.
 * - `failed`: the channel ordered a commit that passes every check all
 *   members make alike (decoding, epoch, sender, membership tag, signature)
 *   but that this member alone cannot process (a path secret it cannot
 *   decrypt), or a commit for an epoch it never reached. Not terminal: the
 *   group rejoins at once by an external commit replacing its old leaf
 *   (recovery/resync.ts) → `active` (`group:resynced`; the others see
 *   `member:resynced`). If the channel has no GroupInfo for its epoch yet, the
 *   group stays `failed` (persisted) and retries on the next sync or restart.
 *   A commit every member rejects alike is skipped and reported instead.
 *
 * The client emits `group:joined` once a join is persisted (in `joining`).
 * Internally each status is the `kind` of a tagged union that carries the
 * state's data, changed only by the transitions of group-state.ts.
 */
export type GroupStatus = 'joining' | 'active' | 'committing' | 'removed' | 'failed'

/** A member of the group, from the ratchet tree. */
export interface Member {
  readonly leafIndex: number
  readonly clientId: ClientId
  readonly userId: string
  readonly deviceId: string
  readonly signaturePublicKey: Uint8Array
}

/** What a commit call wanted; kept so it can be retried after losing a race. */
export type CommitIntent =
  | { readonly kind: 'add'; readonly keyPackages: readonly ValidatedKeyPackage[] }
  | { readonly kind: 'remove'; readonly targets: readonly string[] }
  | { readonly kind: 'update' }

/** A KeyPackage fetched from the Directory and validated for adding. */
export interface ValidatedKeyPackage {
  readonly clientId: ClientId
  readonly keyPackage: KeyPackage
}

/** The outcome of a commit call. Losing a race is not an error: the intent is retried. */
export type CommitOutcome =
  | {
      readonly kind: 'committed'
      readonly epoch: bigint
      readonly seq: number
      readonly attempts: number
      readonly added: readonly ClientId[]
      readonly removed: readonly ClientId[]
    }
  | { readonly kind: 'not-needed'; readonly reason: string; readonly attempts: number }

export interface GroupEvents {
  /** An application message, in channel order. `own` for this member's messages echoed back. */
  'message:received': ReceivedMessage
  /** A commit was applied (another member's, or this member's own once confirmed). */
  'epoch:changed': { epoch: bigint; epochAuthenticator: Uint8Array; committer: ClientId | undefined; own: boolean }
  'members:changed': { epoch: bigint; added: readonly ClientId[]; removed: readonly ClientId[] }
  /** This member was removed; the group is now `removed` and its secrets are deleted. */
  'group:removed': { epoch: bigint; by: ClientId | undefined }
  /** Input the group refused; the state is unchanged. */
  'message:rejected': { error: MlsToolkitError; seq: number | undefined }
  'status:changed': { from: GroupStatus; to: GroupStatus }
  /** Another member rejoined by an external commit that replaced its old leaf; `reason` is what it signed. */
  'member:resynced': {
    /** The epoch the external commit created. */
    epoch: bigint
    /** The member that rejoined. */
    member: ClientId
    /** The reason it signed in its commit. */
    reason: string
  }
  /** This member left `failed` by rejoining (an external commit replacing its old leaf). */
  'group:resynced': {
    /** The epoch this member's external commit created. */
    epoch: bigint
    /** Why the group had failed (the reason signed in the commit). */
    reason: string
  }
  /** A standalone proposal was ordered and kept for the next commit (e.g. a member leaving). */
  'proposal:received': {
    /** The epoch the proposal belongs to. */
    epoch: bigint
    /** Channel position; `undefined` for proposals handed to `receive`. */
    seq: number | undefined
    /** The member that proposed, when it is a member. */
    sender: ClientId | undefined
    /** The members the proposal removes. */
    removes: readonly ClientId[]
  }
}

/** An application message as the group hands it to the application. */
export interface ReceivedMessage {
  /** Stable id of the message within the group (its channel position, or its digest outside the channel). */
  readonly id: string
  readonly sender: ClientId
  readonly plaintext: Uint8Array
  readonly epoch: bigint
  /** Channel position; `undefined` for messages handed to `receive`. */
  readonly seq: number | undefined
  /** True for this member's own messages, echoed back by the channel. */
  readonly own: boolean
}

/** What `receive` did with a message handed in directly (outside the channel). */
export type ReceiveResult =
  | { readonly kind: 'application'; readonly sender: ClientId; readonly plaintext: Uint8Array; readonly epoch: bigint }
  | { readonly kind: 'commit'; readonly epoch: bigint }
  | { readonly kind: 'own-commit'; readonly epoch: bigint }
  | { readonly kind: 'own-message' }
  | {
      /** A standalone proposal, kept for the next commit. */
      readonly kind: 'proposal'
      /** The epoch it belongs to. */
      readonly epoch: bigint
    }
  | { readonly kind: 'duplicate' }
  | { readonly kind: 'waiting-for-epoch'; readonly epoch: bigint }
