import type { AuthenticationService, CiphersuiteImpl, CiphersuiteName, ClientConfig, Credential, KeyPackage, PrivateKeyPackage, Welcome } from 'ts-mls'
import {
  ciphersuiteNamed,
  createGroupState,
  privateHandshakesExtension,
  type HandshakeWireFormat,
  decodeLeadingMessage,
  defaultKeyPackageEqualityConfig,
  defaultLifetimeConfig,
  defaultPaddingConfig,
  encodeCredentialBytes,
  isCiphersuiteName,
  joinGroupState,
  keyPackageMessage,
  newKeyPackage,
  welcomeMemberUsers,
  zeroAll
} from './mls-adapter.js'
import type { ChannelEvent, GroupChannelClient, WelcomeEntry } from './interfaces/channel.js'
import { CLIENT_STORE_SPECIFICATION_VERSION, type ClientStore, type StoreOperation } from './interfaces/client-store.js'
import type { ClientId } from './interfaces/common.js'
import type { CryptoProvider } from './interfaces/crypto.js'
import type { DirectoryClient } from './interfaces/directory.js'
import { TRANSPORT_SPECIFICATION_VERSION, type Connection, type ServerExternalSender, type Transport } from './interfaces/transport.js'
import { sameExternalSender, serverExternalSendersExtension } from './server-sender.js'
import { MessageError, MlsToolkitError, TransportError, UsageError, errorCode } from './errors.js'
import { equalBytes, toHex } from './bytes.js'
import { assertCryptoProvider } from './crypto.js'
import { basicCredentials, clientIdUnder, credentialUnder, type CredentialValidator } from './identity.js'
import { ContactBook, type ContactChange } from './contacts.js'
import {
  createAddEntry,
  createDeviceLinkRequest,
  createRemoveEntry,
  type DeviceSigner,
  type SuiteResolver,
  type VerifiedDeviceList
} from './device-list.js'
import { collectKeyPackages, type SkippedDevice } from './key-package-check.js'
import { signChallenge } from './session-auth.js'
import { decodeRecord, encodeRecord, storeKeys } from './records.js'
import { Emitter } from './emitter.js'
import { Mutex } from './mutex.js'
import { Group, isOwnTrouble, type CommitOutcome, type GroupComponents, type GroupEvents, type ValidatedKeyPackage } from './group.js'
import { groupInfoMessage } from './group-info.js'
import { noProgress } from './paging.js'
import { describeInvitation, type Invitation, type WelcomeDecision, type WelcomePolicy } from './welcome-policy.js'
import { eachLimited, pacedConnection, resolvePacing, type Pacing, type PacingOptions } from './pacing.js'
import { isVouched, validateKeyPackageBytes, vouchOperation, type VouchedDevice } from './vouched.js'

/** The mandatory-to-implement suite, the default. */
export const DEFAULT_CIPHERSUITE: CiphersuiteName = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'

/**
 * How many members' device lists a joiner fetches at once before it checks them (`prefetchDeviceLists`): half
 * the connection's default request slots (`pacing.maxRequestsInFlight`), so other requests still go through.
 */
const DEVICE_LIST_PREFETCH = 4

/** Construction options of `createMlsClient`. */
export interface MlsClientInit {
  /** The user this device belongs to; 1-128 UTF-8 bytes without `/`. */
  userId: string
  /** This device; 1-128 UTF-8 bytes without `/`. */
  deviceId: string
  /** The crypto backend (`nodeCrypto()`, `nobleCrypto()`, `libsodiumCrypto()` of the `@mls/crypto-*` packages). */
  crypto: CryptoProvider
  /** Where this device's identity, KeyPackages and groups are kept (a `@mls/storage-*` client store). */
  store: ClientStore
  /** How the client reaches the Directory and the Group Channel (`@mls/transport-ws`, `@mls/transport-memory`). */
  transport: Transport
  /** Default: suite 1, MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519. */
  ciphersuite?: CiphersuiteName
  /** How this device's KeyPackages are generated and kept stocked in the Directory. */
  keyPackages?: {
    /** One-time KeyPackages per `publishKeyPackages()` call. Default 10. */
    batchSize?: number
    /** Validity of new KeyPackages in seconds. Default 28 days (within ts-mls's one-month maximum). */
    lifetimeSeconds?: number
    /**
     * After each join, when the Directory holds fewer one-time KeyPackages of
     * this device than this, publish a new batch. Default: off.
     */
    replenishBelow?: number
  }
  /** How many past epochs keep receiving keys (RFC 9420 section 14 "retention"). Default 4. */
  retainEpochs?: number
  /** Out-of-order tolerance within an epoch: generations kept per sender. Default 10. */
  retainGenerations?: number
  /** Commit attempts before giving up after repeated races. Default 5. */
  maxCommitAttempts?: number
  /** Process pushed channel events as they arrive. Default true. */
  autoSync?: boolean
  /**
   * Connect and catch up inside `createMlsClient` (default true: the client it
   * returns is online and has processed everything it missed, emitting those
   * events before the caller could listen). With `false`, `createMlsClient`
   * only loads the client from its store; attach listeners, then call
   * `client.start()`: nothing is delivered before that.
   */
  start?: boolean
  /** Backoff of background retries after a failure: first delay, doubling up to the maximum. Default 250 ms to 30 s. */
  retry?: {
    /** The first delay after a failure. Default 250 ms. */
    initialDelayMs?: number
    /** The longest delay, which doubling stops at. Default 30 s. */
    maxDelayMs?: number
  }
  /** The timer of background retries; injectable for deterministic tests (virtual time). Default: the global timers. */
  timers?: RetryTimers
  /**
   * Keep every received application message in the store, written in the same
   * atomic write as the state that consumed it, until `group.acknowledge(id)`.
   * After a crash, `group.unacknowledged()` returns what no listener may have
   * handled: at-least-once delivery to the application, with stable ids.
   * Plaintext then rests in the client store. Default false.
   */
  durableInbox?: boolean
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number
  /**
   * The app's proof attached when this device claims its user id (the first
   * device of an unclaimed user), checked by the server's
   * `AuthenticationHook.authorizeClaim`: for example a JWT from the app's
   * login server. Called only when a claim is made.
   */
  claimProof?: () => Uint8Array | string | Promise<Uint8Array | string>
  /**
   * How other clients' credentials and ids are checked (the client side of
   * the Authentication Service). Default `basicCredentials`.
   */
  credentials?: CredentialValidator
  /**
   * How requests and group catch-ups are paced (docs/core.md, "Pacing"):
   * requests in flight, groups synced at once (most recently active first),
   * and retries after `RATE_LIMITED`. Defaults: 8, 4, 8 retries.
   */
  pacing?: PacingOptions
  /**
   * Which invitations (Welcomes in the mailbox) to join: called for each
   * Welcome that passed every check, before anything is stored
   * (docs/core.md, "Invitations"). Default: accept all, as before the hook;
   * `welcomesFrom(isContact)` accepts the app's contacts and asks about the rest.
   */
  welcomePolicy?: WelcomePolicy
  /**
   * What to do when the server proves another login key (protocol v2) than
   * the one pinned on first use (`server:login-key-changed`,
   * `SERVER_KEY_CHANGED`; docs/trust-model.md): `'report'` (default) logs in
   * anyway, as for a changed external-sender key; `'refuse'` does not sign
   * the login, so the connect fails with that error until the server proves
   * the pinned key again or `forgetServerLoginKey()` is called. Use
   * `'refuse'` with a server whose key persists (`apps/server`); a library
   * `webSocketServer` without `serverKey` makes a new key at every start.
   */
  serverLoginKeyChange?: 'report' | 'refuse'
}

/** A Welcome kept until the app decides (`welcomePolicy` answered `ask`). */
interface InvitationRecord {
  entry: WelcomeEntry
  invitation: Invitation
  /** The store key of the one-time KeyPackage it was built for; none for the last-resort one. */
  keyPackageKey: string | undefined
}

/** What `addUsers` did: the commit outcome, and the devices left out. */
export type AddUsersOutcome = CommitOutcome & {
  /** Devices whose KeyPackage failed validation or who are outside their user's verified list. */
  readonly skipped: readonly SkippedDevice[]
}

