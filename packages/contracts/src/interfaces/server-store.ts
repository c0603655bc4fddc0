import type { AbortOptions, ClientId, GroupIdHex } from './common.js'

/** The only server store contract version this release of core understands. */
export const SERVER_STORE_SPECIFICATION_VERSION = 'v1' as const

/** A registered client: its identity bound to one signature key. */
export interface IdentityRecord {
  /** The client id, `user/device`. */
  readonly clientId: ClientId
  /** Its user part. */
  readonly userId: string
  /** Its device part. */
  readonly deviceId: string
  /** The signature key the identity is bound to. */
  readonly signaturePublicKey: Uint8Array
  /** Ciphersuite name of the signature key. */
  readonly ciphersuite: string
  /** Milliseconds since the epoch. */
  readonly registeredAt: number
}

/** A validated KeyPackage waiting in a device's pool (or its last-resort slot). */
export interface KeyPackageRecord {
  /** KeyPackageRef (RFC 9420 section 5.2), lower-case hex; unique across the store. */
  readonly ref: string
  /** The device whose KeyPackage this is. */
  readonly clientId: ClientId
  /** The encoded MLSMessage. */
  readonly keyPackage: Uint8Array
  /** Whether it is the device's last-resort KeyPackage (served again when the pool is empty). */
  readonly lastResort: boolean
  /**
   * The KeyPackage's `not_after`, seconds since the epoch, clamped to
   * `Number.MAX_SAFE_INTEGER` (so every adapter can store it as a 64-bit integer).
   */
  readonly notAfter: number
}

/** One occupied leaf of a group's ratchet tree, as the channel tracks it. */
export interface RosterEntry {
  /** The leaf's index in the ratchet tree. */
  readonly leafIndex: number
  /** The client at that leaf. */
  readonly clientId: ClientId
}

/** A span of a group's log a client may read: `(fromSeq, untilSeq]`. */
export interface AccessWindow {
  /** The reader. */
  readonly clientId: ClientId
  /** The client reads entries with `seq > fromSeq`. */
  readonly fromSeq: number
  /** The client reads entries with `seq <= untilSeq`; `null` while it is a member. */
  readonly untilSeq: number | null
}

/** A group as the channel knows it: its epoch, log head, roster and read access. */
export interface GroupRecord {
  /** The group id, lower-case hex. */
  readonly groupId: GroupIdHex
  /** The group's current epoch (one more per accepted commit). */
  readonly epoch: bigint
  /** Seq of the last log entry; 0 for an empty log. */
  readonly lastSeq: number
  /** The occupied leaves, by leaf index. */
  readonly roster: readonly RosterEntry[]
  /** Who may read which span of the log. */
  readonly access: readonly AccessWindow[]
}

/** One entry of a group's log, as stored. */
export interface LogRecord {
  /** Position in the group's log, from 1. */
  readonly seq: number
  /** A commit, an application message, or a standalone proposal. */
  readonly kind: 'commit' | 'application' | 'proposal'
  /** The epoch the message was sent in. */
  readonly epoch: bigint
  /** The posting client (or the server's own sender name for its proposals). */
  readonly sender: ClientId
  /** The MLSMessage as posted. */
  readonly message: Uint8Array
  /** Hash of `message`, lower-case hex; unique per group (replays are refused). */
  readonly digest: string
}

/** One Welcome in a client's mailbox. */
export interface WelcomeRecord {
  /** Position in the client's mailbox, from 1. */
  readonly seq: number
  /** The group the Welcome is for, lower-case hex. */
  readonly groupId: GroupIdHex
  /** The Welcome MLSMessage. */
  readonly welcome: Uint8Array
  /** Log seq of the commit that added the client. */
  readonly commitSeq: number
}

/**
 * The public state the channel keeps for a group (docs/server.md): what it
 * verifies the next commit against, and the GroupInfo it hands to external
 * joiners. Adapters store the bytes as given.
 */
