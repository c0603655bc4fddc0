import type {
  CiphersuiteImpl,
  CiphersuiteName,
  ClientConfig,
  ClientState,
  Credential,
  Extension,
  FramedContent,
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
  emptyPskIndex,
  generateKeyPackageWithKey,
  getCiphersuiteFromName,
  mlsExporter,
  zeroOutUint8Array
} from 'ts-mls'
import { encodeCredential } from 'ts-mls/credential.js'
import { makeKeyPackageRef } from 'ts-mls/keyPackage.js'
import {
  createApplicationMessage,
  createCommit,
  createGroup,
  encodeGroupState,
  encodeMlsMessage,
  joinGroup,
  processPublicMessage,
  unprotectPrivateMessage,
  unprotectPublicMessage
} from './ts-mls-fixes.js'
import type { ClientId } from './interfaces/common.js'
import type { CredentialValidator } from './identity.js'
import type { Member } from './group-types.js'

/**
 * The one adapter between the client and group code and ts-mls: every ts-mls
 * call of group.ts and client.ts goes through here (members, leaves, retained
 * epochs, encryption, commits, verification, secrets, KeyPackages, creating
 * and joining groups), through the patched modules where core carries a fix
 * (ts-mls-fixes.ts).
 */

/** ts-mls's default settings that a client's configuration starts from. */
export { defaultKeyPackageEqualityConfig, defaultLifetimeConfig, defaultPaddingConfig } from 'ts-mls'

/** The members of a state's ratchet tree, ordered by leaf index. */
export function membersOf(state: ClientState, validator: CredentialValidator): Member[] {
  const out: Member[] = []
  state.ratchetTree.forEach((node, nodeIndex) => {
    if (nodeIndex % 2 !== 0 || node?.nodeType !== 'leaf') return
    const clientId = validator.clientIdFromCredential(node.leaf.credential)
    if (clientId === undefined) return
    const { userId, deviceId } = validator.parseClientId(clientId)
    out.push({ leafIndex: nodeIndex / 2, clientId, userId, deviceId, signaturePublicKey: node.leaf.signaturePublicKey })
  })
  return out
}

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

/** Create a commit (a PublicMessage with the ratchet tree in its Welcome) of `proposals` plus every pending one. */
export async function createCommitMessages(
  state: ClientState,
  proposals: Proposal[],
  cs: CiphersuiteImpl
): Promise<{ commit: Uint8Array; welcome: Uint8Array | undefined; newState: ClientState; consumed: Uint8Array[] }> {
  const result = await createCommit({ state, cipherSuite: cs }, { extraProposals: proposals, wireAsPublicMessage: true, ratchetTreeExtension: true })
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
  const result = await generateKeyPackageWithKey(credential, defaultCapabilities(), lifetime, [], signatureKeys, cs)
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
