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
import type { joinGroup as upstreamJoinGroup, joinGroupWithExtensions as upstreamJoinGroupWithExtensions } from 'ts-mls'
import type { validateRatchetTree as upstreamValidateRatchetTree } from 'ts-mls/clientState.js'
import * as patchedClientState from './vendor/ts-mls/clientState.js'

/** `joinGroup` with the RFC 9420 section 12.4.3.1 unmerged-leaves check (patch validate-ratchet-tree-unmerged-leaves). */
export const joinGroup: typeof upstreamJoinGroup = patchedClientState.joinGroup as unknown as typeof upstreamJoinGroup
/** `joinGroupWithExtensions`, patched as `joinGroup`. */
export const joinGroupWithExtensions: typeof upstreamJoinGroupWithExtensions = patchedClientState.joinGroupWithExtensions as unknown as typeof upstreamJoinGroupWithExtensions
/** Ratchet-tree validation of a joiner (RFC 9420 section 12.4.3.1), patched. */
export const validateRatchetTree: typeof upstreamValidateRatchetTree = patchedClientState.validateRatchetTree as unknown as typeof upstreamValidateRatchetTree
