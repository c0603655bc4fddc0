import { expect } from 'vitest'
import type { ChannelEvent, ClientId, CryptoProvider, ServerStore } from '@mls/core/interfaces'
import {
  createAddEntry,
  createClaimEntry,
  createDeviceLinkRequest,
  credentialFor,
  parseClientId,
  signChallenge,
  tsMlsDefaultCrypto,
  utf8,
  verifyDeviceList,
  type CredentialValidator,
  type DeviceSigner,
  type SuiteResolver
} from '@mls/core'
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  decodeMlsMessage,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  encodeKeyPackage,
  encodeMlsMessage,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  joinGroup,
  signWithLabel,
  type CiphersuiteImpl,
  type CiphersuiteName,
  type ClientState,
  type Credential,
  type Extension,
  type KeyPackage,
  type Lifetime,
  type PrivateKeyPackage,
  type Proposal,
  type PublicMessage
} from '@mls/core/mls'
import { framedContentTbs, signFramedContentTBS } from '@mls/core/mls-internals'
import { memoryServerStore } from '@mls/storage-memory'
import { createServices, type AuthenticationHook, type ServiceLimits, type Services, type ServicesInit } from '../src/index.js'

export const SUITE: CiphersuiteName = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'

export interface Harness {
  crypto: CryptoProvider
  cs: CiphersuiteImpl
  store: ServerStore
  services: Services
  clock: { now: number }
  /** The first (claiming) device of each user, which links the user's later devices. */
  claimed: Map<string, TestClient>
  suites: SuiteResolver
}

let sharedCrypto: CryptoProvider | undefined

export async function harness(
  options: {
    limits?: Partial<ServiceLimits>
    ciphersuites?: CiphersuiteName[]
    authentication?: AuthenticationHook
    credentials?: CredentialValidator
    externalSender?: ServicesInit['externalSender']
  } = {}
): Promise<Harness> {
  sharedCrypto ??= tsMlsDefaultCrypto()
  const crypto = sharedCrypto
  const cs = await crypto.getCiphersuiteImpl(getCiphersuiteFromName(SUITE))
  const store = memoryServerStore()
  const clock = { now: Date.UTC(2026, 0, 1) }
  const services = createServices({
    store,
    crypto,
    limits: options.limits,
    ciphersuites: options.ciphersuites,
    now: () => clock.now,
    ...(options.authentication === undefined ? {} : { authentication: options.authentication }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    ...(options.externalSender === undefined ? {} : { externalSender: options.externalSender })
  })
  const suites: SuiteResolver = async (name) => crypto.getCiphersuiteImpl(getCiphersuiteFromName(name as CiphersuiteName))
  return { crypto, cs, store, services, clock, claimed: new Map(), suites }
}

export async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code })
}

export interface KeyPair {
  signKey: Uint8Array
  publicKey: Uint8Array
}

/** Authenticate with a fresh challenge, signing with `signKey` (by default the client's own). */
export async function authenticate(
  h: Harness,
  clientId: ClientId,
  keys: KeyPair,
  register: boolean,
  options: { signWith?: Uint8Array; signAs?: ClientId; source?: string } = {}
): Promise<ClientId> {
  const challenge = h.services.auth.challenge()
  const signature = await signChallenge(challenge, options.signAs ?? clientId, options.signWith ?? keys.signKey, h.cs)
  return h.services.auth.authenticate({ clientId, signaturePublicKey: keys.publicKey, ciphersuite: SUITE, register, source: options.source }, challenge, signature)
}

export interface GeneratedKeyPackage {
  publicPackage: KeyPackage
  privatePackage: PrivateKeyPackage
  bytes: Uint8Array
}

export function encodeKeyPackageMessage(kp: KeyPackage): Uint8Array {
  return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: kp })
}

/** Re-sign a KeyPackage after changing fields of its TBS (to forge well-signed but invalid ones). */
export async function resignKeyPackage(kp: KeyPackage, changes: Partial<KeyPackage>, signKey: Uint8Array, cs: CiphersuiteImpl): Promise<KeyPackage> {
  const tbs = { ...kp, ...changes }
  const tbsBytes = encodeKeyPackage({ ...tbs, signature: new Uint8Array(0) }).slice(0, -1)
  return { ...tbs, signature: await signWithLabel(signKey, 'KeyPackageTBS', tbsBytes, cs.signature) }
}

/** A registered client with its signature key, KeyPackages it generated, and the events pushed to it. */
export class TestClient {
  readonly events: ChannelEvent[] = []
  private readonly privateKeys = new Map<string, GeneratedKeyPackage>()
  unsubscribe: () => void = () => {}

  private constructor(
    readonly h: Harness,
    readonly clientId: ClientId,
    readonly keys: KeyPair
  ) {}

