import type { AbortOptions, ClientId } from './common.js'

/** One entry of a group's totally ordered log. */
export interface ChannelEntry {
  /** The group whose log this is. */
  readonly groupId: Uint8Array
  /** Position in the group's log, starting at 1, without gaps. */
  readonly seq: number
  /**
   * `commit` for the commits the channel ordered, `proposal` for standalone
   * proposals (PublicMessages, valid until the next commit), `application`
   * otherwise.
   */
  readonly kind: 'commit' | 'application' | 'proposal'
  /** The epoch the message was sent in. */
  readonly epoch: bigint
  /** The authenticated client that posted it. */
  readonly sender: ClientId
  /** The encoded MLSMessage, exactly as posted. */
  readonly message: Uint8Array
}

/** A Welcome addressed to the caller. */
export interface WelcomeEntry {
  /** Position in the caller's Welcome mailbox, starting at 1, without gaps. */
  readonly seq: number
  /** The group the Welcome is for. */
  readonly groupId: Uint8Array
  /** The encoded MLSMessage (wire format `mls_welcome`). */
  readonly welcome: Uint8Array
  /** Log position of the commit that added the caller; the joiner reads from there. */
  readonly commitSeq: number
}

/** Outcome of posting a commit. A conflict is an expected outcome, not an error. */
export type PostCommitResult =
  | {
      /** The channel ordered the commit. */
      readonly kind: 'accepted'
      /** Its log seq. */
      readonly seq: number
      /** The epoch the commit leads to. */
      readonly epoch: bigint
    }
  | {
      /** Another commit won this epoch; fetch it, then retry. */
      readonly kind: 'conflict'
      /** The group's current epoch. */
      readonly epoch: bigint
    }

/** Pushed by the channel; a client may also poll with `fetchEntries`/`fetchWelcomes`. */
export type ChannelEvent =
  | {
      /** A log entry the caller may read was appended. */
      readonly type: 'entry:appended'
      /** The entry. */
      readonly entry: ChannelEntry
    }
  | {
      /** A Welcome was put in the caller's mailbox. */
      readonly type: 'welcome:appended'
      /** The Welcome. */
      readonly entry: WelcomeEntry
    }
  | {
      /** The connection came back after a loss: pushes may have been missed, fetch from the cursors. */
      readonly type: 'connection:restored'
    }

/**
 * The client side of the Group Channel (the MLS Delivery Service). The caller
 * is the authenticated client of the connection.
 *
 * Guarantees the implementation relies on from the service:
 * - Per group, a total order without gaps. For each epoch exactly one commit
 *   is accepted (the first valid one); a commit for an epoch that already has
 *   one resolves as `{ kind: 'conflict' }`.
 * - A Welcome is delivered only when its commit was accepted, only to the
 *   client whose KeyPackage it was built from.
 * - Every current member, the sender included, receives every entry; entries
 *   are stored, so `fetchEntries` after a cursor returns exactly what was
 *   missed, in order.
 * - Only members read or post (`NOT_A_MEMBER`); a removed member can read up
 *   to and including the commit that removed it, and nothing after.
 *
 * Errors carry a stable `code`: `NOT_A_MEMBER`, `UNKNOWN_GROUP`,
 * `GROUP_EXISTS`, `INVALID_MESSAGE` (undecodable, wrong group, wrong wire
 * format, sender not the caller), `WRONG_EPOCH` (application message outside
 * the accepted epochs), `REPLAYED_MESSAGE`, `WELCOME_INVALID`, `RATE_LIMITED`,
 * `PAYLOAD_TOO_LARGE`, `TRANSPORT_*`.
 */
export interface GroupChannelClient {
  /**
   * Create a group whose only member is the caller, at epoch 0. `groupInfo`
   * is the creator's signed GroupInfo (an `mls_group_info` MLSMessage with the
   * `ratchet_tree` extension): the channel's public state of the group.
   */
  createGroup(groupId: Uint8Array, request: { groupInfo: Uint8Array }, options?: AbortOptions): Promise<void>
  /**
   * Post a commit (a PublicMessage) for `epoch`, with the Welcome for the
   * members it adds and, optionally, the committer's signed GroupInfo for the
   * new epoch. Accepted only if `epoch` is the group's current epoch and the
   * channel verifies the commit against its public state of the group.
   */
  postCommit(
    groupId: Uint8Array,
    request: { epoch: bigint; commit: Uint8Array; welcome?: Uint8Array; groupInfo?: Uint8Array },
    options?: AbortOptions
  ): Promise<PostCommitResult>
  /**
   * Post a standalone proposal (a PublicMessage for the current epoch; the
   * channel accepts Remove proposals, e.g. a member's own removal to leave),
   * which the next commit may include by reference.
   */
  postProposal(
    groupId: Uint8Array,
    proposal: Uint8Array,
    options?: AbortOptions
  ): Promise<{
    /** The proposal's log seq. */
    seq: number
  }>
  /** Post an application message (a PrivateMessage). */
  postMessage(
    groupId: Uint8Array,
    message: Uint8Array,
    options?: AbortOptions
  ): Promise<{
    /** The message's log seq. */
    seq: number
  }>
  /** Entries after `afterSeq` that the caller may read, in order, at most `limit` (default 500). */
  fetchEntries(
    groupId: Uint8Array,
    afterSeq: number,
    options?: AbortOptions & { limit?: number }
  ): Promise<ChannelEntry[]>
  /**
   * The group's latest signed GroupInfo (an `mls_group_info` MLSMessage with
   * the ratchet tree and `external_pub`) and its epoch, to rejoin by an
   * external commit; `undefined` when the channel holds none for the current
   * epoch. Only for a device in the group's roster, or one the server's
   * policy lets join (`NOT_A_MEMBER`).
   */
  fetchGroupInfo(
    groupId: Uint8Array,
    options?: AbortOptions
  ): Promise<
    | {
        /** The epoch the GroupInfo is for. */
        epoch: bigint
        /** The signed GroupInfo, an encoded MLSMessage. */
        groupInfo: Uint8Array
      }
    | undefined
  >
  /** The caller's Welcomes after `afterSeq`, in order. */
  fetchWelcomes(afterSeq: number, options?: AbortOptions & { limit?: number }): Promise<WelcomeEntry[]>
  /** Receive pushed events. Returns a function that unsubscribes. */
  subscribe(listener: (event: ChannelEvent) => void): () => void
}
