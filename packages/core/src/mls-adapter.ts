import type {
  CiphersuiteImpl,
  CiphersuiteName,
  ClientConfig,
  ClientState,
  Credential,
  Extension,
  FramedContent,
  GroupInfo,
  KeyPackage,
  Lifetime,
  MLSMessage,
  PrivateKeyPackage,
  PrivateMessage,
  Proposal,
  PublicMessage,
  Welcome
} from 'ts-mls'
import {
  ciphersuites,
  decodeMlsMessage,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  mlsExporter,
  zeroOutUint8Array
} from 'ts-mls'
import { encodeCredential } from 'ts-mls/credential.js'
import { makeKeyPackageRef } from 'ts-mls/keyPackage.js'
import { makeProposalRef, type AuthenticatedContent } from 'ts-mls/authenticatedContent.js'
import { encodeLeafNodeTBS, type LeafNodeTBS } from 'ts-mls/leafNode.js'
import { signWithLabel } from 'ts-mls/crypto/signature.js'
import { base64ToBytes, bytesToBase64 } from 'ts-mls/util/byteArray.js'
import { accumulatePskSecret } from 'ts-mls/pskIndex.js'
import { decryptGroupInfo, decryptGroupSecrets } from 'ts-mls/welcome.js'
import {
  createApplicationMessage,
  createCommit,
  createProposal,
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  encodeGroupState,
  encodeMlsMessage,
  joinGroup,
  joinGroupExternal,
  processMessage,
  processPublicMessage,
  ratchetTreeFromExtension,
  unprotectPrivateMessage,
  unprotectPublicMessage
} from './ts-mls-fixes.js'
import type { ClientId } from './interfaces/common.js'
import type { CredentialValidator } from './identity.js'
import type { Member } from './group-types.js'
import { MessageError } from './errors.js'

/**
 * The one adapter between the client and group code and ts-mls: every ts-mls
 * call of the group code (group.ts, group-receive.ts, group-state.ts,
 * proposals.ts, welcome-policy.ts, group-info.ts, recovery/) and client.ts
 * goes through here (members, leaves, retained epochs, encryption, commits,
 * proposals, verification, secrets, KeyPackages, creating and joining
 * groups), through the patched modules where core carries a fix
 * (ts-mls-fixes.ts). The record codec (group-records.ts,
 * group-persistence.ts) encodes with ts-mls's codec building blocks itself.
 * The lint configuration enforces it: group code may import only types from
 * ts-mls.
 */

/**
 * The GroupContext extension that carries a group's handshake wire format
 * (a private-use type, RFC 9420 section 17.3): present with the single byte
 * 1 when the group's commits and proposals are sent as PrivateMessages.
 * Absent means PublicMessages (the default). Every member sees it, and so
 * does the channel in the creator's GroupInfo; our KeyPackages list it in
 * their capabilities so that they may join such a group.
 */
export const HANDSHAKE_WIRE_FORMAT_EXTENSION = 0xf0a1

/** How a group sends its commits and proposals. */
export type HandshakeWireFormat = 'public' | 'private'

/** The GroupContext extension for `private` handshakes. */
export function privateHandshakesExtension(): Extension {
  return { extensionType: HANDSHAKE_WIRE_FORMAT_EXTENSION, extensionData: new Uint8Array([1]) }
}

/** The handshake wire format a GroupContext's extensions ask for. */
export function handshakeWireFormatOf(extensions: readonly Extension[]): HandshakeWireFormat {
  const found = extensions.find((e) => e.extensionType === HANDSHAKE_WIRE_FORMAT_EXTENSION)
  return found !== undefined && found.extensionData.length === 1 && found.extensionData[0] === 1 ? 'private' : 'public'
}

/** ts-mls's default settings that a client's configuration starts from. */
export { defaultKeyPackageEqualityConfig, defaultLifetimeConfig, defaultPaddingConfig } from 'ts-mls'

/** The members of a state's ratchet tree, ordered by leaf index. */
export function membersOf(state: ClientState, validator: CredentialValidator): Member[] {
  let named = namedLeaves.get(validator)
  if (named === undefined) namedLeaves.set(validator, (named = new WeakMap()))
  const out: Member[] = []
  state.ratchetTree.forEach((node, nodeIndex) => {
    if (nodeIndex % 2 !== 0 || node?.nodeType !== 'leaf') return
    let name = named.get(node.leaf)
    if (name === undefined) {
      const clientId = validator.clientIdFromCredential(node.leaf.credential)
      name = clientId === undefined ? null : { clientId, ...validator.parseClientId(clientId) }
      named.set(node.leaf, name)
    }
    if (name === null) return
    out.push({ leafIndex: nodeIndex / 2, clientId: name.clientId, userId: name.userId, deviceId: name.deviceId, signaturePublicKey: node.leaf.signaturePublicKey })
  })
  return out
}