  /**
   * Register, then join the user's device list as a real client does: the
   * first device of a user claims it, later ones are linked by that device.
   * `listed: false` leaves the device out of the list (an outsider's id).
   */
  static async register(h: Harness, clientId: ClientId, options: { listed?: boolean } = {}): Promise<TestClient> {
    const keys = await h.cs.signature.keygen()
    const client = new TestClient(h, clientId, keys)
    expect(await authenticate(h, clientId, keys, true)).toBe(clientId)
    client.unsubscribe = h.services.subscribe(clientId, (event) => client.events.push(event))
    if (options.listed !== false) {
      const { userId } = parseClientId(clientId)
      const first = h.claimed.get(userId)
      if (first === undefined) {
        await h.services.directory.publishDeviceListEntry(clientId, await createClaimEntry(userId, client.signer()))
        h.claimed.set(userId, client)
      } else {
        const list = await verifyDeviceList(await h.services.directory.fetchDeviceList(clientId, userId), { userId, suites: h.suites })
        const request = await createDeviceLinkRequest(userId, client.signer())
        await h.services.directory.publishDeviceListEntry(first.clientId, await createAddEntry(list, request, first.signer(), h.suites))
      }
    }
    return client
  }

  signer(): DeviceSigner {
    return { device: { clientId: this.clientId, signaturePublicKey: this.keys.publicKey, ciphersuite: SUITE }, signaturePrivateKey: this.keys.signKey, cs: this.h.cs }
  }

  async keyPackage(options: { lifetime?: Lifetime; credential?: Credential; keys?: KeyPair; cs?: CiphersuiteImpl } = {}): Promise<GeneratedKeyPackage> {
    const kp = await generateKeyPackageWithKey(
      options.credential ?? credentialFor(this.clientId),
      defaultCapabilities(),
      options.lifetime ?? defaultLifetime,
      [],
      options.keys ?? this.keys,
      options.cs ?? this.h.cs
    )
    const generated = { ...kp, bytes: encodeKeyPackageMessage(kp.publicPackage) }
    this.privateKeys.set(bytesKey(generated.bytes), generated)
    return generated
  }

  /** Upload `count` one-time KeyPackages and, optionally, a last-resort one. */
  async upload(count: number, lastResort = false): Promise<GeneratedKeyPackage[]> {
    const kps = await Promise.all(Array.from({ length: count }, () => this.keyPackage()))
    const last = lastResort ? await this.keyPackage() : undefined
    await this.h.services.directory.uploadKeyPackages(this.clientId, { keyPackages: kps.map((k) => k.bytes), lastResort: last?.bytes })
    return last === undefined ? kps : [...kps, last]
  }

  /** The private half of a KeyPackage this client generated, by its encoded bytes. */
  privateFor(bytes: Uint8Array): GeneratedKeyPackage {
    const found = this.privateKeys.get(bytesKey(bytes))
    if (found === undefined) throw new Error('unknown KeyPackage')
    return found
  }

  welcomes(): Uint8Array[] {
    return this.events.flatMap((e) => (e.type === 'welcome:appended' ? [e.entry.welcome] : []))
  }

  entrySeqs(): number[] {
    return this.events.flatMap((e) => (e.type === 'entry:appended' ? [e.entry.seq] : []))
  }
}

function bytesKey(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64')
}

/** A member's MLS state in one group, as a client library would keep it. */
export class Member {
  constructor(
    readonly client: TestClient,
    public state: ClientState
  ) {}

  get epoch(): bigint {
    return this.state.groupContext.epoch
  }

  get groupId(): Uint8Array {
    return this.state.groupContext.groupId
  }

  /** Create the group in MLS and, unless `onServer` is false, on the channel. */
  static async create(client: TestClient, groupId: Uint8Array, onServer = true, extensions: Extension[] = []): Promise<Member> {
    const kp = await client.keyPackage()
    const state = await createGroup(groupId, kp.publicPackage, kp.privatePackage, extensions, client.h.cs)
    if (onServer) await client.h.services.channel.createGroup(client.clientId, groupId, { groupInfo: await groupInfoOf(state, client.h.cs) })
    return new Member(client, state)
  }

  static async join(client: TestClient, welcome: Uint8Array, keyPackage: Uint8Array): Promise<Member> {
    const decoded = decodeMlsMessage(welcome, 0)?.[0]
    if (decoded?.wireformat !== 'mls_welcome') throw new Error('not a welcome')
    const kp = client.privateFor(keyPackage)
    const state = await joinGroup(decoded.welcome, kp.publicPackage, kp.privatePackage, emptyPskIndex, client.h.cs)
    return new Member(client, state)
  }

  /** Fetch the KeyPackages of `userIds` from the Directory as this member. */
  async fetch(...userIds: string[]): Promise<{ clientId: ClientId; keyPackage: Uint8Array; decoded: KeyPackage }[]> {
    const out = []
    for (const userId of userIds) {
      for (const fetched of await this.client.h.services.directory.fetchKeyPackages(this.client.clientId, userId)) {
        const decoded = decodeMlsMessage(fetched.keyPackage, 0)?.[0]
        if (decoded?.wireformat !== 'mls_key_package') throw new Error('not a key package')
        out.push({ clientId: fetched.clientId, keyPackage: fetched.keyPackage, decoded: decoded.keyPackage })
      }
    }
    return out
  }

