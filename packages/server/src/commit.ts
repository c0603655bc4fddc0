import type { AccessWindow, ClientId, GroupRecord, RosterEntry } from '@mls/core/interfaces'
import { ServiceError, equalBytes, toHex, type CredentialValidator } from '@mls/core'
import { makeKeyPackageRef, type Commit, type KeyPackage, type Proposal, type PublicMessage } from '@mls/core/mls'
import { decodeMessage, type Suites } from './suites.js'

/** A commit as the channel reads it from its PublicMessage. */
export interface ReadCommit {
  readonly epoch: bigint
  /** The sender's leaf; `undefined` for an external commit. */
  readonly senderLeaf: number | undefined
  /** An external commit (`new_member_commit` sender, RFC 9420 section 12.4.3.2). */
  readonly external: boolean
  readonly commit: Commit
  /** The proposals it carries by value (by-reference ones are resolved by the verifier). */
  readonly proposals: readonly Proposal[]
  /** The decoded PublicMessage, for the public-group verifier. */
  readonly message: PublicMessage
}

function invalid(message: string, details?: Record<string, unknown>): ServiceError {
  return new ServiceError('INVALID_MESSAGE', message, details === undefined ? undefined : { details })
}

/** Decode a posted commit; everything that does not need the group's state. */
export function readCommit(bytes: Uint8Array, groupId: Uint8Array, epoch: bigint): ReadCommit {
  const message = decodeMessage(bytes)
  if (message === undefined) throw invalid('The commit is not a decodable MLSMessage', { reason: 'undecodable' })
  if (message.version !== 'mls10') throw invalid('The commit is not MLS 1.0')
  if (message.wireformat !== 'mls_public_message') {
    throw invalid(`A commit must be an mls_public_message, got ${message.wireformat}`, { reason: 'not-a-commit', wireformat: message.wireformat })
  }
  const { content } = message.publicMessage
  if (content.contentType !== 'commit') throw invalid(`Expected a commit, got ${content.contentType} content`, { reason: 'not-a-commit' })
  if (!equalBytes(content.groupId, groupId)) throw invalid('The commit is for another group', { reason: 'wrong-group' })
  if (content.epoch !== epoch) throw invalid(`The commit is for epoch ${content.epoch}, the request says ${epoch}`)
  const sender = content.sender
  if (sender.senderType !== 'member' && sender.senderType !== 'new_member_commit') {
    throw invalid(`A commit is sent by a member or, for an external commit, a new member; the sender is ${sender.senderType}`, { reason: 'unknown-sender' })
  }
  const external = sender.senderType === 'new_member_commit'
  const proposals: Proposal[] = []
  for (const item of content.commit.proposals) {
    // Proposals by reference are resolved against the channel's pending proposals by the verifier.
    if (item.proposalOrRefType !== 'proposal') continue
    const type = item.proposal.proposalType
    if (type === 'update') throw invalid('A commit cannot carry an Update by value; use an update path', { reason: 'invalid-proposals' })
    if (type === 'external_init' && !external) throw invalid('Only an external commit carries ExternalInit', { reason: 'invalid-proposals' })
    proposals.push(item.proposal)
  }
  return {
    epoch: content.epoch,
    senderLeaf: sender.senderType === 'member' ? sender.leafIndex : undefined,
    external,
    commit: content.commit,
    proposals,
    message: message.publicMessage
  }
}

export interface RosterChange {
  readonly roster: RosterEntry[]
  readonly access: AccessWindow[]
  readonly removed: ClientId[]
  /** Added clients by the hex ref of the KeyPackage that added them. */
  readonly added: Map<string, ClientId>
}

/**
 * Apply a commit's Removes, then its Adds, to the roster (RFC 9420 order);
 * access windows use -1 for "this commit's seq". Each Add must use a
 * KeyPackage the Directory served for the client its credential names, or
 * one the Directory never served (obtained out of band, vouched for by the
 * committer's app: docs/interop.md) whose leaf carries the key that client
 * registered with (the proof of possession made at its login).
 */
