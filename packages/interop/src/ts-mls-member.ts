import type { CredentialValidator } from '@mls/core'
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  decodeKeyPackage,
  decodeMlsMessage,
  defaultCapabilities,
  defaultClientConfig,
  emptyPskIndex,
  encodeKeyPackage,
  encodeMlsMessage,
  generateKeyPackage,
  joinGroup,
  mlsExporter,
  processMessage,
  type CiphersuiteImpl,
  type ClientConfig,
  type ClientState,
  type KeyPackage,
  type PrivateKeyPackage,
  type Proposal
} from '@mls/core/mls'

/** What this member made of a message it was handed. */
export type TsMlsReceived = { readonly kind: 'application'; readonly plaintext: Uint8Array } | { readonly kind: 'commit'; readonly epoch: bigint }

/**
 * A group member on the toolkit's MLS layer (ts-mls through `@mls/core/mls`,
 * the building blocks `@mls/core`'s client uses), kept minimal so that the
 * interop suite checks the wire: every message goes out and comes in as the
 * bytes of an MLSMessage. Credentials of the other members are checked with
 * the given `CredentialValidator` (ts-mls's authentication-service hook).
 */
export class TsMlsMember {
  private state: ClientState | undefined
  private pending: { keyPackage: KeyPackage; privatePackage: PrivateKeyPackage } | undefined
  private readonly config: ClientConfig

  constructor(
    readonly clientId: string,
    private readonly cs: CiphersuiteImpl,
    validator: CredentialValidator
  ) {
    validator.parseClientId(clientId)
    this.config = {
      ...defaultClientConfig,
      authService: { validateCredential: async (credential) => validator.clientIdFromCredential(credential) !== undefined }
    }
  }

