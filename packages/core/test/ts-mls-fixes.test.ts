import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import type { CiphersuiteImpl, ClientState, KeyPackage, MLSMessage, PrivateKeyPackage, RatchetTree, Welcome } from 'ts-mls'
import {
  createCommit,
  createGroup,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  generateKeyPackage,
  getCiphersuiteFromName,
  getCiphersuiteImpl,
  joinGroup as upstreamJoinGroup,
  processPublicMessage
} from 'ts-mls'
import * as upstreamClientState from 'ts-mls/clientState.js'
import * as upstreamCreateCommit from 'ts-mls/createCommit.js'
import * as upstreamExternalProposal from 'ts-mls/externalProposal.js'
import * as upstreamMessageProtectionPublic from 'ts-mls/messageProtectionPublic.js'
import * as upstreamProcessMessages from 'ts-mls/processMessages.js'
import * as upstreamPublicMessage from 'ts-mls/publicMessage.js'
import * as patchedClientState from '../src/vendor/ts-mls/clientState.js'
import * as patchedCreateCommit from '../src/vendor/ts-mls/createCommit.js'
import * as patchedExternalProposal from '../src/vendor/ts-mls/externalProposal.js'
import * as patchedMessageProtectionPublic from '../src/vendor/ts-mls/messageProtectionPublic.js'
import * as patchedProcessMessages from '../src/vendor/ts-mls/processMessages.js'
import * as patchedPublicMessage from '../src/vendor/ts-mls/publicMessage.js'
import { joinGroup, processPublicMessage as patchedProcessPublicMessage, validateRatchetTree } from '../src/ts-mls-fixes.js'

const coreDir = join(dirname(fileURLToPath(import.meta.url)), '..')

