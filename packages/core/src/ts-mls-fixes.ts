/**
 * ts-mls functions that core calls in a patched form (docs/ts-mls-fixes.md).
 *
 * The patched modules are generated copies of ts-mls's own dist modules under
 * `./vendor/ts-mls/` (scripts/vendor-ts-mls.mjs, patches/ts-mls/*.patch). They
 * are plain JavaScript (type-checked by nobody); this module gives them
 * ts-mls's declared types. A patch must keep every signature as ts-mls
 * declares it; test/ts-mls-fixes.test.ts checks that the patched module
 * exports exactly what ts-mls's does.
 */
import type { createGroup as upstreamCreateGroup, joinGroup as upstreamJoinGroup, joinGroupWithExtensions as upstreamJoinGroupWithExtensions } from 'ts-mls'
import type { applyProposals as upstreamApplyProposals, validateRatchetTree as upstreamValidateRatchetTree } from 'ts-mls/clientState.js'
import * as patchedClientState from './vendor/ts-mls/clientState.js'
import type {
  createCommit as upstreamCreateCommit,
  joinGroupExternal as upstreamJoinGroupExternal,
  processMessage as upstreamProcessMessage,
  processPublicMessage as upstreamProcessPublicMessage,
  proposeExternal as upstreamProposeExternal
} from 'ts-mls'
import type { senderFromExtension as upstreamSenderFromExtension } from 'ts-mls/publicMessage.js'
import type { unprotectPublicMessage as upstreamUnprotectPublicMessage } from 'ts-mls/messageProtectionPublic.js'
import * as patchedCreateCommit from './vendor/ts-mls/createCommit.js'
import * as patchedExternalProposal from './vendor/ts-mls/externalProposal.js'
import * as patchedMessageProtectionPublic from './vendor/ts-mls/messageProtectionPublic.js'
import * as patchedProcessMessages from './vendor/ts-mls/processMessages.js'
import * as patchedPublicMessage from './vendor/ts-mls/publicMessage.js'
import type * as upstreamIndex from 'ts-mls'
import type {
  decodeNode as upstreamDecodeNode,
  nodeEncoder as upstreamNodeEncoder,
  decodeRatchetTree as upstreamDecodeRatchetTree,
  encodeRatchetTree as upstreamEncodeRatchetTree,
  ratchetTreeEncoder as upstreamRatchetTreeEncoder
} from 'ts-mls/ratchetTree.js'
import type { ratchetTreeFromExtension as upstreamRatchetTreeFromExtension } from 'ts-mls/groupInfo.js'
import type { addHistoricalReceiverData as upstreamAddHistoricalReceiverData } from 'ts-mls/clientState.js'
import type { varLenTypeEncoder as upstreamVarLenTypeEncoder } from 'ts-mls/codec/variableLength.js'
import * as patchedIndex from './vendor/ts-mls/index.js'
import * as patchedRatchetTree from './vendor/ts-mls/ratchetTree.js'
import * as patchedGroupInfo from './vendor/ts-mls/groupInfo.js'
import * as patchedVariableLength from './vendor/ts-mls/codec/variableLength.js'
import type { treeHash as upstreamTreeHash, treeHashRoot as upstreamTreeHashRoot } from 'ts-mls/treeHash.js'
import type { verifyParentHashes as upstreamVerifyParentHashes } from 'ts-mls/parentHash.js'
import * as patchedParentHash from './vendor/ts-mls/parentHash.js'
import type { applyUpdatePath as upstreamApplyUpdatePath } from 'ts-mls/updatePath.js'
import * as patchedTreeHash from './vendor/ts-mls/treeHash.js'
import * as patchedUpdatePath from './vendor/ts-mls/updatePath.js'
import type * as upstreamSecretTree from 'ts-mls/secretTree.js'
import type * as upstreamMessageProtection from 'ts-mls/messageProtection.js'
import * as patchedSecretTree from './vendor/ts-mls/secretTree.js'
import * as patchedMessageProtection from './vendor/ts-mls/messageProtection.js'