export interface PublicStateRecord {
  /** The epoch the state is for (the group's epoch). */
  readonly epoch: bigint
  /** The encoded public state (`encodePublicGroupState` of `@mls/core/public-group`). */
  readonly state: Uint8Array
  /** The latest signed GroupInfo for this epoch (an encoded MLSMessage), if one was uploaded. */
  readonly groupInfo: Uint8Array | undefined
}

/** A group to create, with its public state at epoch 0. */
export type NewGroupRecord = GroupRecord & {
  /** The public state at epoch 0 (groups created before issue 9 have none). */
  readonly publicState?: PublicStateRecord
}

/** Outcome of `appendCommit`. */
export type AppendCommitResult =
  | {
      /** The commit was appended. */
      readonly kind: 'accepted'
      /** Its log seq. */
      readonly seq: number
      /** The mailbox seq of each Welcome, in the order given. */
      readonly welcomeSeqs: readonly {
        /** The recipient. */
        clientId: ClientId
        /** Seq in the recipient's mailbox. */
        seq: number
      }[]
    }
  | {
      /** The group is no longer at the expected epoch; nothing changed. */
      readonly kind: 'conflict'
      /** The group's current epoch. */
      readonly epoch: bigint
    }

/** Outcome of `appendProposal`. */
export type AppendProposalResult =
  | {
      /** The proposal was appended. */
      readonly kind: 'accepted'
      /** Its log seq. */
      readonly seq: number
    }
  | {
      /** The group is no longer at the expected epoch; nothing changed. */
      readonly kind: 'conflict'
      /** The group's current epoch. */
      readonly epoch: bigint
    }
  | {
      /** The same message is already in the log; nothing changed. */
      readonly kind: 'duplicate'
    }

/** Outcome of `appendMessage`. */
export type AppendMessageResult =
  | {
      /** The message was appended. */
      readonly kind: 'accepted'
      /** Its log seq. */
      readonly seq: number
    }
  | {
      /** The same message is already in the log; nothing changed. */
      readonly kind: 'duplicate'
    }
  | {
      /** The sender is not in the group's roster (checked in the same transaction as the append); nothing changed. */
      readonly kind: 'not-a-member'
    }

/**
 * What `pruneLogs` deletes (log retention, docs/server.md). Only application
 * messages are deleted; commits and proposals, which a member needs to catch
 * up, are kept.
 */
export interface LogPruning {
  /** Delete application messages appended before this time (milliseconds since the epoch, by the store's clock). */
  readonly appendedBeforeMs: number
  /** Keep at most this many of each group's newest application messages; delete the older ones. */
  readonly keepMessages: number
  /**
   * A deleted message leaves its digest behind (so a replay is still
   * refused) while its epoch is within this many epochs of the group's
   * current one; older digests are dropped too (the channel refuses those
   * epochs anyway).
   */
  readonly keepDigestsForEpochs: number
  /**
   * The hard limit: delete application messages appended before this time
   * (milliseconds since the epoch, by the store's clock) even when a current
   * member has not fetched them. Omitted or 0: no hard limit, so a message a
   * current member has not fetched is never deleted.
   */
  readonly hardLimitBeforeMs?: number
}

/**
 * What `pruneWelcomes` deletes (Welcome retention, docs/server.md): mailbox
 * rows selected by either rule. A mailbox's seqs are never reused, so a
 * client fetching after the seq it last saw misses nothing that is kept.
 */
export interface WelcomePruning {
  /** Delete Welcomes appended before this time (milliseconds since the epoch, by the store's clock); 0: no age rule. */
  readonly appendedBeforeMs: number
  /**
   * Delete each mailbox's Welcomes that are more than this many seqs behind
   * the newest seq the mailbox ever had (`seq <= newest - keepWelcomes`).
   */
  readonly keepWelcomes: number
}

/**
 * How far one member has fetched a group's log (`advanceFetchCursors`).
 * Retention (`pruneLogs`) keeps every application message after the lowest
 * cursor of the group's current members.
 */