describe('vendored ts-mls modules', () => {
  it('regenerating them from the pinned ts-mls and the patches gives the committed files', () => {
    const output = execFileSync(process.execPath, [join(coreDir, 'scripts', 'vendor-ts-mls.mjs'), '--check'], { encoding: 'utf8' })
    expect(output).toMatch(/up to date with ts-mls 1\.6\.4/)
  })

  it('come from the exact ts-mls version core pins', () => {
    const pinned = (JSON.parse(readFileSync(join(coreDir, 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies['ts-mls']
    const tsMlsRoot = join(dirname(createRequire(join(coreDir, 'package.json')).resolve('ts-mls')), '..', '..')
    const installed = (JSON.parse(readFileSync(join(tsMlsRoot, 'package.json'), 'utf8')) as { version: string }).version
    expect(pinned).toBe(installed)
    const header = readFileSync(join(coreDir, 'src', 'vendor', 'ts-mls', 'clientState.ts'), 'utf8').split('\n')[1]
    expect(header).toContain(`ts-mls@${installed} `)
  })

  it.each([
    ['clientState', patchedClientState, upstreamClientState],
    ['createCommit', patchedCreateCommit, upstreamCreateCommit],
    ['externalProposal', patchedExternalProposal, upstreamExternalProposal],
    ['messageProtectionPublic', patchedMessageProtectionPublic, upstreamMessageProtectionPublic],
    ['processMessages', patchedProcessMessages, upstreamProcessMessages],
    ['publicMessage', patchedPublicMessage, upstreamPublicMessage]
  ])('%s exports exactly what the ts-mls module it replaces exports', (_name, patched, upstream) => {
    expect(Object.keys(patched).sort()).toEqual(Object.keys(upstream).sort())
  })
})

// ---------------------------------------------------------------------------
// Defect 6: ratchet-tree validation of unmerged leaves (RFC 9420 sections 7.8, 12.4.3.1).

interface Member {
  state: ClientState
}

async function keyPackageFor(name: string, cs: CiphersuiteImpl): Promise<{ publicPackage: KeyPackage; privatePackage: PrivateKeyPackage }> {
  const credential = { credentialType: 'basic' as const, identity: new TextEncoder().encode(name) }
  return generateKeyPackage(credential, defaultCapabilities(), defaultLifetime, [], cs)
}

function welcomeOf(welcome: Welcome | undefined): Welcome {
  if (welcome === undefined) throw new Error('expected a Welcome')
  return welcome
}

async function commit(committer: Member, cs: CiphersuiteImpl, added: KeyPackage[] = []) {
  const result = await createCommit(
    { state: committer.state, cipherSuite: cs },
    { extraProposals: added.map((keyPackage) => ({ proposalType: 'add' as const, add: { keyPackage } })), wireAsPublicMessage: true, ratchetTreeExtension: true }
  )
  committer.state = result.newState
  return result
}

async function apply(member: Member, message: MLSMessage, cs: CiphersuiteImpl): Promise<void> {
  if (message.wireformat !== 'mls_public_message') throw new Error('expected a PublicMessage')
  const result = await processPublicMessage(member.state, message.publicMessage, emptyPskIndex, cs)
  member.state = result.newState
}

/**
 * The growth from the issue: the creator adds six members in one commit (7
 * leaves), a member in the right half updates, the creator updates, adds one
 * more, updates again, and adds a ninth member. Returns the last Welcome with
 * its joiner's key packages, and the creator's state after that commit.
 */
async function growGroup(cs: CiphersuiteImpl) {
  const creatorKeys = await keyPackageFor('a', cs)
  const creator: Member = { state: await createGroup(new TextEncoder().encode('growth'), creatorKeys.publicPackage, creatorKeys.privatePackage, [], cs) }
  const six = await Promise.all(['b', 'c', 'd', 'e', 'f', 'g'].map((n) => keyPackageFor(n, cs)))
  const first = await commit(creator, cs, six.map((k) => k.publicPackage))
  // Leaf 5 (f) sits in the right half of the tree; it joins and commits an update.
  const f = six[4]!
  const right: Member = { state: await joinGroup(welcomeOf(first.welcome), f.publicPackage, f.privatePackage, emptyPskIndex, cs) }
  expect(right.state.privatePath.leafIndex).toBe(5)
  const update = await commit(right, cs)
  await apply(creator, update.commit, cs)
  await commit(creator, cs)
  const h = await keyPackageFor('h', cs)
  await commit(creator, cs, [h.publicPackage])
  await commit(creator, cs)
  const i = await keyPackageFor('i', cs)
  const last = await commit(creator, cs, [i.publicPackage])
  return { welcome: welcomeOf(last.welcome), joiner: i, creator }
}

function parentAt(tree: RatchetTree, nodeIndex: number) {
  const node = tree[nodeIndex]
  if (node?.nodeType !== 'parent') throw new Error(`node ${nodeIndex} is not a parent node`)
  return node.parent
}

describe('RFC 9420 section 12.4.3.1: unmerged leaves of a joiner\'s ratchet tree', () => {
  it('a Welcome after ordinary growth is accepted (ts-mls 1.6.4 rejected it)', async () => {
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
    const { welcome, joiner, creator } = await growGroup(cs)
    // The shape the RFC allows: node 11 lists leaf 7 (added after leaf 5's update), the root of
    // the old subtree (node 7, rewritten by the creator's later path) does not.
    const tree = creator.state.ratchetTree
    expect(parentAt(tree, 11).unmergedLeaves).toEqual([7])
    expect(parentAt(tree, 7).unmergedLeaves).toEqual([])
    await expect(upstreamJoinGroup(welcome, joiner.publicPackage, joiner.privatePackage, emptyPskIndex, cs)).rejects.toThrow(
      /non-blank intermediate node must list leaf node in its unmerged_leaves/
    )
    const joined = await joinGroup(welcome, joiner.publicPackage, joiner.privatePackage, emptyPskIndex, cs)
    expect(joined.groupContext.epoch).toBe(creator.state.groupContext.epoch)
    expect(joined.keySchedule.epochAuthenticator).toEqual(creator.state.keySchedule.epochAuthenticator)
  })

  describe('the checks the RFC does require still reject', () => {
    const validate = async (mutate: (tree: RatchetTree) => void) => {
      const cs = await getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
      const { creator } = await growGroup(cs)
      const { groupContext, clientConfig } = creator.state
      const tree = structuredClone(creator.state.ratchetTree)
      expect(await validateRatchetTree(tree, groupContext, clientConfig.lifetimeConfig, clientConfig.authService, groupContext.treeHash, cs)).toBeUndefined()
      mutate(tree)
      return validateRatchetTree(tree, groupContext, clientConfig.lifetimeConfig, clientConfig.authService, groupContext.treeHash, cs)
    }

    it('"every non-blank intermediate node between the leaf node and the parent node also has an entry for the leaf node"', async () => {
      const error = await validate((tree) => {
        // Node 7 now lists leaf 7, but node 11 (between leaf 7 and node 7, non-blank) does not.
        parentAt(tree, 7).unmergedLeaves = [7]
        parentAt(tree, 11).unmergedLeaves = []
      })
      expect(error?.message).toMatch(/non-blank intermediate node must list leaf node/)
    })

    it('"the entry represents a non-blank leaf node that is a descendant of the parent node": not a descendant', async () => {
      const error = await validate((tree) => {
        parentAt(tree, 3).unmergedLeaves = [7]
      })
      expect(error?.message).toMatch(/Unmerged leaf did not represent a non-blank descendant leaf node/)
    })

    it('"the entry represents a non-blank leaf node that is a descendant of the parent node": a blank leaf', async () => {
      const error = await validate((tree) => {
        // Leaf 6's only intermediate node (13) is blank, so only the blank leaf is wrong.
        parentAt(tree, 11).unmergedLeaves = [6, 7]
        tree[12] = undefined
      })
      expect(error?.message).toMatch(/Unmerged leaf did not represent a non-blank descendant leaf node/)
    })

    it('a tree whose unmerged leaves are valid but whose hash is not still fails the tree-hash check', async () => {
      const error = await validate((tree) => {
        parentAt(tree, 11).unmergedLeaves = [6, 7]
      })
      expect(error?.message).toMatch(/tree hash|parent hash/)
    })
  })
})

// ---------------------------------------------------------------------------
// Found by the simulator: applying proposals validated every added KeyPackage
// at once; when the AuthenticationService failed for two of them, one rejection
// was never observed (an unhandled rejection, which ends a Node.js process).

describe('applying proposals validates them one at a time', () => {
  it('an AuthenticationService failing while two added members are validated rejects the commit once, leaving nothing unhandled', async () => {
    const cs = await getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
    const creatorKeys = await keyPackageFor('a', cs)
    const creator: Member = { state: await createGroup(new TextEncoder().encode('two-adds'), creatorKeys.publicPackage, creatorKeys.privatePackage, [], cs) }
    const b = await keyPackageFor('b', cs)
    const first = await commit(creator, cs, [b.publicPackage])
    const member = await joinGroup(welcomeOf(first.welcome), b.publicPackage, b.privatePackage, emptyPskIndex, cs)
    const two = await Promise.all(['c', 'd'].map((n) => keyPackageFor(n, cs)))
    const second = await commit(creator, cs, two.map((k) => k.publicPackage))
    if (second.commit.wireformat !== 'mls_public_message') throw new Error('expected a PublicMessage')
    // The member's directory is unreachable: every credential check fails.
    const unreachable = { validateCredential: async (): Promise<boolean> => Promise.reject(new Error('directory unreachable')) }
    const offline: ClientState = { ...member, clientConfig: { ...member.clientConfig, authService: unreachable } }
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    try {
      await expect(patchedProcessPublicMessage(offline, second.commit.publicMessage, emptyPskIndex, cs)).rejects.toThrow('directory unreachable')
      // Unhandled rejections are reported once the microtask queue drains: give it two turns.
      await new Promise((resolve) => setImmediate(resolve))
      await new Promise((resolve) => setImmediate(resolve))
      expect(unhandled).toEqual([])
    } finally {
      process.off('unhandledRejection', onUnhandled)
    }
    // With the directory back, the same commit is processed.
    const processed = await patchedProcessPublicMessage(member, second.commit.publicMessage, emptyPskIndex, cs)
    expect(processed.newState.keySchedule.epochAuthenticator).toEqual(creator.state.keySchedule.epochAuthenticator)
  })
})