/**
 * What a validator read from each leaf node, by leaf node object: ts-mls shares the unchanged nodes between a
 * state and the next, so listing the members after a commit parses only the leaves it changed (each credential
 * was decoded and checked once per member per listing before: 15% of adding a member to a 1,000-member group).
 * A validator's reading of a credential depends on nothing else.
 */
const namedLeaves = new WeakMap<CredentialValidator, WeakMap<object, { clientId: ClientId; userId: string; deviceId: string } | null>>()

/** The client at a leaf, if the leaf holds one. */
export function memberAtLeaf(tree: ClientState['ratchetTree'], leafIndex: number, validator: CredentialValidator): ClientId | undefined {
  const node = tree[leafIndex * 2]
  return node?.nodeType === 'leaf' ? validator.clientIdFromCredential(node.leaf.credential) : undefined
}

/**
 * The pending state's records of past epochs (the epoch it was created in and
 * the retained ones before it) are snapshots taken when the commit was
 * created. Messages processed since then advanced (and zeroed, as consumed)
 * the current state's secret trees, so the snapshots are stale and may share
 * zeroed buffers: take each epoch's receiver data from the current state.
 */
export function withCurrentHistory(pendingState: ClientState, current: ClientState | undefined, epoch: bigint): ClientState {
  if (current === undefined || current.groupContext.epoch !== epoch) return pendingState
  const historical = new Map(pendingState.historicalReceiverData)
  for (const [past, data] of pendingState.historicalReceiverData) {
    if (past === epoch) historical.set(past, { ...data, secretTree: current.secretTree })
    else {
      const fresher = current.historicalReceiverData.get(past)
      if (fresher !== undefined) historical.set(past, fresher)
    }
  }
  return { ...pendingState, historicalReceiverData: historical }
}


/** Zero secrets that ts-mls reported consumed (or that the group no longer needs). */
export function zeroAll(secrets: Iterable<Uint8Array>): void {
  for (const secret of secrets) zeroOutUint8Array(secret)
}

/** Zero a state's epoch secrets and its copy of the signing key: the state is discarded. */
export function wipeState(state: ClientState, options: { signingKey: boolean }): void {
  zeroAll(Object.values(state.keySchedule))
  if (options.signingKey) zeroOutUint8Array(state.signaturePrivateKey)
}

/** The `group/<id>/state` record of a ts-mls state. */
export function encodeState(state: ClientState): Uint8Array {
  return encodeGroupState(state)
}

/** The MLS exporter (RFC 9420 section 8.5) of the state's epoch. */
export function exportSecret(state: ClientState, label: string, context: Uint8Array, length: number, cs: CiphersuiteImpl): Promise<Uint8Array> {
  return mlsExporter(state.keySchedule.exporterSecret, label, context, length, cs)
}

/** Encrypt an application message in the state's epoch: the encoded PrivateMessage and the advanced state. */
export async function encryptApplication(
  state: ClientState,
  plaintext: Uint8Array,
  cs: CiphersuiteImpl
): Promise<{ message: Uint8Array; newState: ClientState; consumed: Uint8Array[] }> {
  const result = await createApplicationMessage(state, plaintext, cs)
  const message = encodeMlsMessage({ version: 'mls10', wireformat: 'mls_private_message', privateMessage: result.privateMessage })
  return { message, newState: result.newState, consumed: result.consumed }
}

/** Create a commit (a PublicMessage, or a PrivateMessage where the group's policy says so, with the ratchet tree in its Welcome) of `proposals` plus every pending one. */
export async function createCommitMessages(
  state: ClientState,
  proposals: Proposal[],
  cs: CiphersuiteImpl
): Promise<{ commit: Uint8Array; welcome: Uint8Array | undefined; newState: ClientState; consumed: Uint8Array[] }> {
  const wireAsPublicMessage = handshakeWireFormatOf(state.groupContext.extensions) === 'public'
  const result = await createCommit({ state, cipherSuite: cs }, { extraProposals: proposals, wireAsPublicMessage, ratchetTreeExtension: true })
  const welcome = result.welcome === undefined ? undefined : encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: result.welcome })
  return { commit: encodeMlsMessage(result.commit), welcome, newState: result.newState, consumed: result.consumed }
}

