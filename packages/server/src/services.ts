import type {
  AbortOptions,
  ChannelEntry,
  ChannelEvent,
  ClientId,
  CryptoProvider,
  FetchedKeyPackage,
  KeyPackageCount,
  PostCommitResult,
  RegisteredIdentity,
  ServerBinding,
  ServerExternalSender,
  ServerStore,
  WelcomeEntry
} from '@mls/core/interfaces'
import type { CiphersuiteName, Credential } from '@mls/core/mls'
import type { CredentialValidator } from '@mls/core'
import type { ServiceLimits } from './limits.js'

/** What `createServices` needs. */
export interface ServicesInit {
  /** Where the Directory and the Group Channel keep their state. */
  store: ServerStore
  /** Verifies signatures and computes KeyPackage refs and message digests. */
  crypto: CryptoProvider
  /**
   * Ciphersuites accepted for identities and KeyPackages. Default: every suite
   * `crypto` supports. Each must be supported (`UNSUPPORTED_CIPHERSUITE`).
   */
  ciphersuites?: readonly CiphersuiteName[]
  /** Overrides of `defaultServiceLimits`. */
  limits?: Partial<ServiceLimits>
  /** Clock in milliseconds since the epoch. Default `Date.now`. */
  now?: () => number
  /**
   * Several server instances on one shared store: the bus tells the other
   * instances what this one appended, so that their connected clients get it
   * live (`postgresInstanceBus` from `@mls/storage-postgres`). With a bus the
   * channel keeps no group cache: any instance may change any group.
   */
  bus?: InstanceBus
  /**
   * The app's Authentication Service hook: who may register an identity and
   * who may claim a user id (docs/trust-model.md). Default: anyone may
   * register an unused client id (within the per-address limit), and the
   * first device to publish a claim owns an unclaimed user id.
   */
  authentication?: AuthenticationHook
  /**
   * How client ids and credentials are checked (ids of connections, device
   * lists and KeyPackage credentials). Default `basicCredentials` of
   * `@mls/core`; install the same validator in the clients.
   */
  credentials?: CredentialValidator
  /**
   * Whether a client that is not in a group's roster may fetch its GroupInfo
   * and join it by an external commit. Default: never (only a device in the
   * roster may, to resync its own leaf). See docs/server.md.
   */
  externalJoinPolicy?: ExternalJoinPolicy
  /**
   * The server's own signature key pair as an external sender (RFC 9420
   * section 12.1.8.1), for `channel.proposeRemoval`. Groups that let the
   * server remove devices list its public key in their `external_senders`
   * extension. Its algorithm must be the groups' signature algorithm. The
   * public part is advertised to every connecting client
   * (`Services.externalSender`), which pins it on first use; `MlsClient`
   * lists it in the groups it creates. When a user removes a device from its
   * device list, the server proposes that device's removal in every group
   * whose roster holds it (docs/server.md).
   */
  externalSender?: {
    /** The public key groups list in `external_senders`. */
    readonly signaturePublicKey: Uint8Array
    /** The private key the server signs its proposals with. */
    readonly signaturePrivateKey: Uint8Array
    /** The ciphersuite whose signature scheme the key is for. Default suite 1 (Ed25519). */
    readonly ciphersuite?: CiphersuiteName
    /** The server's credential in `external_senders`. Default a basic credential with identity `@server`. */
    readonly credential?: Credential
  }
}

/** What one instance appended, as told to the others (after the store call resolved, so after its commit). */
export type InstanceNotice =
  | {
      /** A log entry was appended to a group. */
      readonly type: 'entry'
      /** The group, hex. */
      readonly groupId: string
      /** The entry's log seq. */
      readonly seq: number
    }
  | {
      /** A Welcome was put in a client's mailbox. */
      readonly type: 'welcome'
      /** The mailbox owner. */
      readonly clientId: ClientId
      /** The Welcome's mailbox seq. */
      readonly seq: number
    }

/**
 * Fan-out between server instances that share one store. `publish` is called
 * after the append has committed; `subscribe` receives the other instances'
 * notices (an implementation drops the instance's own). Delivery is best
 * effort: a client that misses a push catches up from its cursor.
 */
export interface InstanceBus {
  /** Tell the other instances (called after the append committed). */
  publish(notice: InstanceNotice): void
  /** Receive the other instances' notices; returns the unsubscribe function. */
  subscribe(listener: (notice: InstanceNotice) => void): () => void
}

