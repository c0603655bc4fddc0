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