/** A timer source (the subset of the global timer functions the client uses). */
export interface RetryTimers {
  /** Call `callback` once after `delayMs`; returns a handle for `clearTimeout`. */
  setTimeout(callback: () => void, delayMs: number): unknown
  /** Cancel a timer `setTimeout` returned (a no-op for one that already fired). */
  clearTimeout(handle: unknown): void
}

/**
 * The connection as the client sees it: `connecting` while it connects,
 * `online` once connected (and again after a retry succeeds), `offline` when a
 * connection attempt or a request failed for a network reason (with that
 * `cause`; the client retries), `closed` after `close()`.
 */
export type ConnectionState = 'connecting' | 'online' | 'offline' | 'closed'

/** A group event, as the client-wide stream carries it: with its group. */
export type ClientGroupEvent<K extends keyof GroupEvents> = GroupEvents[K] & {
  /** The group the event is about. */
  readonly group: Group
}

/** The events an `MlsClient` emits (`client.on(name, listener)`), with their payloads. */
export interface ClientEvents {
  /** A Welcome was processed and the group persisted. */
  'group:joined': {
    /** The joined group (in the `joining` state until it caught up). */
    group: Group
  }
  /** The `welcomePolicy` declined an invitation: the Welcome was consumed and nothing was joined. */
  'welcome:declined': {
    /** The invitation declined. */
    invitation: Invitation
  }
  /** The `welcomePolicy` asked: the invitation waits for `acceptInvitation` or `declineInvitation`. */
  'invitation:pending': {
    /** The invitation waiting for the app. */
    invitation: Invitation
  }
  /** A Welcome could not be processed (bad input); it is skipped and nothing was joined. */
  'welcome:rejected': {
    /** Why (its `code` says what was wrong). */
    error: MlsToolkitError
    /** The Welcome's position in this client's mailbox. */
    seq: number
  }
  /**
   * Background processing failed for this client's own reason (store,
   * network); nothing durable changed and it is retried with backoff.
   */
  'sync:failed': {
    /** The failure. */
    error: unknown
  }
  /** The connection changed state. */
  'connection:state': {
    /** The new state. */
    state: ConnectionState
    /** For `offline`: the failure that took the connection down. */
    cause?: unknown
  }
  /** Every group's application messages, in each group's channel order. */
  'message:received': {
    /** The group the message was sent in. */
    group: Group
    /** The message. */
    message: GroupEvents['message:received']
  }
  /** Every group's rejected input. */
  'message:rejected': ClientGroupEvent<'message:rejected'>
  /** Every group's epoch changes. */
  'epoch:changed': ClientGroupEvent<'epoch:changed'>
  /** Every group's membership changes. */
  'members:changed': ClientGroupEvent<'members:changed'>
  /** This client was removed from a group. */
  'group:removed': ClientGroupEvent<'group:removed'>
  /** Every group's state transitions. */
  'status:changed': ClientGroupEvent<'status:changed'>
  /** A contact's device list changed, or was replaced by the Directory (see `ContactChange`). */
  'contact:changed': ContactChange
  /** A device was left out while adding its user (its KeyPackage failed validation). */
  'device:skipped': SkippedDevice
  /**
   * The server answered in a way that cannot be right (`SERVER_MISBEHAVING`,
   * e.g. a page of a log or of the Welcome mailbox that never advances). The
   * operation stopped instead of looping; nothing durable changed, and the
   * next sync (after backoff) asks again.
   */
  'server:misbehaving': {
    /** What the server did (`SERVER_MISBEHAVING`, `details.reason`). */
    error: MlsToolkitError
  }
  /**
   * The server advertised another external-sender key (or none) than the one
   * this client pinned on first use (`SERVER_KEY_CHANGED`). The pin stays:
   * Remove proposals signed with any other key are refused, and new groups
   * list no external sender until the server advertises the pinned key again.
   */
  'server:key-changed': {
    /** `SERVER_KEY_CHANGED`, `details.reason` `different-key` or `not-advertised`. */
    error: MlsToolkitError
    /** The external sender this client pinned (and keeps). */
    pinned: ServerExternalSender
    /** What the server advertises now; `undefined` for nothing. */
    advertised: ServerExternalSender | undefined
  }
  /**
   * The server proved another login key (protocol v2, docs/protocol.md) than
   * the one this client pinned on first use (`SERVER_KEY_CHANGED`,
   * `details.reason` `login-key-changed`): an impostor at the server's URL,
   * or a server that lost its key file (or makes a new one at every start).
   * The pin stays; `forgetServerLoginKey()` accepts the next key the server
   * presents. With `serverLoginKeyChange: 'refuse'` the login was not signed
   * (the connect fails with this error; reconnects keep trying); by default
   * it went ahead. Emitted once per presented key.
   */
  'server:login-key-changed': {
    /** `SERVER_KEY_CHANGED`, `details.reason` `login-key-changed`. */
    error: MlsToolkitError
    /** The login key this client pinned (and keeps). */
    pinned: Uint8Array
    /** The key the server presented. */
    presented: Uint8Array
  }
}

interface IdentityRecord {
  userId: string
  deviceId: string
  ciphersuite: CiphersuiteName
  signaturePublicKey: Uint8Array
  signaturePrivateKey: Uint8Array
  registered: boolean
}

interface KeyPackageStoreRecord {
  lastResort: boolean
  createdAt: number
  keyPackage: Uint8Array
  initPrivateKey: Uint8Array
  hpkePrivateKey: Uint8Array
}

/**
 * Accepts a credential only when the validator accepts it and the client it
 * names is, with the presented key, a device of its user's verified and
 * pinned device list (removed devices included), or a device the app vouched
 * for with that key (`MlsClient.vouchForDevice`). The Directory's word alone
 * is never enough.
 */
export class DirectoryAuthenticationService implements AuthenticationService {
  constructor(
    private readonly contacts: () => ContactBook,
    private readonly validator: CredentialValidator = basicCredentials,
    /** The server's pinned external sender: its credential and key are accepted in `external_senders`. */
    private readonly serverSender: () => ServerExternalSender | undefined = () => undefined,
    /** Devices the app vouched for (`MlsClient.vouchForDevice`), outside any device list. */
    private readonly vouched: (clientId: ClientId, signaturePublicKey: Uint8Array) => Promise<boolean> = async () => false
  ) {}

  /** Whether `credential`, presented with `signaturePublicKey`, belongs to a device of a verified list or a vouched device (see above). */
  async validateCredential(credential: Credential, signaturePublicKey: Uint8Array): Promise<boolean> {
    const server = this.serverSender()
    if (server !== undefined && equalBytes(server.signaturePublicKey, signaturePublicKey) && equalBytes(server.credential, encodeCredentialBytes(credential))) return true
    const clientId = this.validator.clientIdFromCredential(credential)
    if (clientId === undefined) return false
    if (await this.vouched(clientId, signaturePublicKey)) return true
    return this.contacts().knows(clientId, signaturePublicKey)
  }
}

/** One device's MLS client: identity, KeyPackages and groups, over a transport. */
export class MlsClient {
  /** This device's client id, `user/device`. */
  readonly clientId: ClientId
  /** The user this device belongs to. */
  readonly userId: string
  /** This device's id within its user. */
  readonly deviceId: string
  /** The ciphersuite of this device's identity and groups. */
  readonly ciphersuite: CiphersuiteName
  private readonly groups = new Map<string, Group>()
  private readonly events = new Emitter<ClientEvents>()
  private readonly welcomeLock = new Mutex()
  private connection: Connection | undefined
  private unsubscribe: (() => void) | undefined
  private closed = false
  private starting: Promise<void> | undefined
  /** False until a connection succeeds, and again once it failed or was found closed: retries then reconnect. */
  private connectionUsable = false
  /** `connect()`, background reconnects and `start()` open, replace and tear down the session one at a time. */
  private readonly connectLock = new Mutex()
  private groupComponents: GroupComponents | undefined
  private everConnected = false
  private state: ConnectionState = 'offline'
  private retryTimer: unknown
  private retryDelayMs = 0
  private contactBook: ContactBook | undefined
  private readonly pacing: Pacing
  /** When each group last had traffic (ms), by group id: `sync()` catches the most recent up first. */
  private activity: Map<string, number> | undefined
  private activityChanged = false
  private readonly reported = new WeakSet<object>()
  private pinnedServer: ServerExternalSender | undefined
  private pinnedLoginKey: Uint8Array | undefined
  /** The presented login key last reported by `server:login-key-changed` (hex). */
  private reportedLoginKey: string | undefined

