import type { AbortOptions, ClientId, GroupRecord, PublicStateRecord, ServerStore } from '@mls/core/interfaces'
import { MlsToolkitError, ServiceError, equalBytes, externalSendersOf, type CredentialValidator } from '@mls/core'
import type { AuthenticationService, CiphersuiteImpl, GroupInfo } from '@mls/core/mls'
import {
  checkGroupInfo,
  decodePublicGroupState,
  encodePublicGroupState,
  publicGroupFromGroupInfo,
  publicGroupMembers,
  type PublicGroupState
} from '@mls/core/public-group'
import { decodeMessage, type Suites } from './suites.js'

/** A group's public state as the channel holds it in memory. */
export interface LoadedPublicState {
  readonly state: PublicGroupState
  readonly cs: CiphersuiteImpl
  readonly groupInfo: Uint8Array | undefined
  /** The encoded state as stored: a proposal is appended only while the store still holds exactly these bytes (compare-and-set). */
  readonly stored: Uint8Array
}

/** A core `MessageError` from the public-group verifier, as the service's typed error (same code and details). */
export function asServiceError(error: unknown): unknown {
  if (MlsToolkitError.isInstance(error) && !(error instanceof ServiceError)) {
    return new ServiceError(error.code, error.message, { cause: error, ...(error.details === undefined ? {} : { details: error.details }) })
  }
  return error
}

/**
 * The AuthenticationService of the channel: a credential is valid when the
 * server's credential validator accepts it and it names a client the
 * Directory registered with exactly this signature key.
 */
export function directoryAuthService(store: ServerStore, validator: CredentialValidator, options: AbortOptions | undefined): AuthenticationService {
  return {
    async validateCredential(credential, signaturePublicKey) {
      const clientId = validator.clientIdFromCredential(credential)
      if (clientId === undefined) return false
      const identity = await store.getIdentity(clientId, options)
      return identity !== undefined && equalBytes(identity.signaturePublicKey, signaturePublicKey)
    }
  }
}

/** Decode an uploaded GroupInfo (an `mls_group_info` MLSMessage). */
export function readGroupInfo(bytes: Uint8Array, suites: Suites): GroupInfo {
  const message = decodeMessage(bytes)
  if (message === undefined || message.wireformat !== 'mls_group_info') {
    throw new ServiceError('INVALID_MESSAGE', 'The GroupInfo is not a decodable mls_group_info MLSMessage', { details: { reason: 'invalid-group-info' } })
  }
  if (message.version !== 'mls10') throw new ServiceError('INVALID_MESSAGE', 'The GroupInfo is not MLS 1.0', { details: { reason: 'invalid-group-info' } })
  const suite = message.groupInfo.groupContext.cipherSuite
  if (!suites.isAccepted(suite)) {
    throw new ServiceError('UNSUPPORTED_CIPHERSUITE', `The group uses ciphersuite ${String(suite)}, which is not accepted`)
  }
  return message.groupInfo
}

/**
 * The public state of a group the caller creates, from the signed GroupInfo
 * (with its ratchet tree) it uploads: a valid tree whose only leaf (leaf 0)
 * is the caller with its registered key, for this group id, signed by leaf 0.
 * Usually epoch 0; a later epoch is accepted while the creator is still alone
 * (another implementation's client that exposes a GroupInfo only with a
 * commit, such as OpenMLS through core-crypto: docs/interop.md).
 */