  /** Create (but do not post) a commit with these proposals. */
  async prepareCommit(proposals: Proposal[] = []): Promise<{ commit: Uint8Array; welcome?: Uint8Array; newState: ClientState; epoch: bigint }> {
    const result = await createCommit(
      { state: this.state, cipherSuite: this.client.h.cs },
      { extraProposals: proposals, wireAsPublicMessage: true, ratchetTreeExtension: true }
    )
    return {
      commit: encodeMlsMessage(result.commit),
      welcome: result.welcome === undefined ? undefined : encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: result.welcome }),
      newState: result.newState,
      epoch: this.epoch
    }
  }

  /** Post a prepared commit; on acceptance adopt the new state (the channel ordered it). */
  async post(prepared: { commit: Uint8Array; welcome?: Uint8Array; newState: ClientState; epoch: bigint }) {
    const result = await this.client.h.services.channel.postCommit(this.client.clientId, this.groupId, {
      epoch: prepared.epoch,
      commit: prepared.commit,
      welcome: prepared.welcome,
      groupInfo: await groupInfoOf(prepared.newState, this.client.h.cs)
    })
    if (result.kind === 'accepted') this.state = prepared.newState
    return result
  }

  async commit(proposals: Proposal[] = []) {
    return this.post(await this.prepareCommit(proposals))
  }

  async message(text: string): Promise<Uint8Array> {
    const result = await createApplicationMessage(this.state, utf8.encode(text), this.client.h.cs)
    this.state = result.newState
    return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_private_message', privateMessage: result.privateMessage })
  }

  async send(text: string): Promise<{ seq: number }> {
    return this.client.h.services.channel.postMessage(this.client.clientId, this.groupId, await this.message(text))
  }

  get leafIndex(): number {
    return this.state.privatePath.leafIndex
  }
}

/** The signed GroupInfo (with ratchet tree and external_pub) of a member's state, as an MLSMessage. */
export async function groupInfoOf(state: ClientState, cs: CiphersuiteImpl): Promise<Uint8Array> {
  const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(state, [], cs)
  return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo })
}

type CommitContent = Extract<PublicMessage['content'], { contentType: 'commit' }>

/**
 * A member's commit changed by `change` and signed again with the member's
 * key: a validly signed commit that says whatever the attacker wants.
 */
export async function forgeCommit(member: Member, commit: Uint8Array, change: (c: CommitContent['commit'], content: CommitContent) => CommitContent['commit'] | CommitContent): Promise<Uint8Array> {
  const message = decodeMlsMessage(commit, 0)?.[0]
  if (message?.wireformat !== 'mls_public_message' || message.publicMessage.content.contentType !== 'commit') throw new Error('not a commit')
  const content = message.publicMessage.content
  const changed = change(content.commit, content)
  const newContent: CommitContent = 'contentType' in changed ? changed : { ...content, commit: changed }
  const cs = member.client.h.cs
  const signature = await signFramedContentTBS(member.state.signaturePrivateKey, framedContentTbs(newContent, 'mls_public_message', member.state.groupContext), cs.signature)
  return encodeMlsMessage({ ...message, publicMessage: { ...message.publicMessage, content: newContent, auth: { ...message.publicMessage.auth, signature } } as PublicMessage })
}

/** The GroupInfo of a new one-member group of `client` with `groupId` (what `createGroup` needs). */
export async function newGroupInfo(client: TestClient, groupId: Uint8Array): Promise<Uint8Array> {
  const kp = await client.keyPackage()
  return groupInfoOf(await createGroup(groupId, kp.publicPackage, kp.privatePackage, [], client.h.cs), client.h.cs)
}

export const add = (keyPackage: KeyPackage): Proposal => ({ proposalType: 'add', add: { keyPackage } })
export const remove = (leafIndex: number): Proposal => ({ proposalType: 'remove', remove: { removed: leafIndex } })

/** A creates a group and adds the given clients (each must have uploaded a KeyPackage); every one joins. */
export async function groupOf(creator: TestClient, others: TestClient[], groupId = utf8.encode(`group-${Math.random()}`), extensions: Extension[] = []) {
  const a = await Member.create(creator, groupId, true, extensions)
  const members: Member[] = [a]
  if (others.length > 0) {
    const fetched = await a.fetch(...others.map((c) => c.clientId.split('/')[0] as string))
    const result = await a.commit(fetched.map((f) => add(f.decoded)))
    expect(result.kind).toBe('accepted')
    for (const other of others) {
      const welcome = other.welcomes().at(-1)
      const kp = fetched.find((f) => f.clientId === other.clientId)
      if (welcome === undefined || kp === undefined) throw new Error(`no Welcome for ${other.clientId}`)
      members.push(await Member.join(other, welcome, kp.keyPackage))
    }
  }
  return { groupId, members }
}
