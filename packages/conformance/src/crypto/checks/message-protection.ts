import { expect } from 'vitest'
import { fromHex, toHex } from '@mls/core'
import {
  decodeMlsMessage,
  defaultKeyRetentionConfig,
  defaultPaddingConfig,
  type CiphersuiteImpl,
  type GroupContext,
  type PrivateMessage,
  type PublicMessage
} from '@mls/core/mls'
import {
  createContentCommitSignature,
  createSecretTree,
  decodeCommit,
  decodeProposal,
  encodeCommit,
  encodeProposal,
  protect,
  protectApplicationData,
  protectProposal,
  protectProposalPublic,
  protectPublicMessage,
  unprotectPrivateMessage,
  unprotectPublicMessage,
  type AuthenticatedContent
} from '@mls/core/mls-internals'

interface MessageProtectionVector {
  group_id: string
  epoch: number
  tree_hash: string
  confirmed_transcript_hash: string
  signature_priv: string
  signature_pub: string
  encryption_secret: string
  sender_data_secret: string
  membership_key: string
  proposal: string
  proposal_priv: string
  proposal_pub: string
  commit: string
  commit_priv: string
  commit_pub: string
  application: string
  application_priv: string
}

function decodePublic(hex: string): PublicMessage {
  const decoded = decodeMlsMessage(fromHex(hex), 0)?.[0]
  if (decoded?.wireformat !== 'mls_public_message') throw new Error('Expected an MLSMessage(PublicMessage)')
  return decoded.publicMessage
}

function decodePrivate(hex: string): PrivateMessage {
  const decoded = decodeMlsMessage(fromHex(hex), 0)?.[0]
  if (decoded?.wireformat !== 'mls_private_message') throw new Error('Expected an MLSMessage(PrivateMessage)')
  return decoded.privateMessage
}

/**
 * Unprotect the vector's public and private proposal, commit and application
 * message; then protect each content with the provider and unprotect it again.
 */