  /** @internal use `createMlsClient` */
  constructor(
    private readonly init: MlsClientInit,
    private readonly cs: CiphersuiteImpl,
    private identity: IdentityRecord,
    private readonly clientConfig: ClientConfig
  ) {
    this.userId = identity.userId
    this.deviceId = identity.deviceId
    this.clientId = clientIdUnder(init.credentials ?? basicCredentials, identity.userId, identity.deviceId)
    this.ciphersuite = identity.ciphersuite
    this.pacing = resolvePacing(init.pacing)
  }

  /** Listen to `type` (see `ClientEvents`); returns a function that stops listening. */
  on<K extends keyof ClientEvents>(type: K, listener: (event: ClientEvents[K]) => void): () => void {
    return this.events.on(type, listener)
  }

  /** The next `type` event (see `ClientEvents`). */
  once<K extends keyof ClientEvents>(type: K): Promise<ClientEvents[K]> {
    return this.events.once(type)
  }

  /** The registered signature public key of this device. */
  get signaturePublicKey(): Uint8Array {
    return this.identity.signaturePublicKey.slice()
  }

  /** The Directory client of the current connection. */
  get directory(): DirectoryClient {
    return this.requireConnection().directory
  }

  /** The Group Channel client of the current connection (raw access; groups use it for you). */
  get channel(): GroupChannelClient {
    return this.requireConnection().channel
  }

  /** The authentication service this client checks every credential with. */
  get authenticationService(): AuthenticationService {
    return this.clientConfig.authService
  }

  /** A group this client is in (or was removed from), by id. */
  group(groupId: Uint8Array | string): Group | undefined {
    return this.groups.get(typeof groupId === 'string' ? groupId : toHex(groupId))
  }

  /** Every group this client knows, including removed ones. */
  listGroups(): Group[] {
    return [...this.groups.values()]
  }

  /** The connection's state (see `connection:state`). */
  get connectionState(): ConnectionState {
    return this.state
  }

  /**
   * The server's external sender as this client pinned it on first use
   * (docs/trust-model.md): the only key whose Remove proposals its groups
   * accept. `undefined` until a server advertised one.
   */
  get serverExternalSender(): ServerExternalSender | undefined {
    return this.pinnedServer
  }

  /**
   * The server's login key (protocol v2) as this client pinned it on first
   * use (docs/trust-model.md): another one is reported
   * (`server:login-key-changed`), and with `serverLoginKeyChange: 'refuse'`
   * logins are signed only for this one. `undefined` until a transport
   * presented one (the in-memory transport has none).
   */
  get serverLoginKey(): Uint8Array | undefined {
    return this.pinnedLoginKey?.slice()
  }

  /**
   * Drop the pinned login key (after the server's operator confirmed a new
   * one): the next connection pins the key its server presents.
   */
  async forgetServerLoginKey(): Promise<void> {
    if (this.closed) throw new UsageError('INVALID_STATE', 'The client is closed')
    await this.init.store.write([{ type: 'delete', key: storeKeys.serverLoginKey }])
    this.pinnedLoginKey = undefined
    this.reportedLoginKey = undefined
  }

  /** @internal Load the groups from the store: no network, no events. */
  async load(): Promise<void> {
    const activity = await this.init.store.get(storeKeys.groupActivity)
    this.activity = new Map(Object.entries(activity === undefined ? {} : decodeRecord<Record<string, number>>(activity, 'group activity')))
    const pinned = await this.init.store.get(storeKeys.serverSender)
    if (pinned !== undefined) this.pinnedServer = decodeRecord<ServerExternalSender>(pinned, 'server external sender')
    const loginKey = await this.init.store.get(storeKeys.serverLoginKey)
    if (loginKey !== undefined) this.pinnedLoginKey = decodeRecord<{ serverKey: Uint8Array }>(loginKey, 'server login key').serverKey
    for (const entry of await this.init.store.list(storeKeys.groupPrefix)) {
      if (!entry.key.endsWith('/meta')) continue
      const gid = entry.key.slice(storeKeys.groupPrefix.length, -'/meta'.length)
      const group = await Group.load(this.components(), gid)
      if (group !== undefined) this.adopt(group)
    }
  }

  /**
   * Connect and catch up on everything missed (Welcomes, entries, commits
   * left pending by a crash), emitting its events. `createMlsClient` calls it
   * unless given `start: false`; calling it again returns the same promise.
   */
  start(): Promise<void> {
    this.starting ??= this.startOnce().catch((error: unknown) => {
      this.starting = undefined
      throw error
    })
    return this.starting
  }

  private async startOnce(): Promise<void> {
    let session: Connection | undefined
    try {
      session = await this.connectLock.run(() => this.openSession())
      await this.sync()
    } catch (error) {
      // A start that failed leaves no session of its own open: the caller may start again (or close). Under the
      // connect lock no connect is half way, and a session a later connect() opened is not this start's: it stays.
      await this.connectLock.run(async () => {
        if (this.connection === session) await this.disconnect()
      })
      throw error
    }
  }

  /** Connect (or reconnect) and catch up on everything missed. */
  async connect(): Promise<void> {
    await this.connectLock.run(() => this.openSession())
    await this.sync()
  }

  /**
   * Replace the session: close the current one, connect, claim the user id if
   * unclaimed, pin the server's key and subscribe. Runs only under
   * `connectLock` (one at a time). Returns the new session; on failure none is
   * left open and, after a first success, a retry is scheduled.
   */
  private async openSession(): Promise<Connection> {
    if (this.closed) throw new UsageError('INVALID_STATE', 'The client is closed')
    const transport = this.init.transport
    if (transport.specificationVersion !== TRANSPORT_SPECIFICATION_VERSION) {
      throw new UsageError('UNSUPPORTED_SPECIFICATION', `Unknown transport specification ${String(transport.specificationVersion)}`)
    }
    const identity = this.identity
    this.connectionUsable = false
    this.unsubscribe?.()
    this.unsubscribe = undefined
    const previous = this.connection
    this.connection = undefined
    await previous?.close()
    this.setConnectionState('connecting')
    let session: Connection
    let loginKey: Uint8Array | undefined
    try {
      const connection = await transport.connect({
        clientId: this.clientId,
        signaturePublicKey: identity.signaturePublicKey,
        ciphersuite: identity.ciphersuite,
        register: !identity.registered,
        signChallenge: async (challenge, binding) => {
          loginKey = this.checkLoginKey(binding?.serverKey)
          return signChallenge(challenge, this.clientId, identity.signaturePrivateKey, this.cs, binding)
        }
      })
      if (this.closed) {
        // close() ran while this connect was under way: nothing may stay open.
        await connection.close()
        throw new UsageError('INVALID_STATE', 'The client is closed')
      }
      session = pacedConnection(connection, this.pacing, this.timers())
      this.connection = session
    } catch (cause) {
      this.setConnectionState('offline', cause)
      // A reconnect that fails is retried in the background; the first connection is the caller's to retry.
      if (this.everConnected) this.scheduleRetry()
      throw cause
    }
    this.connectionUsable = true
    this.everConnected = true
    try {
      if (!identity.registered) {
        this.identity = { ...identity, registered: true }
        await this.init.store.write([{ type: 'put', key: storeKeys.identity, value: encodeRecord(this.identity) }])
      }
      await this.contacts.claimIfUnclaimed(this.userId, this.deviceSigner(), this.init.claimProof)
      await this.pinServer(session.externalSender)
      await this.pinLoginKey(loginKey)
    } catch (error) {
      // The session is dropped: the next retry must connect again (not sync over a connection that is gone).
      this.connectionUsable = false
      this.connection = undefined
      await session.close().catch(() => undefined)
      this.setConnectionState('offline', error)
      // As when the transport fails: a reconnect that fails is retried in the background.
      this.scheduleRetry()
      throw error
    }
    this.unsubscribe = session.channel.subscribe((event) => this.onChannelEvent(event))
    this.setConnectionState('online')
    return session
  }

