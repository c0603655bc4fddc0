/**
 * ts-mls building blocks below its public API, for crypto providers and the
 * conformance suites (RFC 9420 test vectors). Not a stable API: it follows the
 * pinned ts-mls version.
 *
 * The kit that composes a ts-mls `CiphersuiteImpl` from a provider's
 * primitives (`composeCiphersuiteImpl`) lives in `@mls/crypto-kit`: only
 * crypto providers use it.
 */
export { expandWithLabel, deriveSecret, deriveTreeSecret } from 'ts-mls/crypto/kdf.js'
export { encryptWithLabel, decryptWithLabel } from 'ts-mls/crypto/hpke.js'
export { constantTimeEqual } from 'ts-mls/util/constantTimeCompare.js'
export { expandSenderDataKey, expandSenderDataNonce, type ReuseGuard, type SenderData } from 'ts-mls/sender.js'
// The lazy secret tree (patch secret-tree-lazy) and the message protection that reads it.
export { createSecretTree, ratchetToGeneration } from './ts-mls-fixes.js'
export { initializeEpoch } from 'ts-mls/keySchedule.js'
export { encodeGroupContext } from 'ts-mls/groupContext.js'
export { computePskSecret, type PreSharedKeyIdExternal } from 'ts-mls/presharedkey.js'
export { createConfirmedHash, createInterimHash } from 'ts-mls/transcriptHash.js'
export { decodeAuthenticatedContent, type AuthenticatedContent } from 'ts-mls/authenticatedContent.js'
export { protect, protectApplicationData, protectProposal, unprotectPrivateMessage } from './ts-mls-fixes.js'
export { protectProposalPublic, protectPublicMessage, unprotectPublicMessage } from 'ts-mls/messageProtectionPublic.js'
export { decodeProposal, encodeProposal } from 'ts-mls/proposal.js'
export { decodeCommit, encodeCommit } from 'ts-mls/commit.js'
export { createConfirmationTag, createContentCommitSignature } from 'ts-mls/framedContent.js'
export { getHpkePublicKey } from 'ts-mls/ratchetTree.js'
export { decodeRatchetTree } from './ts-mls-fixes.js'
export { treeHash, treeHashRoot, verifyParentHashes } from './ts-mls-fixes.js'
export { resolution } from 'ts-mls/ratchetTree.js'
export { applyUpdatePath, createUpdatePath, decodeUpdatePath } from 'ts-mls/updatePath.js'
export { applyUpdatePathSecret } from 'ts-mls/createCommit.js'
export { getCommitSecret, type PathSecrets } from 'ts-mls/pathSecrets.js'
export { toPrivateKeyPath } from 'ts-mls/privateKeyPath.js'
export { leafToNodeIndex, type NodeIndex } from 'ts-mls/treemath.js'
export { decryptGroupInfo, decryptGroupSecrets } from 'ts-mls/welcome.js'
export { verifyGroupInfoConfirmationTag, verifyGroupInfoSignature } from 'ts-mls/groupInfo.js'
export { type KeyRetentionConfig } from 'ts-mls/keyRetentionConfig.js'
// For the public-group verifier's tests and hostile tests: forge validly signed but invalid handshakes.
export { signFramedContentTBS, toTbs as framedContentTbs, verifyFramedContentSignature } from 'ts-mls/framedContent.js'
export { signLeafNodeCommit, verifyLeafNodeSignature, verifyLeafNodeSignatureKeyPackage } from 'ts-mls/leafNode.js'
export { encodeRatchetTree } from './ts-mls-fixes.js'
export { createGroupInfoWithRatchetTree } from 'ts-mls/createCommit.js'

export { protectExternalProposalPublic } from 'ts-mls/messageProtectionPublic.js'