export async function checkMessageProtection(v: MessageProtectionVector, cs: CiphersuiteImpl): Promise<void> {
  const gc: GroupContext = {
    version: 'mls10',
    cipherSuite: cs.name,
    groupId: fromHex(v.group_id),
    epoch: BigInt(v.epoch),
    treeHash: fromHex(v.tree_hash),
    confirmedTranscriptHash: fromHex(v.confirmed_transcript_hash),
    extensions: []
  }
  const signaturePriv = fromHex(v.signature_priv)
  const signaturePub = fromHex(v.signature_pub)
  const membershipKey = fromHex(v.membership_key)
  const senderDataSecret = fromHex(v.sender_data_secret)
  const proposal = decodeProposal(fromHex(v.proposal), 0)?.[0]
  const commit = decodeCommit(fromHex(v.commit), 0)?.[0]
  if (proposal === undefined || commit === undefined) throw new Error('Could not decode proposal or commit')
  const newSecretTree = () => createSecretTree(2, fromHex(v.encryption_secret), cs.kdf)

  const unprotectPublic = (msg: PublicMessage) => unprotectPublicMessage(membershipKey, gc, [], msg, cs, signaturePub)
  const unprotectPrivate = async (msg: PrivateMessage) =>
    (await unprotectPrivateMessage(senderDataSecret, msg, await newSecretTree(), [], gc, defaultKeyRetentionConfig, cs, signaturePub))
      .content.content

  const publicProposal = (await unprotectPublic(decodePublic(v.proposal_pub))).content
  if (publicProposal.contentType !== 'proposal') throw new Error('proposal_pub is not a proposal')
  expect(toHex(encodeProposal(publicProposal.proposal)), 'proposal_pub').toBe(v.proposal)

  const publicCommit = (await unprotectPublic(decodePublic(v.commit_pub))).content
  if (publicCommit.contentType !== 'commit') throw new Error('commit_pub is not a commit')
  expect(toHex(encodeCommit(publicCommit.commit)), 'commit_pub').toBe(v.commit)

  const privateProposal = await unprotectPrivate(decodePrivate(v.proposal_priv))
  if (privateProposal.contentType !== 'proposal') throw new Error('proposal_priv is not a proposal')
  expect(toHex(encodeProposal(privateProposal.proposal)), 'proposal_priv').toBe(v.proposal)

  const privateCommit = await unprotectPrivate(decodePrivate(v.commit_priv))
  if (privateCommit.contentType !== 'commit') throw new Error('commit_priv is not a commit')
  expect(toHex(encodeCommit(privateCommit.commit)), 'commit_priv').toBe(v.commit)

  const privateApplication = await unprotectPrivate(decodePrivate(v.application_priv))
  if (privateApplication.contentType !== 'application') throw new Error('application_priv is not an application message')
  expect(toHex(privateApplication.applicationData), 'application_priv').toBe(v.application)

  const empty = new Uint8Array()
  const ownPublicProposal = await protectProposalPublic(signaturePriv, membershipKey, gc, empty, proposal, 1, cs)
  const reopenedPublicProposal = (await unprotectPublic(ownPublicProposal.publicMessage)).content
  if (reopenedPublicProposal.contentType !== 'proposal') throw new Error('round trip lost the proposal')
  expect(toHex(encodeProposal(reopenedPublicProposal.proposal)), 'public proposal round trip').toBe(v.proposal)

  const confirmationTag = cs.rng.randomBytes(cs.kdf.size)
  const publicSigned = await createContentCommitSignature(gc, 'mls_public_message', commit, { senderType: 'member', leafIndex: 1 }, empty, signaturePriv, cs.signature)
  const publicCommitContent: AuthenticatedContent = {
    wireformat: 'mls_public_message',
    content: publicSigned.framedContent,
    auth: { contentType: 'commit', signature: publicSigned.signature, confirmationTag }
  }
  const ownPublicCommit = await protectPublicMessage(membershipKey, gc, publicCommitContent, cs)
  const reopenedPublicCommit = (await unprotectPublic(ownPublicCommit)).content
  if (reopenedPublicCommit.contentType !== 'commit') throw new Error('round trip lost the commit')
  expect(toHex(encodeCommit(reopenedPublicCommit.commit)), 'public commit round trip').toBe(v.commit)

  const ownPrivateProposal = await protectProposal(signaturePriv, senderDataSecret, proposal, empty, gc, await newSecretTree(), 1, defaultPaddingConfig, cs)
  const reopenedPrivateProposal = await unprotectPrivate(ownPrivateProposal.privateMessage)
  if (reopenedPrivateProposal.contentType !== 'proposal') throw new Error('round trip lost the proposal')
  expect(toHex(encodeProposal(reopenedPrivateProposal.proposal)), 'private proposal round trip').toBe(v.proposal)

  const application = fromHex(v.application)
  const ownApplication = await protectApplicationData(signaturePriv, senderDataSecret, application, empty, gc, await newSecretTree(), 1, defaultPaddingConfig, cs)
  const reopenedApplication = await unprotectPrivate(ownApplication.privateMessage)
  if (reopenedApplication.contentType !== 'application') throw new Error('round trip lost the application data')
  expect(toHex(reopenedApplication.applicationData), 'application round trip').toBe(v.application)

  const privateSigned = await createContentCommitSignature(gc, 'mls_private_message', commit, { senderType: 'member', leafIndex: 1 }, empty, signaturePriv, cs.signature)
  const ownPrivateCommit = await protect(
    senderDataSecret,
    empty,
    gc,
    await newSecretTree(),
    { contentType: 'commit', commit, auth: { contentType: 'commit', signature: privateSigned.signature, confirmationTag } },
    1,
    defaultPaddingConfig,
    cs
  )
  const reopenedPrivateCommit = await unprotectPrivate(ownPrivateCommit.privateMessage)
  if (reopenedPrivateCommit.contentType !== 'commit') throw new Error('round trip lost the commit')
  expect(toHex(encodeCommit(reopenedPrivateCommit.commit)), 'private commit round trip').toBe(v.commit)
}
