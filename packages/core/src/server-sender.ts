/**
 * The server as an external sender of groups (RFC 9420 section 12.1.8.1):
 * the `external_senders` group context extension that lists it, and the
 * checks clients and the channel make on it (docs/trust-model.md).
 */
import type { Credential, Extension, GroupContext, Proposal } from 'ts-mls'
import { decodeCredential, encodeCredential } from 'ts-mls/credential.js'
import { decodeExternalSender, externalSenderEncoder, type ExternalSender } from 'ts-mls/externalSender.js'
import { decodeVarLenType, varLenTypeEncoder } from 'ts-mls/codec/variableLength.js'
import { encode } from 'ts-mls/codec/tlsEncoder.js'
import type { ServerExternalSender } from './interfaces/transport.js'
import { equalBytes, utf8 } from './bytes.js'
import { MessageError } from './errors.js'

/** The identity of the server's basic credential when none is configured. */
export const DEFAULT_SERVER_IDENTITY = '@server'

/** The server's public external-sender record from its key and (default: a basic credential `@server`) credential. */
export function serverExternalSender(
  ciphersuite: string,
  signaturePublicKey: Uint8Array,
  credential: Credential = { credentialType: 'basic', identity: utf8.encode(DEFAULT_SERVER_IDENTITY) }
): ServerExternalSender {
  return { ciphersuite, signaturePublicKey: signaturePublicKey.slice(), credential: encodeCredential(credential) }
}

/** Whether two advertised external senders are the same (suite, key and credential). */
export function sameExternalSender(a: ServerExternalSender, b: ServerExternalSender): boolean {
  return a.ciphersuite === b.ciphersuite && equalBytes(a.signaturePublicKey, b.signaturePublicKey) && equalBytes(a.credential, b.credential)
}

/** The `external_senders` extension that lists exactly the server. */
export function serverExternalSendersExtension(sender: ServerExternalSender): Extension {
  const decoded = decodeCredential(sender.credential, 0)
  if (decoded === undefined || decoded[1] !== sender.credential.length) throw new MessageError('INVALID_MESSAGE', "The server's credential does not decode")
  const entry: ExternalSender = { signaturePublicKey: sender.signaturePublicKey.slice(), credential: decoded[0] }
  return { extensionType: 'external_senders', extensionData: encode(varLenTypeEncoder(externalSenderEncoder))([entry]) }
}

/** The `external_senders` list of a group context (`[]` without the extension); `undefined` when it does not decode. */
export function externalSendersOf(extensions: readonly Extension[]): ExternalSender[] | undefined {
  const extension = extensions.find((e) => e.extensionType === 'external_senders')
  if (extension === undefined) return []
  const decoded = decodeVarLenType(decodeExternalSender)(extension.extensionData, 0)
  if (decoded === undefined || decoded[1] !== extension.extensionData.length) return undefined
  return decoded[0]
}

/** The raw `external_senders` extension data, or `undefined` without one. */
function externalSendersData(extensions: readonly Extension[]): Uint8Array | undefined {
  return extensions.find((e) => e.extensionType === 'external_senders')?.extensionData
}

/**
 * The GroupContextExtensions proposal among `proposals` that adds, replaces
 * or drops the group's `external_senders` (who may propose as an external
 * sender is fixed when the group is created), or `undefined`.
 */
export function externalSendersChange(context: GroupContext, proposals: readonly Proposal[]): Proposal | undefined {
  const current = externalSendersData(context.extensions)
  return proposals.find((p) => {
    if (p.proposalType !== 'group_context_extensions') return false
    const next = externalSendersData(p.groupContextExtensions.extensions)
    return current === undefined ? next !== undefined : next === undefined || !equalBytes(current, next)
  })
}

/**
 * The check a member makes on an external proposal (RFC 9420 section
 * 12.1.8.1): the sender at `senderIndex` of the group's `external_senders`
 * must carry the key of the server this client pinned. Throws
 * `EXTERNAL_SENDER_REFUSED` (bad input, skipped and reported) otherwise.
 */
export function checkExternalSender(context: GroupContext, senderIndex: number, pinned: ServerExternalSender | undefined): void {
  const senders = externalSendersOf(context.extensions)
  const sender = senders?.[senderIndex]
  if (sender === undefined) {
    throw new MessageError('EXTERNAL_SENDER_REFUSED', `The group lists no external sender ${senderIndex}`, { details: { reason: 'unknown-external-sender' } })
  }
  if (pinned === undefined || !equalBytes(sender.signaturePublicKey, pinned.signaturePublicKey)) {
    throw new MessageError('EXTERNAL_SENDER_REFUSED', "The external sender's key is not the server key this client pinned", {
      details: { reason: 'external-sender-not-pinned' }
    })
  }
}