/** Verify a handshake message's membership tag and signature against the state's epoch (the patched ts-mls check). */
export async function verifyPublicMessage(state: ClientState, message: PublicMessage, cs: CiphersuiteImpl): Promise<void> {
  await unprotectPublicMessage(state.keySchedule.membershipKey, state.groupContext, state.ratchetTree, message, cs)
}

/** Process a commit or proposal (the patched ts-mls `processPublicMessage`, no PSKs). */
export function processHandshake(state: ClientState, message: PublicMessage, cs: CiphersuiteImpl): ReturnType<typeof processPublicMessage> {
  return processPublicMessage(state, message, emptyPskIndex, cs)
}

/**
 * Decrypt a commit or proposal sent as a PrivateMessage of the state's epoch,
 * to inspect it before processing: its content and authentication (the
 * signature verified). The state is not advanced (processing decrypts again).
 */
export async function openPrivateHandshake(state: ClientState, message: PrivateMessage, cs: CiphersuiteImpl): Promise<{ content: FramedContent; auth: AuthenticatedContent['auth'] }> {
  const retention = state.clientConfig.keyRetentionConfig
  const r = await unprotectPrivateMessage(state.keySchedule.senderDataSecret, message, state.secretTree, state.ratchetTree, state.groupContext, retention, cs)
  return { content: r.content.content, auth: r.content.auth }
}

/**
 * Process a commit or proposal sent as a PrivateMessage (decrypt, verify the
 * signature, apply; the patched ts-mls `processMessage`, no PSKs).
 */
export async function processPrivateHandshake(
  state: ClientState,
  message: PrivateMessage,
  cs: CiphersuiteImpl
): Promise<{ newState: ClientState; actionTaken: string; consumed: Uint8Array[] }> {
  const result = await processMessage({ wireformat: 'mls_private_message', privateMessage: message }, state, emptyPskIndex, () => 'accept', cs)
  if (result.kind !== 'newState') throw new Error('Not a handshake message')
  return { newState: result.newState, actionTaken: result.actionTaken, consumed: result.consumed }
}

/**
 * Decrypt a PrivateMessage of the state's epoch or of a retained past one.
 * Returns its content, the tree of its epoch (to name the sender), and the
 * state with that epoch's secret tree advanced.
 */
export async function decryptPrivateMessage(
  state: ClientState,
  message: PrivateMessage,
  cs: CiphersuiteImpl
): Promise<{ content: FramedContent; ratchetTree: ClientState['ratchetTree']; newState: ClientState; consumed: Uint8Array[] } | undefined> {
  const retention = state.clientConfig.keyRetentionConfig
  if (message.epoch < state.groupContext.epoch) {
    const past = state.historicalReceiverData.get(message.epoch)
    if (past === undefined) return undefined
    const r = await unprotectPrivateMessage(past.senderDataSecret, message, past.secretTree, past.ratchetTree, past.groupContext, retention, cs)
    const historical = new Map(state.historicalReceiverData)
    historical.set(message.epoch, { ...past, secretTree: r.tree })
    return { content: r.content.content, ratchetTree: past.ratchetTree, newState: { ...state, historicalReceiverData: historical }, consumed: r.consumed }
  }
  const r = await unprotectPrivateMessage(state.keySchedule.senderDataSecret, message, state.secretTree, state.ratchetTree, state.groupContext, retention, cs)
  return { content: r.content.content, ratchetTree: state.ratchetTree, newState: { ...state, secretTree: r.tree }, consumed: r.consumed }
}

/** True when `name` is a ciphersuite ts-mls knows. */
export function isCiphersuiteName(name: string): name is CiphersuiteName {
  return name in ciphersuites
}

/** The ts-mls ciphersuite of a name, for a crypto provider to implement. */
export function ciphersuiteNamed(name: CiphersuiteName): ReturnType<typeof getCiphersuiteFromName> {
  return getCiphersuiteFromName(name)
}

/** Decode the MLSMessage at the start of `bytes`, or `undefined` when it is not one. */
export function decodeLeadingMessage(bytes: Uint8Array): MLSMessage | undefined {
  return decodeMlsMessage(bytes, 0)?.[0]
}

/** A new KeyPackage of `credential` signed with the given key pair (default capabilities, no extensions). */
export async function newKeyPackage(
  credential: Credential,
  lifetime: Lifetime,
  signatureKeys: { signKey: Uint8Array; publicKey: Uint8Array },
  cs: CiphersuiteImpl
): Promise<{ keyPackage: KeyPackage; privatePackage: PrivateKeyPackage }> {
  const capabilities = defaultCapabilities()
  // Able to join groups with private handshakes (the extension's type must be in every member's capabilities).
  const withPolicy = { ...capabilities, extensions: [...capabilities.extensions, HANDSHAKE_WIRE_FORMAT_EXTENSION] }
  const result = await generateKeyPackageWithKey(credential, withPolicy, lifetime, [], signatureKeys, cs)
  return { keyPackage: result.publicPackage, privatePackage: result.privatePackage }
}