export async function applyToRoster(
  group: GroupRecord,
  committer: RosterEntry,
  proposals: readonly Proposal[],
  deps: {
    suites: Suites
    validator: CredentialValidator
    servedTo: (ref: string) => Promise<ClientId | undefined>
    registeredKey: (clientId: ClientId) => Promise<Uint8Array | undefined>
  }
): Promise<RosterChange> {
  const byLeaf = new Map(group.roster.map((e) => [e.leafIndex, e.clientId]))
  const removed: ClientId[] = []
  for (const p of proposals) {
    if (p.proposalType !== 'remove') continue
    const leaf = p.remove.removed
    const clientId = byLeaf.get(leaf)
    if (clientId === undefined) throw invalid(`Remove of leaf ${leaf}, which is blank`)
    if (leaf === committer.leafIndex) throw invalid('A member cannot commit its own removal')
    byLeaf.delete(leaf)
    removed.push(clientId)
  }
  const present = new Set(byLeaf.values())
  const added = new Map<string, ClientId>()
  for (const p of proposals) {
    if (p.proposalType !== 'add') continue
    const kp: KeyPackage = p.add.keyPackage
    const clientId = deps.validator.clientIdFromCredential(kp.leafNode.credential)
    if (clientId === undefined) throw invalid(`An added KeyPackage does not carry a credential the '${deps.validator.name}' validator accepts`)
    if (present.has(clientId)) throw invalid(`${clientId} is already a member`)
    if (!deps.suites.isAccepted(kp.cipherSuite)) throw invalid(`An added KeyPackage uses ciphersuite ${kp.cipherSuite}, which is not accepted`)
    const impl = await deps.suites.impl(kp.cipherSuite)
    const ref = toHex(await makeKeyPackageRef(kp, impl.hash))
    const servedTo = await deps.servedTo(ref)
    if (servedTo === undefined) {
      const registered = await deps.registeredKey(clientId)
      if (registered === undefined || !equalBytes(registered, kp.leafNode.signaturePublicKey)) {
        throw invalid(`The KeyPackage adding ${clientId} was not served by the Directory, and ${clientId} is not registered with its key`, { reason: 'key-package-not-registered', ref })
      }
    } else if (servedTo !== clientId) {
      throw invalid(`The KeyPackage adding ${clientId} was not handed out by the Directory for that client`, { reason: 'key-package-not-served', ref })
    }
    let leaf = 0
    while (byLeaf.has(leaf)) leaf++
    byLeaf.set(leaf, clientId)
    present.add(clientId)
    added.set(ref, clientId)
  }
  const roster = [...byLeaf].map(([leafIndex, clientId]) => ({ leafIndex, clientId })).sort((a, b) => a.leafIndex - b.leafIndex)
  const removedSet = new Set(removed)
  const access: AccessWindow[] = group.access.map((w) =>
    w.untilSeq === null && removedSet.has(w.clientId) ? { clientId: w.clientId, fromSeq: w.fromSeq, untilSeq: -1 } : { ...w }
  )
  for (const clientId of added.values()) access.push({ clientId, fromSeq: -1, untilSeq: null })
  return { roster, access, removed, added }
}

/** Check the Welcome of a commit that adds `added` and return its recipients. */
export function welcomeRecipients(welcome: Uint8Array | undefined, added: ReadonlyMap<string, ClientId>): ClientId[] {
  if (added.size === 0) {
    if (welcome !== undefined) throw new ServiceError('WELCOME_INVALID', 'A Welcome was sent with a commit that adds nobody')
    return []
  }
  if (welcome === undefined) throw new ServiceError('WELCOME_INVALID', 'A commit that adds members needs a Welcome')
  const message = decodeMessage(welcome)
  if (message === undefined || message.wireformat !== 'mls_welcome') {
    throw new ServiceError('WELCOME_INVALID', 'The Welcome is not a decodable mls_welcome MLSMessage')
  }
  const recipients = new Set<ClientId>()
  const covered = new Set<string>()
  for (const secret of message.welcome.secrets) {
    const ref = toHex(secret.newMember)
    const clientId = added.get(ref)
    if (clientId === undefined) throw new ServiceError('WELCOME_INVALID', 'The Welcome is addressed to a KeyPackage the commit does not add', { details: { ref } })
    covered.add(ref)
    recipients.add(clientId)
  }
  for (const [ref, clientId] of added) {
    if (!covered.has(ref)) throw new ServiceError('WELCOME_INVALID', `The Welcome has no secrets for added member ${clientId}`, { details: { ref } })
  }
  return [...recipients]
}