/** A new identity asking to be registered, as `AuthenticationHook.authorizeRegistration` sees it. */
export interface RegistrationRequest {
  /** The client id to register (`user/device`). */
  readonly clientId: ClientId
  /** Its user part. */
  readonly userId: string
  /** Its device part. */
  readonly deviceId: string
  /** The signature key the identity is bound to. */
  readonly signaturePublicKey: Uint8Array
  /** Ciphersuite name of the signature key. */
  readonly ciphersuite: string
  /** The network source the transport reports (an IP address for WebSocket), when it knows one. */
  readonly source: string | undefined
}

/** A device claiming a user id (the first entry of the user's device list). */
export interface ClaimRequest {
  /** The user id claimed. */
  readonly userId: string
  /** The claiming device. */
  readonly clientId: ClientId
  /** The device's registered signature key. */
  readonly signaturePublicKey: Uint8Array
  /** Ciphersuite name of the signature key. */
  readonly ciphersuite: string
  /**
   * The app's proof the client attached to its claim (`MlsClientInit.claimProof`),
   * for example a JWT from the app's login server; empty when none.
   */
  readonly proof: Uint8Array
}

/**
 * Binds user ids to an app's accounts (the server side of the
 * Authentication Service, RFC 9420 section 5.3). Every method is optional;
 * a missing one allows. A method that throws or returns `false` refuses:
 * registration with `AUTHENTICATION_FAILED`, a claim with `CLAIM_REFUSED`.
 * Linking and removing devices need no hook: they are signed by a device
 * already in the user's list. See `jwtAuthentication` for a ready one.
 */
export interface AuthenticationHook {
  /** May this new identity be registered? Called once, before it is stored (not on later logins). */
  authorizeRegistration?(request: RegistrationRequest): boolean | Promise<boolean>
  /** May this device claim the unclaimed `request.userId`? */
  authorizeClaim?(request: ClaimRequest): boolean | Promise<boolean>
}

/** The `sender` of log entries the server itself posts (its external proposals). */
export const SERVER_SENDER = '@server'

/** The app's rule for external joins by clients outside a group's roster; `true` allows. */
export type ExternalJoinPolicy = (request: { caller: ClientId; groupId: Uint8Array }) => boolean | Promise<boolean>

/** The identity a connection presents (the data of `SessionCredentials`, without the signer). */
export interface PresentedCredentials {
  /** The client id the connection claims. */
  readonly clientId: ClientId
  /** The signature key it signs the challenge with. */
  readonly signaturePublicKey: Uint8Array
  /** Ciphersuite name of the signature key. */
  readonly ciphersuite: string
  /** `true` to register the identity (binding it to the key once), `false` to log in. */
  readonly register: boolean
  /**
   * Where the connection comes from (an IP address), when the transport knows:
   * registrations are limited per source (`limits.registrationsPerHour`).
   */
  readonly source?: string | undefined
  /**
   * The server the client signed its login for (`SessionCredentials.signChallenge`).
   * The transport checks that it names this server before passing it on;
   * the signature is verified over it. Absent for in-process transports.
   */
  readonly binding?: ServerBinding | undefined
}

/** Fetch options: abort signal and page size. */
export type FetchOptions = AbortOptions & {
  /** Most items returned; default `limits.defaultFetchLimit`, clamped to `limits.maxFetchLimit`. */
  limit?: number
}

/**
 * Proof of possession of a signature key, once per connection. A transport
 * asks for a challenge, hands it to the client, and passes the client's
 * answer (`SessionCredentials.signChallenge`) to `authenticate`. The returned
 * ClientId is the `caller` of every later request on that connection.
 */