/** `joinGroup` with the RFC 9420 section 12.4.3.1 unmerged-leaves check (patch validate-ratchet-tree-unmerged-leaves). */
export const joinGroup: typeof upstreamJoinGroup = patchedClientState.joinGroup as unknown as typeof upstreamJoinGroup
/** `joinGroupWithExtensions`, patched as `joinGroup`. */
export const joinGroupWithExtensions: typeof upstreamJoinGroupWithExtensions = patchedClientState.joinGroupWithExtensions as unknown as typeof upstreamJoinGroupWithExtensions
/** Ratchet-tree validation of a joiner (RFC 9420 section 12.4.3.1), patched. */
export const validateRatchetTree: typeof upstreamValidateRatchetTree = patchedClientState.validateRatchetTree as unknown as typeof upstreamValidateRatchetTree

// external_senders is a list (RFC 9420 section 12.1.8.1; patch external-senders-list); proposals are
// validated one at a time (patch apply-tree-mutations-sequential) on every path through applyProposals.

/** `processPublicMessage` that finds an external sender by its index in the `external_senders` list and applies proposals with sequential validation. */
export const processPublicMessage: typeof upstreamProcessPublicMessage = patchedProcessMessages.processPublicMessage as unknown as typeof upstreamProcessPublicMessage
/** `processMessage`, patched as `processPublicMessage`. */
export const processMessage: typeof upstreamProcessMessage = patchedProcessMessages.processMessage as unknown as typeof upstreamProcessMessage
/** `createCommit` whose proposal validation reads `external_senders` as a list (GroupContextExtensions) and runs sequentially. */
export const createCommit: typeof upstreamCreateCommit = patchedCreateCommit.createCommit as unknown as typeof upstreamCreateCommit
/** `proposeExternal` that names the sender by its index in the `external_senders` list. */
export const proposeExternal: typeof upstreamProposeExternal = patchedExternalProposal.proposeExternal as unknown as typeof upstreamProposeExternal
/** `unprotectPublicMessage` that verifies an external sender's signature with the listed key at its index. */
export const unprotectPublicMessage: typeof upstreamUnprotectPublicMessage =
  patchedMessageProtectionPublic.unprotectPublicMessage as unknown as typeof upstreamUnprotectPublicMessage
/** The external sender at `senderIndex` of the `external_senders` list, or `undefined`. */
export const senderFromExtension: typeof upstreamSenderFromExtension = patchedPublicMessage.senderFromExtension as unknown as typeof upstreamSenderFromExtension
/** `createGroup` whose validation reads the `external_senders` extension as a list. */
export const createGroup: typeof upstreamCreateGroup = patchedClientState.createGroup as unknown as typeof upstreamCreateGroup
/** Proposal validation and application, with both fixes (the Group Channel's public-group verifier uses it). */
export const applyProposals: typeof upstreamApplyProposals = patchedClientState.applyProposals as unknown as typeof upstreamApplyProposals
/** `joinGroupExternal` (external commit) through the patched tree and proposal validation. */
export const joinGroupExternal: typeof upstreamJoinGroupExternal = patchedCreateCommit.joinGroupExternal as unknown as typeof upstreamJoinGroupExternal

// Encoders of large vectors (patch varlen-vector-encoder-iterative) and epoch retention past 8,192 members (patch
// historical-receiver-data-no-spread): every ts-mls module that reaches them is vendored, and core encodes through these.

