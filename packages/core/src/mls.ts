/**
 * ts-mls, re-exported. `@mls/core` is the only package that imports ts-mls;
 * providers, adapters and services take the MLS types and building blocks they
 * need from here (`@mls/core/mls`), so one ts-mls version serves the workspace.
 */
export * from 'ts-mls'
export {
  MlsError,
  ValidationError as MlsValidationError,
  CodecError as MlsCodecError,
  UsageError as MlsUsageError,
  DependencyError as MlsDependencyError,
  CryptoVerificationError as MlsCryptoVerificationError,
  CryptoError as MlsCryptoError,
  InternalError as MlsInternalError
} from 'ts-mls/mlsError.js'
export { signWithLabel, verifyWithLabel } from 'ts-mls/crypto/signature.js'
export { makeKeyPackageRef, verifyKeyPackage, encodeKeyPackage, decodeKeyPackage } from 'ts-mls/keyPackage.js'
export { getGroupMembers, getOwnLeafNode } from 'ts-mls/clientState.js'
export { refhash } from 'ts-mls/crypto/hash.js'
export { getCiphersuiteFromId, getCiphersuiteNameFromId, type CiphersuiteId } from 'ts-mls/crypto/ciphersuite.js'
export { defaultClientConfig } from 'ts-mls/clientConfig.js'
export { toLeafIndex } from 'ts-mls/treemath.js'
export { verifyLeafNodeSignatureKeyPackage } from 'ts-mls/leafNode.js'

// ts-mls functions that core carries patched (docs/ts-mls-fixes.md): these named exports take precedence over
// `export * from 'ts-mls'`, so users of `@mls/core/mls` get the fixes too.
export {
  createApplicationMessage,
  createCommit,
  createGroup,
  createGroupInfoWithExternalPub,
  createGroupInfoWithExternalPubAndRatchetTree,
  createProposal,
  decodeGroupState,
  encodeGroupState,
  encodeMlsMessage,
  joinGroup,
  joinGroupWithExtensions,
  joinGroupExternal,
  processMessage,
  processPrivateMessage,
  processPublicMessage,
  proposeExternal
} from './ts-mls-fixes.js'