  /** A KeyPackage as the toolkit publishes it (an MLSMessage) and as a bare `KeyPackage`. */
  async keyPackage(): Promise<{ framed: Uint8Array; bare: Uint8Array }> {
    const nowSeconds = BigInt(Math.floor(Date.now() / 1000))
    const result = await generateKeyPackage({ credentialType: 'basic', identity: new TextEncoder().encode(this.clientId) }, defaultCapabilities(), { notBefore: nowSeconds - 3600n, notAfter: nowSeconds + 86_400n }, [], this.cs)
    this.pending = { keyPackage: result.publicPackage, privatePackage: result.privatePackage }
    return {
      framed: encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: result.publicPackage }),
      bare: encodeKeyPackage(result.publicPackage)
    }
  }

  async createGroup(groupId: Uint8Array): Promise<void> {
    await this.keyPackage()
    const { keyPackage, privatePackage } = this.pending!
    this.state = await createGroup(groupId, keyPackage, privatePackage, [], this.cs, this.config)
    this.pending = undefined
  }

  /** Join from a Welcome (an MLSMessage) for the last KeyPackage this member made. */
  async join(welcome: Uint8Array): Promise<Uint8Array> {
    const decoded = decodeMlsMessage(welcome, 0)?.[0]
    if (decoded?.wireformat !== 'mls_welcome') throw new Error('Not a Welcome')
    if (this.pending === undefined) throw new Error('No KeyPackage to join with')
    this.state = await joinGroup(decoded.welcome, this.pending.keyPackage, this.pending.privatePackage, emptyPskIndex, this.cs, undefined, undefined, this.config)
    this.pending = undefined
    return this.state.groupContext.groupId
  }

  /** Add members; the KeyPackages may be MLSMessage-framed or bare. Returns the commit and the Welcome, both MLSMessages. */
  async add(keyPackages: readonly Uint8Array[]): Promise<{ commit: Uint8Array; welcome: Uint8Array }> {
    const proposals: Proposal[] = keyPackages.map((bytes) => ({ proposalType: 'add', add: { keyPackage: readKeyPackage(bytes) } }))
    const result = await this.commit(proposals)
    if (result.welcome === undefined) throw new Error('No Welcome')
    return { commit: result.commit, welcome: result.welcome }
  }

  /** Remove the members whose credentials name these client ids. */
  async remove(clientIds: readonly string[]): Promise<Uint8Array> {
    const proposals: Proposal[] = clientIds.map((id) => ({ proposalType: 'remove', remove: { removed: this.leafOf(id) } }))
    return (await this.commit(proposals)).commit
  }

  /** An empty commit with an update path: a fresh leaf secret. */
  async update(): Promise<Uint8Array> {
    return (await this.commit([])).commit
  }

  async send(text: string): Promise<Uint8Array> {
    const result = await createApplicationMessage(this.requireState(), new TextEncoder().encode(text), this.cs)
    this.state = result.newState
    return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_private_message', privateMessage: result.privateMessage })
  }

  async receive(bytes: Uint8Array): Promise<TsMlsReceived> {
    const decoded = decodeMlsMessage(bytes, 0)?.[0]
    if (decoded === undefined || (decoded.wireformat !== 'mls_private_message' && decoded.wireformat !== 'mls_public_message')) throw new Error('Not a group message')
    const result = await processMessage(decoded, this.requireState(), emptyPskIndex, () => 'accept', this.cs)
    this.state = result.newState
    if (result.kind === 'applicationMessage') return { kind: 'application', plaintext: result.message }
    return { kind: 'commit', epoch: result.newState.groupContext.epoch }
  }

  get epoch(): bigint {
    return this.requireState().groupContext.epoch
  }

  /** True once a commit removed this member. */
  get removed(): boolean {
    return this.requireState().groupActiveState.kind === 'removedFromGroup'
  }

  /** The RFC 9420 exporter; core-crypto's `exportSecretKey` is this with label "exporter" and an empty context. */
  exporterSecret(length: number): Promise<Uint8Array> {
    return mlsExporter(this.requireState().keySchedule.exporterSecret, 'exporter', new Uint8Array(), length, this.cs)
  }

  /** The client ids the ratchet tree's leaves name, sorted. */
  members(): string[] {
    const out: string[] = []
    this.requireState().ratchetTree.forEach((node, index) => {
      if (index % 2 === 0 && node?.nodeType === 'leaf' && node.leaf.credential.credentialType === 'basic') out.push(new TextDecoder().decode(node.leaf.credential.identity))
    })
    return out.sort()
  }

  private async commit(proposals: Proposal[]): Promise<{ commit: Uint8Array; welcome: Uint8Array | undefined }> {
    const result = await createCommit({ state: this.requireState(), cipherSuite: this.cs }, { extraProposals: proposals, wireAsPublicMessage: true, ratchetTreeExtension: true })
    // No delivery service orders these commits: the test hands them to the others, so the committer merges at once.
    this.state = result.newState
    return {
      commit: encodeMlsMessage(result.commit),
      welcome: result.welcome === undefined ? undefined : encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: result.welcome })
    }
  }

  private leafOf(clientId: string): number {
    let leaf: number | undefined
    this.requireState().ratchetTree.forEach((node, index) => {
      if (index % 2 === 0 && node?.nodeType === 'leaf' && node.leaf.credential.credentialType === 'basic' && new TextDecoder().decode(node.leaf.credential.identity) === clientId) leaf = index / 2
    })
    if (leaf === undefined) throw new Error(`${clientId} is not a member`)
    return leaf
  }

  private requireState(): ClientState {
    if (this.state === undefined) throw new Error('Not in a group')
    return this.state
  }
}

/**
 * A KeyPackage from either framing: an MLSMessage (wire format mls_key_package) or the bare structure.
 * A bare KeyPackage starts with version mls10 and its cipher suite, so ts-mls reads most of them as the
 * start of an MLSMessage of another wire format, and its decoder may throw on the bytes that follow:
 * neither attempt may end the read.
 */
export function readKeyPackage(bytes: Uint8Array): KeyPackage {
  const framed = attempt(() => decodeMlsMessage(bytes, 0))
  if (framed !== undefined && framed[1] === bytes.length && framed[0].wireformat === 'mls_key_package') return framed[0].keyPackage
  const bare = attempt(() => decodeKeyPackage(bytes, 0))
  if (bare !== undefined && bare[1] === bytes.length) return bare[0]
  throw new Error('Not a KeyPackage')
}

function attempt<T>(decode: () => T | undefined): T | undefined {
  try {
    return decode()
  } catch {
    return undefined
  }
}