export interface AuthService {
  /**
   * A fresh challenge for one connection (56 bytes: expiry, random nonce and
   * a MAC under a key of this process). It can be answered once, within
   * `limits.challengeTtlMs`. Nothing is stored until it is answered, so no
   * number of new connections can evict a challenge a slow client holds.
   */
  challenge(): Uint8Array
  /**
   * Verify the challenge signature (SignWithLabel, label `AUTH_LABEL`, over
   * `authenticationContent(challenge, clientId, credentials.binding)`) and return the
   * authenticated ClientId.
   *
   * - `register: true` binds the identity to the key once; the same key again
   *   is accepted; another key rejects with `IDENTITY_CONFLICT`. A new
   *   registration takes a token of its source's budget (`RATE_LIMITED` when
   *   spent) and must pass `AuthenticationHook.authorizeRegistration`
   *   (`AUTHENTICATION_FAILED`).
   * - `register: false` requires a registered identity (`UNKNOWN_IDENTITY`)
   *   bound to the presented key (`AUTHENTICATION_FAILED`).
   * - `AUTHENTICATION_FAILED` for a bad signature or a challenge that was not
   *   issued by `challenge()`, expired, or already used; `INVALID_ARGUMENT`
   *   for a malformed client id; `UNSUPPORTED_CIPHERSUITE` for a suite not
   *   accepted.
   */
  authenticate(credentials: PresentedCredentials, challenge: Uint8Array, signature: Uint8Array, options?: AbortOptions): Promise<ClientId>
}

/**
 * The Directory, mirroring `DirectoryClient` with the authenticated caller
 * first. Same results and error codes.
 */
export interface DirectoryService {
  /**
   * Validate and store the caller's KeyPackages, all or nothing. Each must be
   * an MLSMessage of wire format `mls_key_package`, version mls10, a suite
   * accepted, valid now (`not_before` within the clock skew), signed
   * (KeyPackage and leaf node signatures), with `init_key` different from
   * the leaf's `encryption_key`, a basic credential naming exactly the caller
   * and the caller's registered signature key. Otherwise
   * `KEY_PACKAGE_INVALID`, with `details.index` (the last-resort one is index
   * `keyPackages.length`) and `details.reason`.
   */
  uploadKeyPackages(
    caller: ClientId,
    request: { keyPackages: readonly Uint8Array[]; lastResort?: Uint8Array },
    options?: AbortOptions
  ): Promise<KeyPackageCount>
  /**
   * One KeyPackage for each device in `userId`'s device list except the
   * caller: the oldest one-time KeyPackage (consumed), or the last-resort one
   * when the pool is empty or the user's one-time budget
   * (`limits.oneTimeKeyPackagesPerMinute`) is spent; devices with neither are
   * left out. Registered devices outside the list are never served.
   * `UNKNOWN_USER` when the user has no device list; `RATE_LIMITED` past the
   * caller's fetch budget, or when only the spent user budget kept every
   * device out.
   */
  fetchKeyPackages(caller: ClientId, userId: string, options?: AbortOptions): Promise<FetchedKeyPackage[]>
  /** The identity registered for `clientId`, or `undefined`. */
  lookupIdentity(caller: ClientId, clientId: ClientId, options?: AbortOptions): Promise<RegisteredIdentity | undefined>
  /** How many KeyPackages of the caller remain. */
  countKeyPackages(caller: ClientId, options?: AbortOptions): Promise<KeyPackageCount>
  /** The encoded entries of `userId`'s device list, oldest first; `[]` for an unclaimed user id. */
  fetchDeviceList(caller: ClientId, userId: string, options?: AbortOptions): Promise<Uint8Array[]>
  /**
   * Check and append one entry (see `verifyDeviceList` of `@mls/core`): the
   * caller must be its signer, registered with the signing key; an added
   * device must be registered with the key the entry names; a claim must pass
   * `AuthenticationHook.authorizeClaim`. Errors `DEVICE_LIST_INVALID`,
   * `DEVICE_LIST_CONFLICT` (not the next version), `CLAIM_REFUSED`.
   */
  publishDeviceListEntry(caller: ClientId, entry: Uint8Array, options?: AbortOptions): Promise<{
    /** The list's new version (its number of entries). */
    version: number
  }>
}

/**
 * The Group Channel (Delivery Service), mirroring `GroupChannelClient` with
 * the authenticated caller first. Same results and error codes.
 *
 * Membership is enforced with a roster the channel keeps from the commits it
 * accepts (see docs/server.md). Handshake messages are PublicMessages, and the
 * channel keeps each group's public state (ratchet tree, GroupContext,
 * confirmation tag; `@mls/core/public-group`) to verify every commit as a
 * public observer before ordering it: sender, signature, proposals,
 * UpdatePath. It never sees secrets. Mutations of one group are serialized;
 * the store's epoch compare-and-set is the final guard.
 */