  /**
   * Process Welcomes, settle commits left pending by a crash, rejoin `failed`
   * groups (external commit), and catch every group up to the head of its log. Rejects (after every group was tried)
   * when this client's own machinery failed; nothing durable changed for what
   * failed, and calling it again continues from there.
   */
  async sync(): Promise<void> {
    try {
      await this.processWelcomes()
      const live = this.byActivity([...this.groups.values()].filter((g) => ['joining', 'active', 'committing', 'failed'].includes(g.status)))
      // Paced: a few groups at a time, the most recently active first (an invitation flood waits its turn).
      const results = await eachLimited(live, this.pacing.maxGroupsInFlight, (g) => g.recover())
      const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      if (failure !== undefined) throw failure.reason
    } catch (error) {
      if (isTransportFailure(error)) this.setConnectionState('offline', error)
      this.reportMisbehaviour(error)
      throw error
    } finally {
      // Only the order of later syncs depends on it: a failed write is tried again at the next sync or close.
      await this.saveActivity().catch(() => {
        this.activityChanged = true
      })
    }
    this.setConnectionState('online')
  }

  /**
   * Generate KeyPackages, keep their private keys in the store, and upload
   * them: `count` one-time KeyPackages, plus a last-resort one when none
   * exists yet or `rotateLastResort` is set (the previous one is then deleted).
   */
  async publishKeyPackages(options: { count?: number; rotateLastResort?: boolean } = {}): Promise<{
    /** One-time KeyPackages of this device the Directory now holds. */
    oneTime: number
    /** Whether the Directory holds a last-resort KeyPackage of this device. */
    lastResort: boolean
  }> {
    const count = options.count ?? this.init.keyPackages?.batchSize ?? 10
    if (!Number.isInteger(count) || count < 0 || count > 1000) throw new UsageError('INVALID_ARGUMENT', 'count must be 0-1000')
    const existing = await this.storedKeyPackages()
    const oldLastResort = existing.filter((k) => k.record.lastResort)
    const needLastResort = oldLastResort.length === 0 || options.rotateLastResort === true
    const operations: StoreOperation[] = []
    const oneTime: Uint8Array[] = []
    let lastResort: Uint8Array | undefined
    for (let i = 0; i < count + (needLastResort ? 1 : 0); i++) {
      const isLastResort = i === count
      const { ref, message, record } = await this.generateKeyPackage(isLastResort)
      operations.push({ type: 'put', key: storeKeys.keyPackage(ref), value: encodeRecord(record) })
      if (isLastResort) lastResort = message
      else oneTime.push(message)
    }
    await this.init.store.write(operations)
    const result = await this.directory.uploadKeyPackages({ keyPackages: oneTime, ...(lastResort === undefined ? {} : { lastResort }) })
    if (options.rotateLastResort === true && oldLastResort.length > 0) {
      await this.init.store.write(oldLastResort.map((k) => ({ type: 'delete' as const, key: k.key })))
    }
    return result
  }

  /**
   * Create a group with this client as its only member. By default the
   * group lists the server in its `external_senders` extension, so the server
   * can propose the removal of a device its user deleted (when the server
   * advertises the key this client pinned, for this client's signature
   * scheme); `options.serverMayRemove: false` creates it without.
   * `options.handshakeWireFormat` (default `'public'`): with `'private'` the
   * group's commits and proposals are PrivateMessages (a GroupContext
   * extension every member sees); the channel then orders them without
   * reading them, and what it can no longer enforce is listed in
   * docs/server.md. A private group has no server-initiated removal.
   */
  async createGroup(
    groupId: Uint8Array = this.cs.rng.randomBytes(16),
    options: { serverMayRemove?: boolean; handshakeWireFormat?: HandshakeWireFormat } = {}
  ): Promise<Group> {
    if (this.group(groupId) !== undefined) throw new UsageError('INVALID_ARGUMENT', 'This client already has that group')
    const wireFormat = options.handshakeWireFormat ?? 'public'
    if (wireFormat !== 'public' && wireFormat !== 'private') throw new UsageError('INVALID_ARGUMENT', `handshakeWireFormat is 'public' or 'private', got ${String(wireFormat)}`)
    const server = options.serverMayRemove === false || wireFormat === 'private' ? undefined : this.currentServerSender()
    const extensions = server === undefined ? [] : [serverExternalSendersExtension(server)]
    if (wireFormat === 'private') extensions.push(privateHandshakesExtension())
    const { keyPackage, privatePackage } = await this.newKeyPackage()
    const state = await createGroupState(groupId, keyPackage, privatePackage, this.cs, this.clientConfig, extensions)
    zeroAll([privatePackage.initPrivateKey])
    await this.requireConnection().channel.createGroup(groupId, { groupInfo: await groupInfoMessage(state, this.cs) })
    return this.adopt(await Group.persistNew(this.components(), state, 0, []))
  }

  /**
   * Fetch one KeyPackage for every device of each user from the Directory and
   * validate it: the device must be in its user's verified device list, and
   * its KeyPackage must decode, carry a credential naming that device (as
   * `MlsClientInit.credentials` reads it) with the listed signature key, use
   * this client's ciphersuite, and verify. A device that fails is skipped
   * (event `device:skipped`); it never blocks the user's valid devices.
   * Throws `NO_KEY_PACKAGE` (details list the skipped devices) when a user
   * has no valid device, `DEVICE_LIST_INVALID`/`DEVICE_LIST_CHANGED` when a
   * user's list does not verify or does not extend the pinned one; nothing is
   * committed then.
   */
  async fetchKeyPackages(userIds: readonly string[]): Promise<ValidatedKeyPackage[]> {
    return (await this.collectKeyPackages(userIds)).keyPackages
  }

  /**
   * Convenience: fetch the users' KeyPackages and add every valid device to
   * `group`; the outcome lists the devices skipped.
   */
  async addUsers(group: Group, userIds: readonly string[]): Promise<AddUsersOutcome> {
    const { keyPackages, skipped } = await this.collectKeyPackages(userIds)
    return { ...(await group.addMembers(keyPackages)), skipped }
  }