export interface FetchCursor {
  /** The group, lower-case hex. */
  readonly groupId: GroupIdHex
  /** The member (a device: a client with an open access window, i.e. a leaf in the roster). */
  readonly clientId: ClientId
  /** The member has fetched every entry with `seq <= seq`. */
  readonly seq: number
}

/**
 * Durable state of the Directory and the Group Channel. The services decide;
 * the store keeps their decisions atomically. Adapters hold no MLS logic.
 *
 * Semantics (every adapter, proven by `@mls/conformance/storage`):
 * - Missing values are `undefined`, empty listings `[]`.
 * - Each method is one atomic transaction; after a crash every resolved call
 *   is durable and no rejected or interrupted call is partly visible.
 * - Concurrent calls are serializable: two `consumeKeyPackage` calls never
 *   return the same one-time KeyPackage; two `appendCommit` calls for the same
 *   epoch accept exactly one.
 * - Returned values are copies: mutating them, or a value after passing it
 *   in, does not change what is stored.
 * - KeyPackage bytes that leave the store (consumed, dropped when expired, a
 *   replaced last-resort one) are deleted securely where the backend allows
 *   it (memory: zeroed; SQLite: `secure_delete`).
 * - Errors: `STORAGE_IO` for I/O failures, `ABORTED` (signal aborted before
 *   the call; nothing changes), `STORAGE_CLOSED` after `close()`,
 *   `UNKNOWN_GROUP` when `appendCommit`/`appendMessage` name a group that was
 *   never created. Expected outcomes (conflict, duplicate, exists) are
 *   results, not errors.
 *
 * Run `serverStoreConformanceSuite` from `@mls/conformance/storage` against
 * every adapter.
 */
export interface ServerStore {
  /** The contract version the adapter implements. */
  readonly specificationVersion: typeof SERVER_STORE_SPECIFICATION_VERSION
  /** A name for logs and errors. */
  readonly [Symbol.toStringTag]: string

  /** Insert the identity unless its client id exists. `exists` when the same key is already bound, `conflict` for another key. */
  registerIdentity(record: IdentityRecord, options?: AbortOptions): Promise<'created' | 'exists' | 'conflict'>
  /** The registered identity of a client; `undefined` when none. */
  getIdentity(clientId: ClientId, options?: AbortOptions): Promise<IdentityRecord | undefined>
  /** Every registered device of a user, sorted by client id. */
  listDevices(userId: string, options?: AbortOptions): Promise<IdentityRecord[]>

  /**
   * Add one-time KeyPackages to the client's pool (in the given order, which
   * is the order `consumeKeyPackage` serves them) and optionally replace the
   * client's last-resort one. Refs already known to the store (pooled, served,
   * or any client's current last-resort) are ignored, so an upload retried
   * after a lost response does not duplicate anything.
   */
  addKeyPackages(
    clientId: ClientId,
    records: readonly KeyPackageRecord[],
    lastResort: KeyPackageRecord | undefined,
    options?: AbortOptions
  ): Promise<void>
  /**
   * Atomically take the client's oldest unexpired one-time KeyPackage (removing
   * it from the pool and remembering its ref for Welcome routing), or, when the
   * pool is empty, return its last-resort KeyPackage without removing it.
   * Expired one-time KeyPackages (`notAfter < nowSeconds`) are dropped; an
   * expired last-resort KeyPackage is kept but not returned. Every ref
   * returned, one-time or last-resort, is remembered as served to this client.
   * `undefined` when the client has nothing to serve.
   */
  consumeKeyPackage(clientId: ClientId, nowSeconds: number, options?: AbortOptions): Promise<KeyPackageRecord | undefined>
  /** Pooled one-time KeyPackages (expired ones not yet dropped included) and whether a last-resort one is set. */
  countKeyPackages(
    clientId: ClientId,
    options?: AbortOptions
  ): Promise<{
    /** Pooled one-time KeyPackages. */
    oneTime: number
    /** Whether a last-resort one is set. */
    lastResort: boolean
  }>
  /** The client a KeyPackage ref was served for by `consumeKeyPackage`; `undefined` for refs never served. */
  lookupServedKeyPackage(ref: string, options?: AbortOptions): Promise<ClientId | undefined>