export interface ChannelService {
  /**
   * Create a group whose only member (leaf 0) is the caller, from the
   * creator's signed GroupInfo (an `mls_group_info` MLSMessage carrying the
   * `ratchet_tree` extension): for this group id, at its epoch (0, or later
   * while the creator is alone, for implementations that expose a GroupInfo
   * only with a commit), a valid tree with one leaf holding the caller's
   * registered credential, signed by it.
   * It becomes the group's public state. `GROUP_EXISTS` when the id is taken;
   * `INVALID_ARGUMENT` for an empty or too long id; `INVALID_MESSAGE`
   * (`details.reason` `invalid-group-info`) for a GroupInfo that does not fit.
   */
  createGroup(caller: ClientId, groupId: Uint8Array, request: { groupInfo: Uint8Array }, options?: AbortOptions): Promise<void>
  /**
   * Order a commit. It must be an `mls_public_message` commit for this group,
   * with `request.epoch` equal to its epoch, sent by the member leaf that the
   * roster maps to the caller, carrying proposals by value only. It is
   * verified against the group's public state (`verifyCommit` of
   * `@mls/core/public-group`): signature over the current GroupContext,
   * proposals valid (Remove of an occupied leaf other than the committer's,
   * Adds whose KeyPackages verify and whose credentials the Directory
   * registered; no ReInit, PSK or custom proposals), an UpdatePath whose leaf
   * node signature, credential and parent hashes verify; `details.reason`
   * says which check failed. Every Add must use a KeyPackage the Directory
   * served for the client its credential names, or one it never served (handed
   * over out of band) under the key that client registered; a commit that adds members
   * must come with a Welcome whose recipients are exactly the added KeyPackage
   * refs. `request.groupInfo`, when given, is the committer's signed GroupInfo
   * for the new epoch; it must describe the state the commit leads to, and is
   * kept for external joiners.
   *
   * Results: `accepted` with the entry's `seq` and the group's new epoch
   * (`request.epoch + 1`); `conflict` with the current epoch when the commit
   * is for any other epoch (nothing is stored, the Welcome is dropped).
   * Errors: `UNKNOWN_GROUP`, `NOT_A_MEMBER` (caller not in the roster, or
   * the sender leaf blank), `INVALID_MESSAGE`, `WELCOME_INVALID`,
   * `PAYLOAD_TOO_LARGE`.
   */
  postCommit(
    caller: ClientId,
    groupId: Uint8Array,
    request: { epoch: bigint; commit: Uint8Array; welcome?: Uint8Array; groupInfo?: Uint8Array },
    options?: AbortOptions
  ): Promise<PostCommitResult>
  /**
   * Order a standalone proposal: an `mls_public_message` with proposal content
   * for the current epoch, sent from the caller's leaf and verified against
   * the group's public state (`verifyMemberProposal`: signature, epoch). Only
   * Remove proposals of an occupied leaf not already proposed for removal are
   * accepted; a member leaves by proposing its own removal, which the next
   * committer includes by reference. The proposal is appended to the log
   * (kind `proposal`, fanned out to every member) and kept in the public state
   * until the next commit. Errors: `UNKNOWN_GROUP`, `NOT_A_MEMBER`,
   * `INVALID_MESSAGE` (`details.reason`), `WRONG_EPOCH`, `REPLAYED_MESSAGE`,
   * `PAYLOAD_TOO_LARGE`.
   */
  postProposal(caller: ClientId, groupId: Uint8Array, proposal: Uint8Array, options?: AbortOptions): Promise<{
    /** The proposal's log seq. */
    seq: number
  }>
  /**
   * Append an application message: an `mls_private_message` with content
   * type application for this group, from a current member, for an epoch in
   * `[current - limits.epochWindow, current]`. Errors: `UNKNOWN_GROUP`,
   * `NOT_A_MEMBER`, `INVALID_MESSAGE`, `WRONG_EPOCH`, `REPLAYED_MESSAGE`
   * (same bytes already in the log), `PAYLOAD_TOO_LARGE`.
   */
  postMessage(caller: ClientId, groupId: Uint8Array, message: Uint8Array, options?: AbortOptions): Promise<{
    /** The message's log seq. */
    seq: number
  }>
  /**
   * Entries with `seq > afterSeq` inside the caller's access windows, in
   * order: a member reads from the commit that added it (exclusive); a
   * removed member up to and including the commit that removed it.
   * `NOT_A_MEMBER` if the caller never had access, `UNKNOWN_GROUP`.
   * `limit` may be given as a number or in the options.
   */
  fetchEntries(
    caller: ClientId,
    groupId: Uint8Array,
    afterSeq: number,
    options?: FetchOptions | number,
    abortOptions?: AbortOptions
  ): Promise<ChannelEntry[]>
  /**
   * The transport proved that the caller's client received every pushed
   * entry of the group up to `seq` (transport-ws: the pong to a ping sent
   * after those pushes). Moves the caller's fetch cursor like a fetch does;
   * only the caller's own, and only while it is a member (the store checks).
   * A push alone does not count: the socket may already be dead.
   */
  confirmDelivered(caller: ClientId, groupId: Uint8Array, seq: number): void
  /**
   * Write the fetch cursors noted since the last write (one store call).
   * A member's cursor moves when it fetches with `afterSeq` (it holds
   * everything up to there) and when the transport confirms pushed entries
   * (`confirmDelivered`); the service writes the noted positions about once
   * a second, and retention (`startLogRetention`'s `beforePass`) calls this
   * first. Cursors lag, never lead, so a late write only keeps more.
   */
  flushFetchCursors(options?: AbortOptions): Promise<void>
  /** The caller's Welcomes with `seq > afterSeq`, in order. */
  fetchWelcomes(caller: ClientId, afterSeq: number, options?: FetchOptions | number, abortOptions?: AbortOptions): Promise<WelcomeEntry[]>
  /**
   * The group's latest signed GroupInfo (an `mls_group_info` MLSMessage with
   * the ratchet tree and `external_pub`), for an external commit; `undefined`
   * when none was uploaded for the current epoch. Only for a device in the
   * roster (resync) or one the `externalJoinPolicy` allows (`NOT_A_MEMBER`);
   * `UNKNOWN_GROUP`.
   *
   * External commits go through `postCommit`: a `new_member_commit` sender,
   * verified against the public state; from a device in the roster it must
   * remove exactly that device's own leaf (resync), from any other device
   * (allowed by the policy) it removes nobody.
   */
  fetchGroupInfo(caller: ClientId, groupId: Uint8Array, options?: AbortOptions): Promise<{
    /** The epoch the GroupInfo is for. */
    epoch: bigint
    /** The signed GroupInfo, an encoded MLSMessage. */
    groupInfo: Uint8Array
  } | undefined>
  /**
   * Server-initiated removal (e.g. of a deleted device): as the external
   * sender `externalSender`, propose the removal of `clientId`'s leaf in the
   * group, ordered like a member's proposal (a log entry of kind `proposal`
   * with sender `SERVER_SENDER`, pending until the next commit, which members
   * include by reference). Resolves `undefined` when the client holds no leaf
   * in the group or its removal is already proposed. `INVALID_STATE` when the
   * server has no `externalSender` key or the group does not list it in
   * `external_senders`; `UNKNOWN_GROUP`. Not reachable over the transport: an
   * administrative call of the server application.
   */
  proposeRemoval(groupId: Uint8Array, clientId: ClientId, options?: AbortOptions): Promise<{
    /** The proposal's log seq. */
    seq: number
  } | undefined>
}

/** The Directory and the Group Channel, independent of any transport. */
export interface Services {
  /** Connection authentication (challenge signatures, registration). */
  readonly auth: AuthService
  /** The Directory: identities, KeyPackages, device lists. */
  readonly directory: DirectoryService
  /** The Group Channel: groups, their logs and Welcomes. */
  readonly channel: ChannelService
  /**
   * Push: `listener` is called (synchronously, in log order per group) for
   * every entry appended to a group the client may read (all members the
   * entry is visible to, the sender included, and a removed member for the
   * commit that removed it) and for every Welcome put in its mailbox. With
   * a bus, appends made through other instances are pushed too, as they
   * arrive (possibly out of log order; clients order by seq and fetch gaps).
   * A listener that throws is ignored. Returns a function that unsubscribes.
   */
  subscribe(clientId: ClientId, listener: (event: ChannelEvent) => void): () => void
  /** The limits in force. */
  readonly limits: ServiceLimits
  /** The public part of `ServicesInit.externalSender`, advertised in every connection's handshake; `undefined` without one. */
  readonly externalSender: ServerExternalSender | undefined
}
