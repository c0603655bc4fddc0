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
  /** The member's leaf in the ratchet tree. */
  readonly leafIndex: number
  /** The member's client id, `user/device`, from its credential. */
  readonly clientId: ClientId
  /** The user part of `clientId`. */
  readonly userId: string
  /** The device part of `clientId`. */
  readonly deviceId: string
  /** The signature key of its leaf. */
  readonly signaturePublicKey: Uint8Array
}

/** What a commit call wanted; kept so it can be retried after losing a race. */
export type CommitIntent =
  | {
      /** Add members. */
      readonly kind: 'add'
      /** The validated KeyPackages of the devices to add. */
      readonly keyPackages: readonly ValidatedKeyPackage[]
    }
  | {
      /** Remove members. */
      readonly kind: 'remove'
      /** The client ids to remove. */
      readonly targets: readonly string[]
    }
  | {
      /** Refresh this member's leaf (post-compromise security). */
      readonly kind: 'update'
    }

/** A KeyPackage fetched from the Directory and validated for adding. */
export interface ValidatedKeyPackage {
  /** The device the KeyPackage belongs to. */
  readonly clientId: ClientId
  /** The decoded KeyPackage. */
  readonly keyPackage: KeyPackage
}

/** The outcome of a commit call. Losing a race is not an error: the intent is retried. */
export type CommitOutcome =
  | {
      /** The channel accepted the commit and the group merged it. */
      readonly kind: 'committed'
      /** The epoch the commit led to. */
      readonly epoch: bigint
      /** The commit's log seq. */
      readonly seq: number
      /** How many commits were tried (1 when no race was lost). */
      readonly attempts: number
      /** The devices the commit added. */
      readonly added: readonly ClientId[]
      /** The devices the commit removed. */
      readonly removed: readonly ClientId[]
    }
  | {
      /** Nothing was left to do (every client already a member, or no target a member any more), e.g. after a lost race. */
      readonly kind: 'not-needed'
      /** Why nothing was left to commit. */
      readonly reason: string
      /** How many commits were tried. */
      readonly attempts: number
    }

/** The events a `Group` emits (`group.on(name, listener)`), with their payloads. */
export interface GroupEvents {
  /** An application message, in channel order. `own` for this member's messages echoed back. */
  'message:received': ReceivedMessage
  /** A commit was applied (another member's, or this member's own once confirmed). */
  'epoch:changed': {
    /** The new epoch. */
    epoch: bigint
    /** The new epoch's authenticator (equal for every member of the epoch; compare out of band). */
    epochAuthenticator: Uint8Array
    /** The member that committed; `undefined` when it is not a member (an external committer). */
    committer: ClientId | undefined
    /** Whether this member committed. */
    own: boolean
  }
  /** The roster changed with a commit. */
  'members:changed': {
    /** The epoch the change took effect in. */
    epoch: bigint
    /** The devices added. */
    added: readonly ClientId[]
    /** The devices removed. */
    removed: readonly ClientId[]
  }
  /** This member was removed; the group is now `removed` and its secrets are deleted. */
  'group:removed': {
    /** The epoch of the commit that removed this member. */
    epoch: bigint
    /** The member that committed the removal, when known. */
    by: ClientId | undefined
  }
  /** Input the group refused; the state is unchanged. */
  'message:rejected': {
    /** Why it was refused (its `code` says what was wrong). */
    error: MlsToolkitError
    /** Its channel position; `undefined` for input handed to `receive`. */
    seq: number | undefined
  }
  /** The group moved from one state to another (see `GroupStatus`). */
  'status:changed': {
    /** The previous state. */
    from: GroupStatus
    /** The new state. */
    to: GroupStatus
  }
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
    /** What it proposes (RFC 9420 section 12.1): `add`, `update` (of the sender's own leaf) or `remove`. */
    kind: 'add' | 'update' | 'remove'
    /** The members the proposal removes. */
    removes: readonly ClientId[]
    /** The clients the proposal adds. */
    adds: readonly ClientId[]
  }
}

/** `Group.propose`: standalone proposals (RFC 9420 section 12.1), committed by reference by the next commit of any member. */
export interface GroupProposals {
  /** Propose adding every device of these validated KeyPackages that is not a member yet. */
  add(keyPackages: readonly ValidatedKeyPackage[]): Promise<ProposalsPosted>
  /** Propose removing members: client ids (`user/device`) or user ids (all their devices), never this member (see `leave`). */
  remove(targets: readonly string[]): Promise<ProposalsPosted>
  /** Propose a fresh HPKE key for this member's own leaf (an Update proposal; its private key is kept until a commit includes it). */
  update(): Promise<ProposalsPosted>
}

/** What `Group.propose` posted. */
export interface ProposalsPosted {
  /** The channel positions of the proposals, one per proposal, in order. */
  readonly seqs: number[]
}

/** An application message as the group hands it to the application. */
export interface ReceivedMessage {
  /** Stable id of the message within the group (its channel position, or its digest outside the channel). */
  readonly id: string
  /** The member that sent it. */
  readonly sender: ClientId
  /** The decrypted application data. */
  readonly plaintext: Uint8Array
  /** The epoch it was sent in. */
  readonly epoch: bigint
  /** Channel position; `undefined` for messages handed to `receive`. */
  readonly seq: number | undefined
  /** True for this member's own messages, echoed back by the channel. */
  readonly own: boolean
}

/** What `receive` did with a message handed in directly (outside the channel). */
export type ReceiveResult =
  | {
      /** An application message from another member. */
      readonly kind: 'application'
      /** The member that sent it. */
      readonly sender: ClientId
      /** The decrypted application data. */
      readonly plaintext: Uint8Array
      /** The epoch it was sent in. */
      readonly epoch: bigint
    }
  | {
      /** Another member's commit, applied. */
      readonly kind: 'commit'
      /** The epoch it led to. */
      readonly epoch: bigint
    }
  | {
      /** This member's own pending commit, confirmed and merged. */
      readonly kind: 'own-commit'
      /** The epoch it led to. */
      readonly epoch: bigint
    }
  | {
      /** This member's own application message, echoed back (recorded, nothing to decrypt). */
      readonly kind: 'own-message'
    }
  | {
      /** A standalone proposal, kept for the next commit. */
      readonly kind: 'proposal'
      /** The epoch it belongs to. */
      readonly epoch: bigint
    }
  | {
      /** Already processed; nothing changed. */
      readonly kind: 'duplicate'
    }
  | {
      /** For a later epoch than the group's; kept and processed once the group gets there. */
      readonly kind: 'waiting-for-epoch'
      /** The message's epoch. */
      readonly epoch: bigint
    }