  /**
   * Fetch and process the Welcomes addressed to this client, to the end of
   * the mailbox (a short page is not the end: the server may clamp pages), and
   * catch each joined group up. A Welcome that is bad input is rejected and
   * skipped; this client's own trouble rejects the call with the Welcome
   * cursor where it was, so the Welcome is processed again on the next sync.
   */
  async processWelcomes(): Promise<Group[]> {
    const joined = await this.welcomeLock.run(async () => {
      const out: Group[] = []
      for (;;) {
        const cursor = await this.welcomeCursor()
        const entries = await this.requireConnection().channel.fetchWelcomes(cursor, { limit: 100 })
        if (entries.length === 0) return out
        for (const entry of entries) {
          if (entry.seq <= (await this.welcomeCursor())) continue
          const group = await this.joinFromWelcome(entry)
          if (group !== undefined) out.push(group)
        }
        // Welcomes seen before, or seqs going backwards, would be fetched again forever.
        if ((await this.welcomeCursor()) === cursor) throw noProgress('the Welcome mailbox', cursor, entries)
      }
    })
    const results = await eachLimited(joined, this.pacing.maxGroupsInFlight, (g) => g.sync())
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failure !== undefined) throw failure.reason
    if (joined.length > 0) await this.replenishKeyPackages()
    return joined
  }

  /**
   * End everything: the retry timer, the subscription, the connection and the
   * store. No event is emitted afterwards (but `connection:state` `closed`), and
   * nothing keeps a Node.js process alive.
   */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.retryTimer !== undefined) this.timers().clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    this.unsubscribe?.()
    this.unsubscribe = undefined
    await this.connection?.close()
    await this.saveActivity().catch(() => undefined)
    await this.init.store.close()
    this.state = 'closed'
    this.events.emit('connection:state', { state: 'closed' })
  }

  /**
   * `mailbox`: a Welcome from the mailbox (the policy decides, the cursor
   * moves); `out-of-band`: `joinWelcome` (the cursor stays); `invitation`: a
   * pending invitation the app accepted (its record goes).
   */
  private async joinFromWelcome(entry: WelcomeEntry, mode: 'mailbox' | 'out-of-band' | 'invitation' = 'mailbox'): Promise<Group | undefined> {
    const outOfBand = mode !== 'mailbox'
    // A Welcome handed over out of band is not in this client's mailbox: the mailbox cursor stays.
    const advance: StoreOperation[] =
      mode === 'mailbox'
        ? [{ type: 'put', key: storeKeys.welcomeCursor, value: encodeRecord(entry.seq) }]
        : mode === 'invitation'
          ? [{ type: 'delete', key: storeKeys.invitation(entry.seq) }]
          : []
    try {
      const decoded = decodeLeadingMessage(entry.welcome)
      if (decoded?.wireformat !== 'mls_welcome') throw new MessageError('WELCOME_INVALID', 'Not a Welcome')
      const welcome = decoded.welcome
      let match: { key: string; record: KeyPackageStoreRecord; keyPackage: KeyPackage } | undefined
      for (const secret of welcome.secrets) {
        const key = storeKeys.keyPackage(toHex(secret.newMember))
        const bytes = await this.init.store.get(key)
        if (bytes === undefined) continue
        const record = decodeRecord<KeyPackageStoreRecord>(bytes, 'KeyPackage')
        const kp = decodeLeadingMessage(record.keyPackage)
        if (kp?.wireformat !== 'mls_key_package') throw new MessageError('STORAGE_CORRUPT', 'Stored KeyPackage is corrupt')
        match = { key, record, keyPackage: kp.keyPackage }
        break
      }
      if (match === undefined) throw new MessageError('WELCOME_INVALID', 'The Welcome is not for any KeyPackage of this client')
      // The group state gets its own copy of every key: a group zeroes what it owns when it ends.
      const privateKeys: PrivateKeyPackage = {
        initPrivateKey: match.record.initPrivateKey.slice(),
        hpkePrivateKey: match.record.hpkePrivateKey.slice(),
        signaturePrivateKey: this.identity.signaturePrivateKey.slice()
      }
      await this.prefetchDeviceLists(welcome, match.keyPackage, match.record.initPrivateKey)
      let state
      try {
        state = await joinGroupState(welcome, match.keyPackage, privateKeys, this.cs, this.clientConfig)
      } catch (cause) {
        // The AuthenticationService reads and pins device lists (store, Directory): its failures are own trouble, retried.
        if (isOwnTrouble(cause)) throw cause
        throw new MessageError('WELCOME_INVALID', `Welcome rejected: ${cause instanceof Error ? cause.message : String(cause)}`, { cause })
      }
      const gid = toHex(state.groupContext.groupId)
      if (!outOfBand && !equalBytes(state.groupContext.groupId, entry.groupId)) throw new MessageError('WELCOME_INVALID', 'Welcome is for another group than routed')
      const existing = this.groups.get(gid)
      if (existing !== undefined && existing.status !== 'removed') throw new MessageError('WELCOME_INVALID', 'Already a member of that group')
      const consumeKeyPackage: StoreOperation[] = match.record.lastResort ? [] : [{ type: 'delete', key: match.key }]
      if (mode !== 'invitation' && this.init.welcomePolicy !== undefined) {
        const validator = this.init.credentials ?? basicCredentials
        const invitation = await describeInvitation(entry.seq, welcome, match.keyPackage, match.record.initPrivateKey, state, this.cs, validator)
        const decision = await this.decide(invitation)
        if (decision !== 'accept') {
          // Nothing of the group is kept: its state (and our key copies in it) is dropped here.
          zeroAll([...Object.values(state.keySchedule), privateKeys.initPrivateKey])
          // Out of band the app asked to join: a policy that does not accept refuses it, and the KeyPackage stays.
          if (outOfBand) throw new MessageError('WELCOME_INVALID', `The welcome policy answered '${decision}'`, { details: { reason: 'policy', decision } })
          if (decision === 'decline') {
            await this.init.store.write([...advance, ...consumeKeyPackage])
            this.events.emit('welcome:declined', { invitation })
          } else {
            const record: InvitationRecord = { entry, invitation, keyPackageKey: match.record.lastResort ? undefined : match.key }
            await this.init.store.write([...advance, { type: 'put', key: storeKeys.invitation(entry.seq), value: encodeRecord(record) }])
            this.events.emit('invitation:pending', { invitation })
          }
          return undefined
        }
      }
      const group = await Group.persistNew(this.components(), state, entry.commitSeq, [...advance, ...consumeKeyPackage], 'joining')
      // The leaf's HPKE key now lives (as a copy) in the group state; the init key is spent.
      zeroAll([privateKeys.initPrivateKey, match.record.initPrivateKey, match.record.hpkePrivateKey])
      this.adopt(group)
      this.events.emit('group:joined', { group })
      return group
    } catch (cause) {
      // Own trouble: the cursor stays, so the Welcome is processed again on the next sync.
      if (isOwnTrouble(cause)) throw cause
      const error = MlsToolkitError.isInstance(cause) ? cause : new MessageError('WELCOME_INVALID', 'Welcome rejected', { cause })
      // An accepted invitation that cannot be joined any more is dropped.
      if (mode === 'invitation') await this.init.store.write(advance)
      if (outOfBand) throw error
      await this.init.store.write(advance)
      this.events.emit('welcome:rejected', { error, seq: entry.seq })
      return undefined
    }
  }

  private async replenishKeyPackages(): Promise<void> {
    const threshold = this.init.keyPackages?.replenishBelow
    if (threshold === undefined) return
    try {
      const { oneTime } = await this.directory.countKeyPackages()
      if (oneTime < threshold) await this.publishKeyPackages()
    } catch (error) {
      this.events.emit('sync:failed', { error })
    }
  }

  private onChannelEvent(event: ChannelEvent): void {
    if (this.init.autoSync === false || this.closed) return
    const run = async () => {
      if (event.type === 'welcome:appended') await this.processWelcomes()
      else if (event.type === 'entry:appended') await this.groups.get(toHex(event.entry.groupId))?.deliver(event.entry)
      else await this.sync()
    }
    run().catch((error: unknown) => this.backgroundFailure(error))
  }

  private backgroundFailure(error: unknown): void {
    if (this.closed) return
    this.reportMisbehaviour(error)
    if (isTransportFailure(error)) this.setConnectionState('offline', error)
    if (errorCode(error) === 'TRANSPORT_CLOSED') this.connectionUsable = false
    this.events.emit('sync:failed', { error })
    this.scheduleRetry()
  }

  /** After a failed background sync, try again with exponential backoff (250 ms doubling to 30 s by default) until one succeeds. */
  private scheduleRetry(): void {
    if (this.closed || this.retryTimer !== undefined) return
    const initial = this.init.retry?.initialDelayMs ?? 250
    const max = this.init.retry?.maxDelayMs ?? 30_000
    this.retryDelayMs = Math.min(this.retryDelayMs === 0 ? initial : this.retryDelayMs * 2, max)
    this.retryTimer = this.timers().setTimeout(() => {
      this.retryTimer = undefined
      if (this.closed) return
      // A connection that failed or was closed under the client is replaced; otherwise catching up is enough.
      ;(this.connectionUsable && this.connection !== undefined ? this.sync() : this.connect()).then(
        () => {
          this.retryDelayMs = 0
        },
        (error: unknown) => this.backgroundFailure(error)
      )
    }, this.retryDelayMs)
    ;(this.retryTimer as { unref?: () => void } | undefined)?.unref?.()
  }

  private timers(): RetryTimers {
    return this.init.timers ?? { setTimeout: (callback, delayMs) => setTimeout(callback, delayMs), clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>) }
  }

  /** Emit `server:misbehaving` once per error. */
  private reportMisbehaviour(error: unknown): void {
    if (errorCode(error) !== 'SERVER_MISBEHAVING' || !MlsToolkitError.isInstance(error) || this.reported.has(error)) return
    this.reported.add(error)
    this.events.emit('server:misbehaving', { error })
  }

  /** Close the session (not the store) after a failed start; the client may start again. */
  private async disconnect(): Promise<void> {
    if (this.retryTimer !== undefined) this.timers().clearTimeout(this.retryTimer)
    this.retryTimer = undefined
    this.unsubscribe?.()
    this.unsubscribe = undefined
    this.connectionUsable = false
    const connection = this.connection
    this.connection = undefined
    await connection?.close().catch(() => undefined)
    this.setConnectionState('offline')
  }

  /** @internal After `createMlsClient` failed to start it: nothing left open, nothing restarts; the caller's store stays open. */
  async abandon(): Promise<void> {
    await this.disconnect()
    this.closed = true
  }

  /**
   * Fetch and verify the device lists of a Welcome's members a few at a time, before the join checks every
   * member's credential against its list one after the other (each then finds its list verified in memory).
   * Only the order and concurrency of the fetches change: a list that fails here is fetched and judged again by
   * that check, which decides, and nothing fails here (a Welcome that does not decrypt fails in the join).
   */
  private async prefetchDeviceLists(welcome: Welcome, keyPackage: KeyPackage, initPrivateKey: Uint8Array): Promise<void> {
    let users: string[]
    try {
      users = await welcomeMemberUsers(welcome, keyPackage, initPrivateKey, this.cs, this.init.credentials ?? basicCredentials)
    } catch {
      return
    }
    await eachLimited(users, DEVICE_LIST_PREFETCH, async (userId) => void (await this.contacts.current(userId)))
  }

  /** Groups ordered by their last traffic, most recent first (never-active groups last, in their order). */
  private byActivity(groups: Group[]): Group[] {
    const at = (g: Group) => this.activity?.get(g.groupIdHex) ?? 0
    return groups.map((g, index) => ({ g, index })).sort((a, b) => at(b.g) - at(a.g) || a.index - b.index).map((x) => x.g)
  }

  private touch(group: Group): void {
    this.activity ??= new Map()
    this.activity.set(group.groupIdHex, this.now())
    this.activityChanged = true
  }

  /** One small record, written after a sync and at close (a lost update only costs sync order). */
  private async saveActivity(): Promise<void> {
    if (!this.activityChanged || this.activity === undefined) return
    this.activityChanged = false
    const known = Object.fromEntries([...this.activity].filter(([gid]) => this.groups.has(gid)))
    // Relaxed: a power loss that undoes it only changes the order of the next syncs.
    await this.init.store.write([{ type: 'put', key: storeKeys.groupActivity, value: encodeRecord(known) }], { durability: 'relaxed' })
  }

  private setConnectionState(state: ConnectionState, cause?: unknown): void {
    if (this.closed || this.state === state) return
    this.state = state
    this.events.emit('connection:state', cause === undefined ? { state } : { state, cause })
  }

  /** Keep `group` and forward its events to the client-wide stream. */
  private adopt(group: Group): Group {
    this.groups.set(group.groupIdHex, group)
    group.on('message:received', (message) => {
      this.touch(group)
      this.events.emit('message:received', { group, message })
    })
    group.on('message:rejected', (event) => this.events.emit('message:rejected', { ...event, group }))
    group.on('epoch:changed', (event) => this.events.emit('epoch:changed', { ...event, group }))
    group.on('members:changed', (event) => this.events.emit('members:changed', { ...event, group }))
    group.on('group:removed', (event) => this.events.emit('group:removed', { ...event, group }))
    group.on('status:changed', (event) => this.events.emit('status:changed', { ...event, group }))
    return group
  }

  private async welcomeCursor(): Promise<number> {
    const bytes = await this.init.store.get(storeKeys.welcomeCursor)
    return bytes === undefined ? 0 : decodeRecord<number>(bytes, 'welcome cursor')
  }

  private async storedKeyPackages(): Promise<{ key: string; record: KeyPackageStoreRecord }[]> {
    return (await this.init.store.list(storeKeys.keyPackagePrefix)).map((e) => ({
      key: e.key,
      record: decodeRecord<KeyPackageStoreRecord>(e.value, 'KeyPackage')
    }))
  }

  private async newKeyPackage(): Promise<{ keyPackage: KeyPackage; privatePackage: PrivateKeyPackage }> {
    const nowSeconds = BigInt(Math.floor((this.init.now?.() ?? Date.now()) / 1000))
    const lifetime = BigInt(this.init.keyPackages?.lifetimeSeconds ?? 28 * 24 * 3600)
    return newKeyPackage(
      credentialUnder(this.init.credentials ?? basicCredentials, this.clientId),
      { notBefore: nowSeconds - 3600n, notAfter: nowSeconds + lifetime },
      // A copy: the private package (and a group created from it) owns what it holds.
      { signKey: this.identity.signaturePrivateKey.slice(), publicKey: this.identity.signaturePublicKey },
      this.cs
    )
  }

  private async generateKeyPackage(lastResort: boolean): Promise<{ ref: string; message: Uint8Array; record: KeyPackageStoreRecord }> {
    const { keyPackage, privatePackage } = await this.newKeyPackage()
    const encoded = await keyPackageMessage(keyPackage, this.cs)
    const ref = toHex(encoded.ref)
    const message = encoded.message
    return {
      ref,
      message,
      record: {
        lastResort,
        createdAt: this.init.now?.() ?? Date.now(),
        keyPackage: message,
        initPrivateKey: privatePackage.initPrivateKey,
        hpkePrivateKey: privatePackage.hpkePrivateKey
      }
    }
  }

  /** Pin the server's external sender on first use; report (and keep the pin) when it changed. */
  private async pinServer(advertised: ServerExternalSender | undefined): Promise<void> {
    const pinned = this.pinnedServer
    if (pinned === undefined) {
      if (advertised === undefined) return
      const copy = { ciphersuite: advertised.ciphersuite, signaturePublicKey: advertised.signaturePublicKey.slice(), credential: advertised.credential.slice() }
      await this.init.store.write([{ type: 'put', key: storeKeys.serverSender, value: encodeRecord(copy) }])
      this.pinnedServer = copy
      return
    }
    if (advertised !== undefined && sameExternalSender(pinned, advertised)) return
    const error = new MessageError('SERVER_KEY_CHANGED', advertised === undefined ? 'The server no longer advertises the external-sender key this client pinned' : 'The server advertises another external-sender key than the one this client pinned', {
      details: { reason: advertised === undefined ? 'not-advertised' : 'different-key' }
    })
    this.events.emit('server:key-changed', { error, pinned, advertised })
  }

  /**
   * The login key a transport presents (`ServerBinding.serverKey`; none or
   * empty: nothing to check). Another than the pinned one is reported, and
   * with `serverLoginKeyChange: 'refuse'` refused with `SERVER_KEY_CHANGED`.
   */
  private checkLoginKey(presented: Uint8Array | undefined): Uint8Array | undefined {
    if (presented === undefined || presented.length === 0) return undefined
    const pinned = this.pinnedLoginKey
    if (pinned === undefined || equalBytes(pinned, presented)) return presented.slice()
    const refuse = this.init.serverLoginKeyChange === 'refuse'
    const error = new MessageError('SERVER_KEY_CHANGED', `The server presents another login key than the one this client pinned${refuse ? '; the login is refused' : ''}`, {
      details: { reason: 'login-key-changed' }
    })
    const hex = toHex(presented)
    if (this.reportedLoginKey !== hex) {
      this.reportedLoginKey = hex
      this.events.emit('server:login-key-changed', { error, pinned: pinned.slice(), presented: presented.slice() })
    }
    if (refuse) throw error
    return presented.slice()
  }

  /** Pin the login key of the first server this client logged in to. */
  private async pinLoginKey(presented: Uint8Array | undefined): Promise<void> {
    if (presented === undefined || this.pinnedLoginKey !== undefined) return
    await this.init.store.write([{ type: 'put', key: storeKeys.serverLoginKey, value: encodeRecord({ serverKey: presented }) }])
    this.pinnedLoginKey = presented
  }

  /** The pinned server external sender when the current connection advertises it and it signs with this client's scheme. */
  private currentServerSender(): ServerExternalSender | undefined {
    const pinned = this.pinnedServer
    const advertised = this.connection?.externalSender
    if (pinned === undefined || advertised === undefined || !sameExternalSender(pinned, advertised)) return undefined
    if (!isCiphersuiteName(pinned.ciphersuite)) return undefined
    const theirs = ciphersuiteNamed(pinned.ciphersuite)
    const ours = ciphersuiteNamed(this.ciphersuite)
    return theirs.signature === ours.signature ? pinned : undefined
  }

  /** What every group of this client is built with, made once: the channel resolves the current connection per call. */
  private components(): GroupComponents {
    return (this.groupComponents ??= {
      clientId: this.clientId,
      validator: this.init.credentials ?? basicCredentials,
      serverSender: () => this.pinnedServer,
      store: this.init.store,
      channel: {
        createGroup: (...a) => this.requireConnection().channel.createGroup(...a),
        postCommit: (...a) => this.requireConnection().channel.postCommit(...a),
        postMessage: (...a) => this.requireConnection().channel.postMessage(...a),
        postProposal: (...a) => this.requireConnection().channel.postProposal(...a),
        fetchEntries: (...a) => this.requireConnection().channel.fetchEntries(...a),
        fetchWelcomes: (...a) => this.requireConnection().channel.fetchWelcomes(...a),
        fetchGroupInfo: (...a) => this.requireConnection().channel.fetchGroupInfo(...a),
        subscribe: (...a) => this.requireConnection().channel.subscribe(...a)
      },
      cs: this.cs,
      clientConfig: this.clientConfig,
      maxCommitAttempts: this.init.maxCommitAttempts ?? 5,
      replayWindow: 1024,
      maxWaitingMessages: 256,
      durableInbox: this.init.durableInbox ?? false
    })
  }

  private requireConnection(): Connection {
    if (this.closed) throw new UsageError('INVALID_STATE', 'The client is closed')
    if (this.connection === undefined) {
      // Before the first connection it is the caller's mistake; after it, a lost connection is this client's own trouble.
      if (!this.everConnected) throw new UsageError('INVALID_STATE', 'The client is not connected')
      throw new TransportError('TRANSPORT_UNAVAILABLE', 'The client is not connected; it is reconnecting')
    }
    return this.connection
  }

  // ---- device lists (docs/trust-model.md)

  /** @internal The verified, pinned device lists of users this client has seen. */
  get contacts(): ContactBook {
    this.contactBook ??= new ContactBook({
      store: this.init.store,
      directory: () => this.directory,
      suites: this.suiteResolver(),
      validator: this.init.credentials ?? basicCredentials,
      onChange: (change) => this.events.emit('contact:changed', change)
    })
    return this.contactBook
  }

  /**
   * On a new device: the request to carry to a listed device of the same user
   * (as bytes, a QR code say). It names this device and its signature key and
   * is signed with it. The listed device approves it with `linkDevice`.
   */
  async linkRequest(): Promise<Uint8Array> {
    return createDeviceLinkRequest(this.userId, this.deviceSigner())
  }

  /**
   * On a listed device: approve a new device of this user from its link
   * request. Signs an `add` entry, publishes it, and returns the new list.
   * `DEVICE_LIST_INVALID` for a request of another user, a bad signature, a
   * device id used before, or a device the Directory has not registered with
   * that key; `INVALID_STATE` when this device is not listed itself.
   */
  async linkDevice(request: Uint8Array): Promise<VerifiedDeviceList> {
    return this.changeOwnList((list) => createAddEntry(list, request, this.deviceSigner(), this.suiteResolver(), { now: this.now() }))
  }

  /**
   * On a listed device: remove another device (or this one) from this
   * user's list, so nobody adds it to groups any more. It does not remove the
   * device from groups it is in: use `group.removeMembers` for that.
   */
  async removeDevice(clientId: ClientId): Promise<VerifiedDeviceList> {
    return this.changeOwnList((list) => createRemoveEntry(list, clientId, this.deviceSigner(), { now: this.now() }))
  }

  /** The verified device list of `userId` (this client's own user included), checked against the pin. */
  async deviceList(userId: string = this.userId): Promise<VerifiedDeviceList> {
    return this.contacts.refresh(userId)
  }

  /** The safety number of `userId` (default: this client's user) over its verified device list, to compare out of band. */
  async fingerprint(userId: string = this.userId): Promise<string> {
    await this.contacts.refresh(userId)
    return this.contacts.fingerprint(userId)
  }

  /**
   * Accept the device list the Directory serves now for `userId` as the new
   * pin, after `contact:changed` reported it `replaced` and the user checked
   * the new fingerprint out of band.
   */
  async trustDeviceList(userId: string): Promise<VerifiedDeviceList> {
    return this.contacts.trust(userId)
  }

  private async changeOwnList(build: (list: VerifiedDeviceList) => Promise<Uint8Array>): Promise<VerifiedDeviceList> {
    const list = await this.contacts.refresh(this.userId)
    if (!list.devices.some((d) => d.clientId === this.clientId)) {
      throw new UsageError('INVALID_STATE', `${this.clientId} is not in its user's device list; only a listed device can change it`)
    }
    await this.directory.publishDeviceListEntry(await build(list))
    return this.contacts.refresh(this.userId)
  }

  private async collectKeyPackages(userIds: readonly string[]): Promise<{ keyPackages: ValidatedKeyPackage[]; skipped: SkippedDevice[] }> {
    return collectKeyPackages(userIds, {
      contacts: this.contacts,
      directory: this.directory,
      validator: this.init.credentials ?? basicCredentials,
      ciphersuite: this.ciphersuite,
      cs: this.cs,
      onSkip: (skipped) => this.events.emit('device:skipped', skipped)
    })
  }

  private deviceSigner(): DeviceSigner {
    return {
      device: { clientId: this.clientId, signaturePublicKey: this.identity.signaturePublicKey, ciphersuite: this.identity.ciphersuite },
      signaturePrivateKey: this.identity.signaturePrivateKey,
      cs: this.cs
    }
  }

  private suiteResolver(): SuiteResolver {
    const crypto = this.init.crypto
    return async (name) => {
      if (!isCiphersuiteName(name) || !crypto.supports(name)) return undefined
      return crypto.getCiphersuiteImpl(ciphersuiteNamed(name))
    }
  }

  private now(): number {
    return this.init.now?.() ?? Date.now()
  }

  /** The invitations waiting for the app's decision (`welcomePolicy` answered `ask`), oldest first. */
  async invitations(): Promise<Invitation[]> {
    return (await this.init.store.list(storeKeys.invitationPrefix)).map((e) => decodeRecord<InvitationRecord>(e.value, 'invitation').invitation).sort((a, b) => a.id - b.id)
  }

  /**
   * Join the group of a pending invitation (checked again, as a Welcome from
   * the mailbox) and catch it up. `INVALID_ARGUMENT` for an unknown id;
   * `WELCOME_INVALID` when it can no longer be joined (the invitation is then dropped).
   */
  async acceptInvitation(id: number): Promise<Group> {
    const record = await this.invitationRecord(id)
    const group = await this.welcomeLock.run(() => this.joinFromWelcome(record.entry, 'invitation'))
    if (group === undefined) throw new MessageError('WELCOME_INVALID', 'Welcome rejected')
    this.touch(group)
    await group.sync().catch((error: unknown) => this.backgroundFailure(error))
    return group
  }

  /** Drop a pending invitation without joining; a one-time KeyPackage it used is deleted. `INVALID_ARGUMENT` for an unknown id. */
  async declineInvitation(id: number): Promise<void> {
    await this.welcomeLock.run(async () => {
      const record = await this.invitationRecord(id)
      const operations: StoreOperation[] = [{ type: 'delete', key: storeKeys.invitation(id) }]
      if (record.keyPackageKey !== undefined) operations.push({ type: 'delete', key: record.keyPackageKey })
      await this.init.store.write(operations)
      this.events.emit('welcome:declined', { invitation: record.invitation })
    })
  }

  private async invitationRecord(id: number): Promise<InvitationRecord> {
    if (!Number.isSafeInteger(id)) throw new UsageError('INVALID_ARGUMENT', 'An invitation id is an integer')
    const bytes = await this.init.store.get(storeKeys.invitation(id))
    if (bytes === undefined) throw new UsageError('INVALID_ARGUMENT', `No pending invitation ${id}`)
    return decodeRecord<InvitationRecord>(bytes, 'invitation')
  }

  /** The app's decision on an invitation; a policy that throws or answers nonsense means `ask`. */
  private async decide(invitation: Invitation): Promise<WelcomeDecision> {
    try {
      const decision = await this.init.welcomePolicy?.(invitation)
      return decision === 'accept' || decision === 'decline' ? decision : 'ask'
    } catch {
      return 'ask'
    }
  }

  /**
   * Join from a Welcome handed over outside the channel (an MLSMessage), for
   * a group whose log is on this client's Group Channel; `commitSeq` is the
   * channel position of the commit that added this client (where the group's
   * log starts for it). The Welcome is checked exactly as one from the
   * mailbox: it must be for a KeyPackage of this client, and every member's
   * credential must pass the Authentication Service (verified device lists).
   * Resolves with the group in `joining` (sync it to catch up); throws
   * `WELCOME_INVALID` for a Welcome it refuses, changing nothing. The mailbox
   * cursor does not move; if the same Welcome later arrives through the
   * mailbox, it is rejected there as a group already joined.
   */
  async joinWelcome(welcome: Uint8Array, options: { commitSeq: number }): Promise<Group> {
    if (!(welcome instanceof Uint8Array)) throw new UsageError('INVALID_ARGUMENT', 'welcome must be bytes')
    if (!Number.isSafeInteger(options?.commitSeq) || options.commitSeq < 0) throw new UsageError('INVALID_ARGUMENT', 'commitSeq must be a non-negative integer')
    const group = await this.welcomeLock.run(() => this.joinFromWelcome({ seq: 0, groupId: new Uint8Array(), welcome, commitSeq: options.commitSeq }, 'out-of-band'))
    if (group === undefined) throw new MessageError('WELCOME_INVALID', 'Welcome rejected')
    return group
  }

  // ---- devices outside the Directory (docs/interop.md)

  /**
   * Vouch for a device outside the toolkit's device lists (another
   * implementation's client whose id and key the app checked by its own
   * means): from now on this client's Authentication Service accepts a
   * credential naming `clientId` with exactly this key, as it accepts a device
   * of a verified list. Every member of a group the device joins must vouch
   * for it (or its commits are refused there). `INVALID_ARGUMENT` for an id
   * the credential validator refuses.
   */
  async vouchForDevice(device: VouchedDevice): Promise<void> {
    const validator = this.init.credentials ?? basicCredentials
    if (!(device?.signaturePublicKey instanceof Uint8Array) || device.signaturePublicKey.length === 0) {
      throw new UsageError('INVALID_ARGUMENT', 'signaturePublicKey must be non-empty bytes')
    }
    validator.parseClientId(device.clientId)
    await this.init.store.write([vouchOperation(device, this.now())])
  }

  /**
   * Validate a KeyPackage obtained outside the Directory, in either framing
   * (an MLSMessage or the bare `KeyPackage` other implementations hand out),
   * with the Directory path's checks: version, this client's ciphersuite, a
   * credential the validator reads as a client id, lifetime, capabilities, an
   * init key distinct from the leaf key, and both signatures. Throws
   * `KEY_PACKAGE_INVALID` (`details.reason`) and records nothing.
   */
  async validateKeyPackage(keyPackage: Uint8Array): Promise<ValidatedKeyPackage> {
    return validateKeyPackageBytes(keyPackage, {
      validator: this.init.credentials ?? basicCredentials,
      ciphersuite: this.ciphersuite,
      cs: this.cs,
      nowSeconds: BigInt(Math.floor(this.now() / 1000))
    })
  }

  /**
   * Add devices from KeyPackages the app obtained outside the Directory and
   * vouches for (`vouchForDevice` is recorded for each). Every KeyPackage is
   * validated first (`validateKeyPackage`); one that fails throws
   * `KEY_PACKAGE_INVALID` and nothing is vouched or committed. The server
   * accepts the commit when each device is a registered identity of the key
   * its KeyPackage carries (docs/interop.md); the other members accept it
   * when they vouch for the devices too.
   */
  async addKeyPackages(group: Group, keyPackages: readonly Uint8Array[]): Promise<CommitOutcome> {
    if (!Array.isArray(keyPackages) || keyPackages.length === 0) throw new UsageError('INVALID_ARGUMENT', 'Nothing to add')
    const validated: ValidatedKeyPackage[] = []
    for (const bytes of keyPackages) validated.push(await this.validateKeyPackage(bytes))
    const now = this.now()
    await this.init.store.write(validated.map((v) => vouchOperation({ clientId: v.clientId, signaturePublicKey: v.keyPackage.leafNode.signaturePublicKey }, now)))
    return group.addMembers(validated)
  }

  /**
   * A one-time KeyPackage (an MLSMessage) to hand over outside the Directory,
   * e.g. to another implementation's client that adds this device. Its
   * private keys are kept like a published one's, so a Welcome for it (from
   * the mailbox or `joinWelcome`) can be joined; it is not uploaded.
   */
  async createKeyPackage(): Promise<Uint8Array> {
    const { ref, message, record } = await this.generateKeyPackage(false)
    await this.init.store.write([{ type: 'put', key: storeKeys.keyPackage(ref), value: encodeRecord(record) }])
    return message.slice()
  }
}

