import { signChallenge, toHex } from '@mls/core'
import type { CiphersuiteImpl } from '@mls/core/mls'
import type { ChannelEntry, Connection, PostCommitResult, Transport } from '@mls/core/interfaces'
import type { OpenMlsCommit, OpenMlsPeer, OpenMlsReceived } from './openmls-peer.js'

/** The suite core-crypto's clients use here (suite 1). */
export const OPENMLS_SUITE = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'

/** MLSMessage framing of a KeyPackage: version mls10 (1), wire format mls_key_package (5). */
const KEY_PACKAGE_FRAME = [0, 1, 0, 5]

/** The bare `KeyPackage` of an MLSMessage-framed one (OpenMLS takes only the bare structure). */
export function bareKeyPackage(message: Uint8Array): Uint8Array {
  if (!KEY_PACKAGE_FRAME.every((byte, i) => message[i] === byte)) throw new Error('Not a KeyPackage MLSMessage')
  return message.slice(KEY_PACKAGE_FRAME.length)
}

/** One channel entry as the OpenMLS peer handled it. */
export interface RelayedEntry {
  /** The entry's log position. */
  readonly seq: number
  /** The entry's sender, as the channel recorded it. */
  readonly sender: string
  /** What OpenMLS made of it; `own` for the peer's own entries (OpenMLS merged its commits when it made them). */
  readonly result: OpenMlsReceived | { readonly kind: 'own' }
}

/** A commit OpenMLS made and the adapter posted: the channel's answer, and the Welcome if it added members. */
export interface RelayedCommit {
  /** The channel's answer (`accepted` with the commit's seq, or `conflict`). */
  readonly result: PostCommitResult
  /** The Welcome (an MLSMessage) of a commit that added members. */
  readonly welcome: Uint8Array | undefined
}

/**
 * The OpenMLS peer as a client of the toolkit's server: this adapter is its
 * transport. It logs in as the peer's device (its Wire client id) with the
 * peer's credential key, registering that id with that key on first login,
 * and relays between OpenMLS and the server: the peer's group creation
 * (with its GroupInfo), commits with their Welcomes and GroupInfos, and
 * application messages go to the Group Channel; channel entries and
 * Welcomes from the mailbox go to OpenMLS. Nothing in it speaks MLS: the
 * bytes are OpenMLS's and the server's.
 */
export class OpenMlsDevice {
  private readonly cursors = new Map<string, number>()
  private welcomeCursor = 0

  private constructor(
    /** The OpenMLS client. */
    readonly peer: OpenMlsPeer,
    /** The peer's session with the server. */
    readonly connection: Connection
  ) {}

  /** Log the peer in through `transport` (registering its id with its credential key on first use). */
  static async connect(peer: OpenMlsPeer, transport: Transport, cs: CiphersuiteImpl): Promise<OpenMlsDevice> {
    const seed = await peer.signingKey()
    const connection = await transport.connect({
      clientId: peer.clientId,
      signaturePublicKey: await peer.signaturePublicKey(),
      ciphersuite: OPENMLS_SUITE,
      register: true,
      signChallenge: (challenge, binding) => signChallenge(challenge, peer.clientId, seed, cs, binding)
    })
    return new OpenMlsDevice(peer, connection)
  }

  /** The peer's client id (its credential's identity). */
  get clientId(): string {
    return this.peer.clientId
  }

  /** A KeyPackage of the peer, bare (as OpenMLS hands it out). */
  keyPackage(): Promise<Uint8Array> {
    return this.peer.keyPackage()
  }

  /**
   * OpenMLS creates the group; the channel gets it with the GroupInfo of the
   * peer's first commit (an update while alone: core-crypto exposes a
   * GroupInfo only with a commit), so the log starts at epoch 1.
   */
  async createGroup(groupId: Uint8Array): Promise<void> {
    await this.peer.createGroup(groupId)
    const first = await this.peer.update(groupId)
    await this.connection.channel.createGroup(groupId, { groupInfo: first.groupInfo })
    this.cursors.set(toHex(groupId), 0)
  }