  /** Create a group (with its public state when given); `false` when it exists. */
  createGroup(group: NewGroupRecord, options?: AbortOptions): Promise<boolean>
  /** The group as last written; `undefined` for an unknown group. */
  getGroup(groupId: GroupIdHex, options?: AbortOptions): Promise<GroupRecord | undefined>
  /**
   * The groups whose roster holds `clientId` now, sorted (the server proposes
   * the removal of a device its user deleted in each of them); `[]` for none.
   */
  listGroupsOf(clientId: ClientId, options?: AbortOptions): Promise<GroupIdHex[]>
  /**
   * If the group's epoch is still `expectedEpoch`: append `entry` at
   * `lastSeq + 1`, set the epoch to `expectedEpoch + 1`, replace roster and
   * access (windows given with `fromSeq`/`untilSeq` of `-1` mean "this
   * entry's seq"), and put each Welcome in its recipient's mailbox with
   * `commitSeq` set to the entry's seq; `welcomeSeqs` lists the mailbox seq
   * of each Welcome, in the order given. Welcomes of one commit with equal
   * bytes (one Welcome adding many members, which holds the whole ratchet
   * tree) are stored once: each recipient's mailbox row refers to the one
   * copy, which is deleted with the last row referring to it
   * (`pruneWelcomes`). When `publicState` is given it
   * replaces the group's public state in the same transaction. Otherwise
   * `conflict` with the current epoch, and nothing changes.
   */
  appendCommit(
    groupId: GroupIdHex,
    commit: {
      expectedEpoch: bigint
      entry: Omit<LogRecord, 'seq'>
      roster: readonly RosterEntry[]
      access: readonly AccessWindow[]
      welcomes: readonly { clientId: ClientId; welcome: Uint8Array }[]
      publicState?: PublicStateRecord
    },
    options?: AbortOptions
  ): Promise<AppendCommitResult>
  /**
   * Append an application message; `duplicate` when the digest is already in
   * the group's log, `not-a-member` when `entry.sender` is not in the group's
   * roster at that instant (so a member removed through one server instance
   * cannot get a message appended through another that read the roster
   * before the removal).
   */
  appendMessage(groupId: GroupIdHex, entry: Omit<LogRecord, 'seq'>, options?: AbortOptions): Promise<AppendMessageResult>
  /** Log entries with `afterSeq < seq <= untilSeq` (all when `untilSeq` is omitted), ascending, at most `limit`; `[]` for an unknown group. */
  readLog(
    groupId: GroupIdHex,
    afterSeq: number,
    limit: number,
    untilSeq?: number,
    options?: AbortOptions
  ): Promise<LogRecord[]>
  /**
   * Log retention, over every group in one transaction: delete the
   * application messages `pruning` selects (their bytes are gone; where
   * the backend allows, securely), and move each affected group's retained
   * start past the last one deleted. The age and count rules delete only
   * messages at or below the group's fetch floor: the lowest fetch cursor of
   * its current members (clients with an open access window), where a
   * member's cursor is the higher of its `advanceFetchCursors` position and
   * its window's `fromSeq` (a group without members has its `lastSeq` as
   * floor). `hardLimitBeforeMs` deletes regardless of cursors. Cursors of
   * clients that are no longer members are dropped. `readLog` never returns
   * a deleted message. Resolves with how many messages were deleted.
   */
  pruneLogs(
    pruning: LogPruning,
    options?: AbortOptions
  ): Promise<{
    /** Application messages deleted. */
    deleted: number
  }>
  /**
   * The seq from which the group's log is complete: every entry with a seq
   * at or above it is kept; below it, application messages may have been
   * deleted by `pruneLogs`. 1 when nothing was deleted; `undefined` for an
   * unknown group.
   */
  logRetainedFrom(groupId: GroupIdHex, options?: AbortOptions): Promise<number | undefined>
  /**
   * Record how far members have fetched (one transaction for the batch): for
   * each cursor, when its client holds an open access window in its group,
   * the stored cursor becomes the higher of the stored one and `seq` (capped
   * at the group's `lastSeq`); cursors never move back. Cursors of unknown
   * groups and of clients that are not current members are ignored, so a
   * stranger's or a removed member's position never holds back retention.
   */
  advanceFetchCursors(cursors: readonly FetchCursor[], options?: AbortOptions): Promise<void>
  /**
   * The fetch cursor of each current member of the group (clients with an
   * open access window, in access order): the higher of its stored cursor
   * and its window's `fromSeq`. `[]` for an unknown group.
   */
  readFetchCursors(groupId: GroupIdHex, options?: AbortOptions): Promise<FetchCursor[]>
  /** Welcomes for `clientId` after `afterSeq`, ascending, at most `limit`; `[]` for an empty mailbox. */
  readWelcomes(clientId: ClientId, afterSeq: number, limit: number, options?: AbortOptions): Promise<WelcomeRecord[]>
  /**
   * Welcome retention, over every mailbox in one transaction: delete the
   * mailbox rows `pruning` selects, and the stored copy of a Welcome once no
   * mailbox row refers to it any more (never before: another recipient of
   * the same commit still reads it). `readWelcomes` never returns a deleted
   * row, and later Welcomes keep counting from the mailbox's newest seq.
   * Resolves with how many mailbox rows were deleted.
   */
  pruneWelcomes(
    pruning: WelcomePruning,
    options?: AbortOptions
  ): Promise<{
    /** Mailbox rows deleted. */
    deleted: number
  }>