/**
 * Create (first run) or load (later runs) the client of one device. The
 * identity, KeyPackages and groups live in `store`; the first connection
 * registers the identity with the Directory, proving possession of the
 * signature key. Unless `init.start` is `false`, the client connects and
 * catches up before this resolves; with `start: false`, attach listeners and
 * call `client.start()`.
 */
export async function createMlsClient(init: MlsClientInit): Promise<MlsClient> {
  const crypto = assertCryptoProvider(init.crypto)
  if (init.store.specificationVersion !== CLIENT_STORE_SPECIFICATION_VERSION) {
    throw new UsageError('UNSUPPORTED_SPECIFICATION', `Unknown client store specification ${String(init.store.specificationVersion)}`)
  }
  clientIdUnder(init.credentials ?? basicCredentials, init.userId, init.deviceId)
  if (init.serverLoginKeyChange !== undefined && init.serverLoginKeyChange !== 'report' && init.serverLoginKeyChange !== 'refuse') {
    throw new UsageError('INVALID_ARGUMENT', `serverLoginKeyChange must be 'report' or 'refuse', got ${String(init.serverLoginKeyChange)}`)
  }
  let identity: IdentityRecord
  const stored = await init.store.get(storeKeys.identity)
  if (stored !== undefined) {
    identity = decodeRecord<IdentityRecord>(stored, 'identity')
    if (identity.userId !== init.userId || identity.deviceId !== init.deviceId) {
      throw new UsageError('INVALID_ARGUMENT', `The store holds the identity ${identity.userId}/${identity.deviceId}`)
    }
    if (init.ciphersuite !== undefined && init.ciphersuite !== identity.ciphersuite) {
      throw new UsageError('INVALID_ARGUMENT', `The stored identity uses ${identity.ciphersuite}`)
    }
  } else {
    const suite = init.ciphersuite ?? DEFAULT_CIPHERSUITE
    if (!crypto.supports(suite)) {
      throw new UsageError('UNSUPPORTED_CIPHERSUITE', `Crypto provider '${crypto.name}' does not support ciphersuite ${suite}`)
    }
    const cs = await crypto.getCiphersuiteImpl(ciphersuiteNamed(suite))
    const keys = await cs.signature.keygen()
    identity = {
      userId: init.userId,
      deviceId: init.deviceId,
      ciphersuite: suite,
      signaturePublicKey: keys.publicKey,
      signaturePrivateKey: keys.signKey,
      registered: false
    }
    await init.store.write([{ type: 'put', key: storeKeys.identity, value: encodeRecord(identity) }])
  }
  const cs = await crypto.getCiphersuiteImpl(ciphersuiteNamed(identity.ciphersuite))
  const holder: { client?: MlsClient } = {}
  const clientConfig: ClientConfig = {
    keyRetentionConfig: {
      retainKeysForEpochs: init.retainEpochs ?? 4,
      retainKeysForGenerations: init.retainGenerations ?? 10,
      maximumForwardRatchetSteps: 200
    },
    lifetimeConfig: defaultLifetimeConfig,
    keyPackageEqualityConfig: defaultKeyPackageEqualityConfig,
    paddingConfig: defaultPaddingConfig,
    authService: new DirectoryAuthenticationService(
      () => {
        if (holder.client === undefined) throw new UsageError('INVALID_STATE', 'Client not started')
        return holder.client.contacts
      },
      init.credentials ?? basicCredentials,
      () => holder.client?.serverExternalSender,
      (clientId, key) => isVouched(init.store, clientId, key)
    )
  }
  const client = new MlsClient(init, cs, identity, clientConfig)
  holder.client = client
  await client.load()
  if (init.start !== false) {
    try {
      await client.start()
    } catch (error) {
      // The caller never gets this client: leave nothing open or scheduled (its store stays the caller's).
      await client.abandon()
      throw error
    }
  }
  return client
}

const TRANSPORT_CODES: ReadonlySet<string> = new Set(['TRANSPORT_CLOSED', 'TRANSPORT_TIMEOUT', 'TRANSPORT_PROTOCOL', 'TRANSPORT_UNAVAILABLE'])

function isTransportFailure(error: unknown): boolean {
  return MlsToolkitError.isInstance(error) && TRANSPORT_CODES.has(error.code)
}