  /**
   * OpenMLS adds members by KeyPackage (bare; an MLSMessage-framed one is
   * unwrapped) and the commit goes to the channel with its Welcome; the
   * result carries the Welcome too (to hand over out of band).
   */
  async add(groupId: Uint8Array, keyPackages: readonly Uint8Array[]): Promise<RelayedCommit> {
    const bare = keyPackages.map((kp) => (KEY_PACKAGE_FRAME.every((byte, i) => kp[i] === byte) ? bareKeyPackage(kp) : kp))
    return this.post(groupId, (epoch) => this.peer.add(groupId, bare).then((commit) => ({ commit, epoch })))
  }

  /** OpenMLS commits an update of its leaf, posted to the channel. */
  async update(groupId: Uint8Array): Promise<RelayedCommit> {
    return this.post(groupId, (epoch) => this.peer.update(groupId).then((commit) => ({ commit, epoch })))
  }

  /** OpenMLS removes members by client id, posted to the channel. */
  async remove(groupId: Uint8Array, clientIds: readonly string[]): Promise<RelayedCommit> {
    return this.post(groupId, (epoch) => this.peer.remove(groupId, clientIds).then((commit) => ({ commit, epoch })))
  }

  /** OpenMLS encrypts an application message, posted to the channel. */
  async send(groupId: Uint8Array, text: string): Promise<{ seq: number }> {
    return this.connection.channel.postMessage(groupId, await this.peer.send(groupId, text))
  }

  /** Feed OpenMLS every channel entry after its cursor, in order; returns what it made of each. */
  async catchUp(groupId: Uint8Array): Promise<RelayedEntry[]> {
    const key = toHex(groupId)
    const out: RelayedEntry[] = []
    for (;;) {
      const cursor = this.cursors.get(key) ?? 0
      const entries: ChannelEntry[] = await this.connection.channel.fetchEntries(groupId, cursor, { limit: 100 })
      if (entries.length === 0) return out
      for (const entry of entries) {
        if (entry.seq <= (this.cursors.get(key) ?? 0)) continue
        const own = entry.sender === this.clientId && entry.kind !== 'proposal'
        out.push({ seq: entry.seq, sender: entry.sender, result: own ? { kind: 'own' } : await this.peer.receive(groupId, entry.message) })
        this.cursors.set(key, entry.seq)
      }
    }
  }

  /** Join every group of a Welcome in the peer's mailbox; returns the group ids. */
  async joinFromMailbox(): Promise<Uint8Array[]> {
    const joined: Uint8Array[] = []
    for (const entry of await this.connection.channel.fetchWelcomes(this.welcomeCursor, { limit: 100 })) {
      this.welcomeCursor = entry.seq
      const groupId = await this.peer.join(entry.welcome)
      this.cursors.set(toHex(groupId), entry.commitSeq)
      joined.push(groupId)
    }
    return joined
  }

  /** End the peer's session. */
  close(): Promise<void> {
    return this.connection.close()
  }

  /** Run an OpenMLS commit (it merges at once) and post it with its Welcome and GroupInfo; the peer's cursor moves past it. */
  private async post(groupId: Uint8Array, make: (epoch: bigint) => Promise<{ commit: OpenMlsCommit; epoch: bigint }>): Promise<RelayedCommit> {
    // Everything before the commit is processed first, as any member must before committing.
    await this.catchUp(groupId)
    const { commit, epoch } = await make(await this.peer.epoch(groupId))
    const result = await this.connection.channel.postCommit(groupId, {
      epoch,
      commit: commit.commit,
      groupInfo: commit.groupInfo,
      ...(commit.welcome === undefined ? {} : { welcome: commit.welcome })
    })
    return { result, welcome: commit.welcome }
  }
}