  // ---- device lists (docs/trust-model.md)

  /**
   * Serve the client's last-resort KeyPackage even when one-time ones are
   * pooled (used when the target user's one-time budget is spent), remembering
   * its ref as served like `consumeKeyPackage` does. `undefined` when the
   * client has none or it expired.
   */
  serveLastResortKeyPackage(clientId: ClientId, nowSeconds: number, options?: AbortOptions): Promise<KeyPackageRecord | undefined>
  /** The encoded entries of a user's device list, oldest first; `[]` when it has none. */
  readDeviceList(userId: string, options?: AbortOptions): Promise<Uint8Array[]>
  /**
   * Append `entry` to the user's device list if the list holds exactly
   * `expectedLength` entries (compare-and-set); otherwise `conflict`, and
   * nothing changes.
   */
  appendDeviceListEntry(userId: string, expectedLength: number, entry: Uint8Array, options?: AbortOptions): Promise<'appended' | 'conflict'>

  /** Release resources. Idempotent. Later calls reject with `STORAGE_CLOSED`. */
  close(): Promise<void>

  // Public group state (issue 9): written by `createGroup` and `appendCommit`.

  /** The group's public state as last written; `undefined` for an unknown group or one created without it. */
  getPublicState(groupId: GroupIdHex, options?: AbortOptions): Promise<PublicStateRecord | undefined>
  /**
   * If the group's epoch is still `expectedEpoch`, its stored public state
   * is still `expectedState` (when given: the `state` bytes the proposal was
   * verified against, compared byte for byte) and the entry's digest is not
   * in its log: append `entry` (kind `proposal`) at `lastSeq + 1` and replace
   * the public state (which now holds the proposal), in one transaction; the
   * epoch does not change. Otherwise `conflict` with the current epoch (the
   * same epoch when only the state moved on: another instance appended a
   * proposal first, so the caller verifies again and retries) or
   * `duplicate`, and nothing changes. The compare-and-set keeps two
   * proposals posted through two instances at once: without it the second
   * write would replace the state holding the first.
   */
  appendProposal(
    groupId: GroupIdHex,
    proposal: { expectedEpoch: bigint; expectedState?: Uint8Array; entry: Omit<LogRecord, 'seq'>; publicState: PublicStateRecord },
    options?: AbortOptions
  ): Promise<AppendProposalResult>
}
