import type { ClientConfig, ClientState, MLSMessage } from 'ts-mls'
import { decodeMlsMessage } from 'ts-mls'
import { decodeGroupState } from './ts-mls-fixes.js'
import { encodeMlsMessage } from './ts-mls-fixes.js'
import type { EpochReceiverData } from 'ts-mls/epochReceiverData.js'
import type { ClientId } from './interfaces/common.js'
import { MessageError, StorageError } from './errors.js'
import { equalBytes } from './bytes.js'
import { wrapMlsFailure } from './one-rule.js'
import type { CommitIntent, GroupStatus } from './group-types.js'

/** The codec of a group's store records (`group/<id>/meta`, `/pending`; the state's are in group-persistence.ts) and of input messages. */

/** `group/<id>/meta`: the state machine's position besides the MLS state. */
export interface GroupMeta {
  status: GroupStatus
  cursor: number
  epoch: bigint
  digests: string[]
  /** Why the group is `failed` (the resync reason it will sign). */
  failure?: string
}

/** `group/<id>/pending`: a created commit waiting for the channel. */
export interface PendingRecord {
  epoch: bigint
  intent: unknown
  commit: Uint8Array
  welcome: Uint8Array | undefined
  /** The new state without its past epochs' receiver data (see `history`). */
  newState: Uint8Array
  /**
   * The past epochs the new state keeps: their receiver data is the current
   * state's (`decodePendingState`). Absent in records of the previous layout,
   * whose `newState` holds them.
   */
  history?: bigint[]
  /**
   * Set when `newState` holds neither tree: they are the records of this
   * epoch in the group's layout (group-persistence.ts, `encodeStagedPending`).
   */
  staged?: bigint
  added: ClientId[]
  removed: ClientId[]
}

/**
 * Decode one MLSMessage, rejecting trailing bytes and any encoding that is not
 * the canonical one (RFC 9420 section 2.1.2: minimal varint lengths; ts-mls
 * accepts long forms): the message must re-encode to exactly `bytes`.
 */
export function decodeMessage(bytes: Uint8Array): MLSMessage {
  let decoded: [MLSMessage, number] | undefined
  try {
    decoded = decodeMlsMessage(bytes, 0)
  } catch (cause) {
    throw wrapMlsFailure('INVALID_MESSAGE', 'Malformed MLS message', cause)
  }
  if (decoded === undefined || decoded[1] !== bytes.length) throw new MessageError('INVALID_MESSAGE', 'Malformed MLS message')
  if (!equalBytes(encodeMlsMessage(decoded[0]), bytes)) {
    throw new MessageError('INVALID_MESSAGE', 'The MLS message is not minimally encoded (RFC 9420 section 2.1.2)', { details: { reason: 'non-canonical' } })
  }
  return decoded[0]
}

/** A commit intent as stored in a pending record. */
export function encodeIntent(intent: CommitIntent): unknown {
  if (intent.kind !== 'add') return intent
  return {
    kind: 'add',
    keyPackages: intent.keyPackages.map((kp) => ({
      clientId: kp.clientId,
      message: encodeMlsMessage({ version: 'mls10', wireformat: 'mls_key_package', keyPackage: kp.keyPackage })
    }))
  }
}

/** The commit intent of a stored pending record. */
export function decodeIntent(value: unknown): CommitIntent {
  const v = value as { kind: string; keyPackages?: { clientId: ClientId; message: Uint8Array }[]; targets?: string[] }
  if (v.kind === 'add') {
    return {
      kind: 'add',
      keyPackages: (v.keyPackages ?? []).map((kp) => {
        const m = decodeMessage(kp.message)
        if (m.wireformat !== 'mls_key_package') throw new MessageError('INVALID_MESSAGE', 'Stored intent holds a non-KeyPackage')
        return { clientId: kp.clientId, keyPackage: m.keyPackage }
      })
    }
  }
  if (v.kind === 'remove') return { kind: 'remove', targets: v.targets ?? [] }
  return { kind: 'update' }
}

/** A stored ts-mls group state, with this client's configuration. */
export function decodeState(bytes: Uint8Array, clientConfig: ClientConfig): ClientState {
  const decoded = decodeGroupState(bytes, 0)
  if (decoded === undefined) throw new StorageError('STORAGE_CORRUPT', 'Stored group state could not be decoded')
  return { ...decoded[0], clientConfig }
}

/** The new state of a stored pending commit, its past epochs taken from `current` (the state it was created from). */
export function decodePendingState(
  record: PendingRecord,
  current: ClientState | undefined,
  clientConfig: ClientConfig,
  decoded?: ClientState
): ClientState {
  const state = decoded ?? decodeState(record.newState, clientConfig)
  if (record.history === undefined) return state
  const historicalReceiverData = new Map<bigint, EpochReceiverData>()
  for (const epoch of record.history) {
    if (current === undefined) break
    const data =
      epoch === current.groupContext.epoch
        ? {
            secretTree: current.secretTree,
            ratchetTree: current.ratchetTree,
            senderDataSecret: current.keySchedule.senderDataSecret,
            groupContext: current.groupContext,
            resumptionPsk: current.keySchedule.resumptionPsk
          }
        : current.historicalReceiverData.get(epoch)
    if (data !== undefined) historicalReceiverData.set(epoch, data)
  }
  return { ...state, historicalReceiverData }
}