export async function initialPublicState(
  caller: ClientId,
  groupId: Uint8Array,
  groupInfoBytes: Uint8Array,
  deps: { store: ServerStore; suites: Suites; validator: CredentialValidator; options: AbortOptions | undefined }
): Promise<PublicStateRecord> {
  const groupInfo = readGroupInfo(groupInfoBytes, deps.suites)
  const refuse = (message: string): ServiceError => new ServiceError('INVALID_MESSAGE', message, { details: { reason: 'invalid-group-info' } })
  const context = groupInfo.groupContext
  if (!equalBytes(context.groupId, groupId)) throw refuse('The GroupInfo is for another group')
  const cs = await deps.suites.impl(context.cipherSuite)
  let state: PublicGroupState
  try {
    state = await publicGroupFromGroupInfo(groupInfo, cs, { authService: directoryAuthService(deps.store, deps.validator, deps.options) })
  } catch (error) {
    throw asServiceError(error)
  }
  const members = publicGroupMembers(state)
  if (members.length !== 1 || members[0]?.leafIndex !== 0 || deps.validator.clientIdFromCredential(members[0].leafNode.credential) !== caller) {
    throw refuse("A new group's tree has exactly one leaf, leaf 0, holding the creator")
  }
  if (externalSendersOf(context.extensions) === undefined) throw refuse('The external_senders extension does not decode')
  return { epoch: context.epoch, state: encodePublicGroupState(state), groupInfo: groupInfoBytes.slice() }
}

/** Check an uploaded GroupInfo against the public state it must describe. */
export async function checkUploadedGroupInfo(state: PublicGroupState, bytes: Uint8Array, suites: Suites, cs: CiphersuiteImpl): Promise<void> {
  const groupInfo = readGroupInfo(bytes, suites)
  try {
    await checkGroupInfo(state, groupInfo, cs)
  } catch (error) {
    throw asServiceError(error)
  }
}

/**
 * Public states by group, read from the store and kept for the groups in use.
 * Like the group records, exact for one server process because every commit
 * of a group goes through the channel under that group's mutex.
 */
export class PublicStates {
  private readonly cache = new Map<string, LoadedPublicState & { epoch: bigint }>()

  constructor(
    private readonly store: ServerStore,
    private readonly suites: Suites,
    private readonly capacity: number
  ) {}

  async load(group: GroupRecord, options: AbortOptions | undefined): Promise<LoadedPublicState> {
    const loaded = await this.loadIfAny(group, options)
    if (loaded === undefined) {
      throw new ServiceError('INVALID_STATE', `Group ${group.groupId} has no public state (it was created without a GroupInfo), so its commits cannot be verified`)
    }
    return loaded
  }

  /** The public state, or `undefined` for a group created before the channel kept one (server store schema 1). */
  async loadIfAny(group: GroupRecord, options: AbortOptions | undefined): Promise<LoadedPublicState | undefined> {
    const cached = this.cache.get(group.groupId)
    if (cached !== undefined && cached.epoch === group.epoch) return cached
    const record = await this.store.getPublicState(group.groupId, options)
    if (record === undefined) return undefined
    if (record.epoch !== group.epoch) {
      throw new ServiceError('STORAGE_CORRUPT', `The public state of group ${group.groupId} is for epoch ${record.epoch}, the group is at ${group.epoch}`)
    }
    const state = decodePublicGroupState(record.state)
    if (state === undefined) throw new ServiceError('STORAGE_CORRUPT', `The public state of group ${group.groupId} does not decode`)
    const suite = state.groupContext.cipherSuite
    if (!this.suites.isAccepted(suite)) throw new ServiceError('UNSUPPORTED_CIPHERSUITE', `Group ${group.groupId} uses ciphersuite ${String(suite)}, which is not accepted`)
    const loaded = { state, cs: await this.suites.impl(suite), groupInfo: record.groupInfo, epoch: record.epoch, stored: record.state }
    this.remember(group.groupId, loaded)
    return loaded
  }

  /** Remember the state a stored commit led to. */
  remember(groupHex: string, loaded: LoadedPublicState & { epoch: bigint }): void {
    if (this.capacity <= 0) return
    this.cache.delete(groupHex)
    if (this.cache.size >= this.capacity) this.cache.delete(this.cache.keys().next().value as string)
    this.cache.set(groupHex, loaded)
  }

  forget(groupHex: string): void {
    this.cache.delete(groupHex)
  }
}