const patchedApi = patchedIndex as unknown as typeof upstreamIndex
/** `encodeGroupState` whose vectors (ratchet tree, secret tree) are encoded without recursion. */
export const encodeGroupState: typeof upstreamIndex.encodeGroupState = patchedApi.encodeGroupState
/** `decodeGroupState` that reads the lazy secret tree (patch secret-tree-lazy) and ts-mls's own encoding. */
export const decodeGroupState: typeof upstreamIndex.decodeGroupState = patchedApi.decodeGroupState
/** `encodeMlsMessage` through the patched vector encoder (a Welcome to thousands of members). */
export const encodeMlsMessage: typeof upstreamIndex.encodeMlsMessage = patchedApi.encodeMlsMessage
/** `createApplicationMessage` on the patched modules. */
export const createApplicationMessage: typeof upstreamIndex.createApplicationMessage = patchedApi.createApplicationMessage
/** `createProposal` on the patched modules. */
export const createProposal: typeof upstreamIndex.createProposal = patchedApi.createProposal
/** `processPrivateMessage` on the patched modules. */
export const processPrivateMessage: typeof upstreamIndex.processPrivateMessage = patchedApi.processPrivateMessage
/** `createGroupInfoWithExternalPub` on the patched modules. */
export const createGroupInfoWithExternalPub: typeof upstreamIndex.createGroupInfoWithExternalPub = patchedApi.createGroupInfoWithExternalPub
/** `createGroupInfoWithExternalPubAndRatchetTree`, whose ratchet-tree extension is encoded without recursion. */
export const createGroupInfoWithExternalPubAndRatchetTree: typeof upstreamIndex.createGroupInfoWithExternalPubAndRatchetTree =
  patchedApi.createGroupInfoWithExternalPubAndRatchetTree
/** The ratchet-tree encoder (RFC 9420 section 12.4.3.3) without recursion. */
export const encodeRatchetTree: typeof upstreamEncodeRatchetTree = patchedRatchetTree.encodeRatchetTree as unknown as typeof upstreamEncodeRatchetTree
/**
 * The ratchet-tree decoder through the vendored modules, whose enum decoders build their reverse maps once (patch
 * enum-reverse-map-once): ts-mls's own rebuilt a map for every enum value of every leaf, most of the time a server
 * spent checking a 1,000-member GroupInfo.
 */
export const decodeRatchetTree: typeof upstreamDecodeRatchetTree = patchedRatchetTree.decodeRatchetTree as unknown as typeof upstreamDecodeRatchetTree
/** One ratchet-tree node's encoder, its encoding remembered by node object (patch ratchet-tree-node-encoding-memory). */
export const nodeEncoder: typeof upstreamNodeEncoder = patchedRatchetTree.nodeEncoder as unknown as typeof upstreamNodeEncoder
/** One ratchet-tree node's decoder, as `decodeRatchetTree`. */
export const decodeNode: typeof upstreamDecodeNode = patchedRatchetTree.decodeNode as unknown as typeof upstreamDecodeNode
/** The ratchet tree of a GroupInfo's `ratchet_tree` extension, decoded as `decodeRatchetTree`. */
export const ratchetTreeFromExtension: typeof upstreamRatchetTreeFromExtension =
  patchedGroupInfo.ratchetTreeFromExtension as unknown as typeof upstreamRatchetTreeFromExtension
/** The ratchet-tree buffer encoder, without recursion. */
export const ratchetTreeEncoder: typeof upstreamRatchetTreeEncoder = patchedRatchetTree.ratchetTreeEncoder as unknown as typeof upstreamRatchetTreeEncoder
/** A vector encoder (RFC 9420 section 2.1.2) that writes its elements in a loop. */
export const varLenTypeEncoder: typeof upstreamVarLenTypeEncoder = patchedVariableLength.varLenTypeEncoder as unknown as typeof upstreamVarLenTypeEncoder
/** Adds the epoch's receiver data and keeps the newest `retainKeysForEpochs`, at any group size. */
export const addHistoricalReceiverData: typeof upstreamAddHistoricalReceiverData =
  patchedClientState.addHistoricalReceiverData as unknown as typeof upstreamAddHistoricalReceiverData