/** A KeyPackage's reference (RFC 9420 section 5.2) and its `mls_key_package` MLSMessage. */
export async function keyPackageMessage(keyPackage: KeyPackage, cs: CiphersuiteImpl): Promise<{ ref: Uint8Array; message: Uint8Array }> {
  const ref = await makeKeyPackageRef(keyPackage, cs.hash)
  return { ref, message: encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage }) }
}

/** A new group at epoch 0 with its creator as the only member (patched ts-mls `createGroup`). */
export function createGroupState(
  groupId: Uint8Array,
  keyPackage: KeyPackage,
  privatePackage: PrivateKeyPackage,
  cs: CiphersuiteImpl,
  clientConfig: ClientConfig,
  extensions: Extension[] = []
): Promise<ClientState> {
  return createGroup(groupId, keyPackage, privatePackage, extensions, cs, clientConfig)
}

/** The encoding of an MLS Credential (RFC 9420 section 5.3). */
export function encodeCredentialBytes(credential: Credential): Uint8Array {
  return encodeCredential(credential)
}

/** The state of a group joined from a Welcome (patched ts-mls `joinGroup`: the RFC's unmerged-leaves rule; no PSKs). */
export function joinGroupState(
  welcome: Welcome,
  keyPackage: KeyPackage,
  privateKeys: PrivateKeyPackage,
  cs: CiphersuiteImpl,
  clientConfig: ClientConfig
): Promise<ClientState> {
  return joinGroup(welcome, keyPackage, privateKeys, emptyPskIndex, cs, undefined, undefined, clientConfig)
}

/**
 * The signed GroupInfo of the state's epoch as an `mls_group_info`
 * MLSMessage, with the `ratchet_tree` and `external_pub` extensions (patched
 * ts-mls: the tree is encoded without recursion).
 */
export async function signedGroupInfoMessage(state: ClientState, cs: CiphersuiteImpl): Promise<Uint8Array> {
  const groupInfo = await createGroupInfoWithExternalPubAndRatchetTree(state, [], cs)
  return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo })
}

/** The GroupInfo of `bytes` when they are exactly one `mls_group_info` MLSMessage, else `undefined`. */
export function decodeGroupInfoMessage(bytes: Uint8Array): GroupInfo | undefined {
  const decoded = decodeMlsMessage(bytes, 0)
  if (decoded === undefined || decoded[1] !== bytes.length || decoded[0].wireformat !== 'mls_group_info') return undefined
  return decoded[0].groupInfo
}

/** A PublicMessage as an `mls_public_message` MLSMessage. */
export function encodePublicMessage(publicMessage: PublicMessage): Uint8Array {
  return encodeMlsMessage({ version: 'mls10', wireformat: 'mls_public_message', publicMessage })
}

/** A KeyPackage for a fresh leaf of `credential` (default capabilities and lifetime), e.g. for an external commit. */
export function freshLeafKeyPackage(
  credential: Credential,
  signatureKeys: { signKey: Uint8Array; publicKey: Uint8Array },
  cs: CiphersuiteImpl
): Promise<{ keyPackage: KeyPackage; privatePackage: PrivateKeyPackage }> {
  return newKeyPackage(credential, defaultLifetime, signatureKeys, cs)
}

/**
 * An external commit (RFC 9420 section 12.4.3.2) from `groupInfo` that
 * brings in the leaf of `keyPackage`; `resync` also removes the device's old
 * leaf, found by its signature key (patched ts-mls `joinGroupExternal`).
 * Throws what ts-mls throws for an unusable GroupInfo.
 */
export function externalCommit(
  groupInfo: GroupInfo,
  leaf: { keyPackage: KeyPackage; privatePackage: PrivateKeyPackage },
  options: { cs: CiphersuiteImpl; clientConfig: ClientConfig; resync: boolean; authenticatedData?: Uint8Array | undefined }
): Promise<{ publicMessage: PublicMessage; newState: ClientState }> {
  return joinGroupExternal(groupInfo, leaf.keyPackage, leaf.privatePackage, options.resync, options.cs, undefined, options.clientConfig, options.authenticatedData)
}

/** The key of a ProposalRef in ts-mls's `unappliedProposals` (base64). */
export function proposalRefKey(reference: Uint8Array): string {
  return bytesToBase64(reference)
}