/** The tree hash of the root (RFC 9420 section 7.8), remembered per node so only the changed path is hashed again (patch tree-hash-memory). */
export const treeHashRoot: typeof upstreamTreeHashRoot = patchedTreeHash.treeHashRoot as unknown as typeof upstreamTreeHashRoot
/** The tree hash of the subtree at a node (RFC 9420 section 7.8), through the same remembered hashes. */
export const treeHash: typeof upstreamTreeHash = patchedTreeHash.treeHash as unknown as typeof upstreamTreeHash
/**
 * Whether every non-blank parent node of a tree is covered by exactly one parent-hash chain (RFC 9420 section
 * 7.9.2, as a joiner checks its Welcome's tree), in O(n log n) in every tree shape (patch parent-hash-linear).
 */
export const verifyParentHashes: typeof upstreamVerifyParentHashes = patchedParentHash.verifyParentHashes as unknown as typeof upstreamVerifyParentHashes
/** `applyUpdatePath` through the remembered tree hashes and linear parent-hash checks. */
export const applyUpdatePath: typeof upstreamApplyUpdatePath = patchedUpdatePath.applyUpdatePath as unknown as typeof upstreamApplyUpdatePath

// The secret tree is derived lazily (patch secret-tree-lazy, RFC 9420 section 9): a new epoch holds only the
// root's secret; a leaf's ratchets are derived when its first message is sent or received. `SecretTree` entries
// may therefore be empty or an unexpanded `{ nodeSecret }`; these functions read and write such trees.

/** A new epoch's secret tree: the encryption secret (copied) at the root, nothing derived yet. */
export const createSecretTree: typeof upstreamSecretTree.createSecretTree = patchedSecretTree.createSecretTree as unknown as typeof upstreamSecretTree.createSecretTree
/** The key and nonce of a sender's generation, deriving the sender's leaf first if needed. */
export const ratchetToGeneration: typeof upstreamSecretTree.ratchetToGeneration =
  patchedSecretTree.ratchetToGeneration as unknown as typeof upstreamSecretTree.ratchetToGeneration
/** The lazy secret tree's encoder (empty and unexpanded entries included). */
export const secretTreeEncoder: typeof upstreamSecretTree.secretTreeEncoder = patchedSecretTree.secretTreeEncoder as unknown as typeof upstreamSecretTree.secretTreeEncoder
/** Decodes a secret tree in the lazy encoding or in ts-mls's own (every node derived). */
export const decodeSecretTree: typeof upstreamSecretTree.decodeSecretTree = patchedSecretTree.decodeSecretTree as unknown as typeof upstreamSecretTree.decodeSecretTree
/** A secret tree with one leaf's ratchets derived, and the secrets deleted on the way (to be zeroed). */
export const materializeLeaf = patchedSecretTree.materializeLeaf as unknown as (tree: upstreamSecretTree.SecretTree, nodeIndex: number, kdf: Parameters<typeof upstreamSecretTree.createSecretTree>[2]) => Promise<[upstreamSecretTree.SecretTree, Uint8Array[]]>
/** `unprotectPrivateMessage` on the lazy secret tree. */
export const unprotectPrivateMessage: typeof upstreamMessageProtection.unprotectPrivateMessage =
  patchedMessageProtection.unprotectPrivateMessage as unknown as typeof upstreamMessageProtection.unprotectPrivateMessage
/** `protect` on the lazy secret tree. */
export const protect: typeof upstreamMessageProtection.protect = patchedMessageProtection.protect as unknown as typeof upstreamMessageProtection.protect
/** `protectApplicationData` on the lazy secret tree. */
export const protectApplicationData: typeof upstreamMessageProtection.protectApplicationData =
  patchedMessageProtection.protectApplicationData as unknown as typeof upstreamMessageProtection.protectApplicationData
/** `protectProposal` on the lazy secret tree. */
export const protectProposal: typeof upstreamMessageProtection.protectProposal =
  patchedMessageProtection.protectProposal as unknown as typeof upstreamMessageProtection.protectProposal