/** The ProposalRef behind a key of ts-mls's `unappliedProposals`. */
export function proposalRefOfKey(key: string): Uint8Array {
  return base64ToBytes(key)
}

/** The ProposalRef of a proposal as it was framed and signed (RFC 9420 section 5.2). */
export function proposalRefOf(authenticated: AuthenticatedContent, cs: CiphersuiteImpl): Promise<Uint8Array> {
  return makeProposalRef(authenticated, cs.hash)
}

/** A proposal from `state`'s own leaf as an `mls_public_message` MLSMessage, encoded (the state is unchanged). */
export async function publicProposalMessage(state: ClientState, proposal: Proposal, cs: CiphersuiteImpl): Promise<Uint8Array> {
  const created = await createProposal(state, true, proposal, cs)
  const message: MLSMessage = created.message
  return encodeMlsMessage(message)
}

/**
 * A proposal from `state`'s own leaf as an `mls_private_message` MLSMessage:
 * its encoding, its ProposalRef, the state that keeps it (with the advanced
 * secret tree) and the secrets consumed.
 */
export async function privateProposalMessage(
  state: ClientState,
  proposal: Proposal,
  cs: CiphersuiteImpl
): Promise<{ message: Uint8Array; ref: Uint8Array; newState: ClientState; consumed: Uint8Array[] }> {
  const created = await createProposal(state, false, proposal, cs)
  const added = Object.keys(created.newState.unappliedProposals).find((ref) => state.unappliedProposals[ref] === undefined)
  if (added === undefined) throw new MessageError('INTERNAL', 'The proposal was not kept in the state')
  return { message: encodeMlsMessage(created.message), ref: base64ToBytes(added), newState: created.newState, consumed: created.consumed }
}

/** Sign a leaf node's to-be-signed content with `signaturePrivateKey` (label "LeafNodeTBS", RFC 9420 section 7.2). */
export function signLeafNode(signaturePrivateKey: Uint8Array, tbs: LeafNodeTBS, cs: CiphersuiteImpl): Promise<Uint8Array> {
  return signWithLabel(signaturePrivateKey, 'LeafNodeTBS', encodeLeafNodeTBS(tbs), cs.signature)
}

/**
 * The leaf index of the member who signed the GroupInfo inside `welcome`,
 * decrypted with this client's KeyPackage and its init private key;
 * undefined when the Welcome is not for that KeyPackage or does not decrypt.
 */
export async function welcomeSignerLeaf(welcome: Welcome, keyPackage: KeyPackage, initPrivateKey: Uint8Array, cs: CiphersuiteImpl): Promise<number | undefined> {
  return (await welcomeGroupInfo(welcome, keyPackage, initPrivateKey, cs))?.signer
}

/**
 * The user ids `validator` reads from the leaves of the ratchet tree in
 * `welcome`'s GroupInfo (decrypted as `welcomeSignerLeaf` does), each once;
 * [] when it does not decrypt or carries no tree. Nothing here is checked:
 * joining checks it all. It tells what to fetch before that.
 */
export async function welcomeMemberUsers(
  welcome: Welcome,
  keyPackage: KeyPackage,
  initPrivateKey: Uint8Array,
  cs: CiphersuiteImpl,
  validator: CredentialValidator
): Promise<string[]> {
  const groupInfo = await welcomeGroupInfo(welcome, keyPackage, initPrivateKey, cs)
  const tree = groupInfo === undefined ? undefined : ratchetTreeFromExtension(groupInfo)
  const users = new Set<string>()
  for (let i = 0; i < (tree?.length ?? 0); i += 2) {
    const node = tree![i]
    if (node?.nodeType !== 'leaf') continue
    const clientId = validator.clientIdFromCredential(node.leaf.credential)
    if (clientId !== undefined) users.add(validator.parseClientId(clientId).userId)
  }
  return [...users]
}

async function welcomeGroupInfo(welcome: Welcome, keyPackage: KeyPackage, initPrivateKey: Uint8Array, cs: CiphersuiteImpl): Promise<GroupInfo | undefined> {
  const reference = await makeKeyPackageRef(keyPackage, cs.hash)
  const secrets = await decryptGroupSecrets(await cs.hpke.importPrivateKey(initPrivateKey), reference, welcome, cs.hpke)
  if (secrets === undefined) return undefined
  const [pskSecret] = await accumulatePskSecret(secrets.psks, emptyPskIndex, cs, new Uint8Array(cs.kdf.size))
  return decryptGroupInfo(welcome, secrets.joinerSecret, pskSecret, cs)
}
