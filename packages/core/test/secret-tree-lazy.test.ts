/**
 * The secret tree derived lazily (patch secret-tree-lazy, RFC 9420 section 9): a new epoch costs no
 * derivation, a leaf's ratchets are derived on first use from the nearest unexpanded node above it, every
 * secret expanded on the way is deleted (forward secrecy), and the keys are those of ts-mls's eager tree.
 */
import { describe, expect, it } from 'vitest'
import { getCiphersuiteFromName, getCiphersuiteImpl, type CiphersuiteImpl } from 'ts-mls'
import {
  createSecretTree as upstreamCreateSecretTree,
  decodeSecretTree as upstreamDecodeSecretTree,
  ratchetToGeneration as upstreamRatchetToGeneration,
  secretTreeEncoder as upstreamSecretTreeEncoder,
  type SecretTree
} from 'ts-mls/secretTree.js'
import { encode } from 'ts-mls/codec/tlsEncoder.js'
import { defaultKeyRetentionConfig } from 'ts-mls/keyRetentionConfig.js'
import type { ReuseGuard } from 'ts-mls/sender.js'
import { createSecretTree, decodeSecretTree, materializeLeaf, ratchetToGeneration, secretTreeEncoder } from '../src/ts-mls-fixes.js'
import { toHex } from '../src/index.js'

async function suite(): Promise<CiphersuiteImpl> {
  return getCiphersuiteImpl(getCiphersuiteFromName('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'))
}

/** The suite with its HKDF-Expand calls counted. */
function counting(cs: CiphersuiteImpl): { cs: CiphersuiteImpl; expands: () => number } {
  let count = 0
  const kdf = { ...cs.kdf, expand: (...args: Parameters<CiphersuiteImpl['kdf']['expand']>) => (count++, cs.kdf.expand(...args)) }
  return { cs: { ...cs, kdf }, expands: () => count }
}

const senderData = (leafIndex: number, generation: number) => ({ leafIndex, generation, reuseGuard: new Uint8Array(4) as ReuseGuard })

/** Every byte string the tree holds: unexpanded node secrets and ratchet secrets. */
function heldSecrets(tree: SecretTree): string[] {
  const out: string[] = []
  for (const entry of tree as unknown[]) {
    if (entry === undefined) continue
    const e = entry as { nodeSecret?: Uint8Array; handshake?: { secret: Uint8Array }; application?: { secret: Uint8Array } }
    if (e.nodeSecret !== undefined) out.push(toHex(e.nodeSecret))
    if (e.handshake !== undefined) out.push(toHex(e.handshake.secret), toHex(e.application!.secret))
  }
  return out
}

describe('the lazy secret tree (RFC 9420 section 9)', () => {
  const encryptionSecret = new Uint8Array(32).map((_, i) => i + 1)

  it('a new epoch derives nothing; a leaf costs the expansions on its path, not the whole tree', async () => {
    const base = await suite()
    const eager = counting(base)
    await upstreamCreateSecretTree(64, encryptionSecret, eager.cs.kdf)
    // ts-mls: two children per parent (126) and two ratchet roots per node (254).
    expect(eager.expands()).toBe(126 + 254)
    const lazy = counting(base)
    const tree = await createSecretTree(64, encryptionSecret, lazy.cs.kdf)
    expect(lazy.expands()).toBe(0)
    await ratchetToGeneration(tree, senderData(37, 0), 'application', defaultKeyRetentionConfig, lazy.cs)
    // Six levels of two children, two ratchet roots, then the key, the nonce and the next ratchet secret.
    expect(lazy.expands()).toBe(6 * 2 + 2 + 3)
  })

  it('gives every leaf the keys and nonces of the eagerly derived tree, in any order of first use', async () => {
    const cs = await suite()
    for (const leaves of [1, 2, 8, 13]) {
      let eager = await upstreamCreateSecretTree(leaves, encryptionSecret, cs.kdf)
      let lazy = await createSecretTree(leaves, encryptionSecret, cs.kdf)
      const order = Array.from({ length: leaves }, (_, i) => (i * 5 + 3) % leaves)
      for (const leaf of order) {
        for (const [contentType, generation] of [['application', 2], ['commit', 0], ['application', 0]] as const) {
          const a = await upstreamRatchetToGeneration(eager, senderData(leaf, generation), contentType, defaultKeyRetentionConfig, cs)
          const b = await ratchetToGeneration(lazy, senderData(leaf, generation), contentType, defaultKeyRetentionConfig, cs)
          expect(toHex(b.key)).toBe(toHex(a.key))
          expect(toHex(b.nonce)).toBe(toHex(a.nonce))
          eager = a.newTree
          lazy = b.newTree
        }
      }
    }
  })

  it('deletes every secret it expands: after deriving a leaf, no ancestor secret is held, and they are reported consumed', async () => {
    const cs = await suite()
    const tree = await createSecretTree(16, encryptionSecret, cs.kdf)
    const root = toHex(encryptionSecret)
    expect(heldSecrets(tree)).toEqual([root])
    const [derived, consumed] = await materializeLeaf(tree, 2 * 9, cs.kdf)
    // Root, three parents, and the leaf's own tree secret: expanded, deleted, handed back to be zeroed.
    expect(consumed.map(toHex)[0]).toBe(root)
    expect(consumed).toHaveLength(5)
    const held = new Set(heldSecrets(derived))
    for (const secret of consumed) expect(held.has(toHex(secret))).toBe(false)
    // The siblings on the path stay unexpanded (4), plus the leaf's two ratchets.
    expect(held.size).toBe(4 + 2)
    // The tree given is not modified (the caller's state stays as it was until it adopts the new one).
    expect(heldSecrets(tree)).toEqual([root])
    // A leaf whose secret is gone cannot be derived again: its ratchets are in the tree already, or refused.
    const [again, none] = await materializeLeaf(derived, 2 * 9, cs.kdf)
    expect(again).toBe(derived)
    expect(none).toHaveLength(0)
    const emptied = [...derived] as (SecretTree[number] | undefined)[]
    emptied[2 * 9] = undefined
    await expect(materializeLeaf(emptied as SecretTree, 2 * 9, cs.kdf)).rejects.toThrow('no secret for this leaf')
  })

  it('encodes empty and unexpanded nodes, and still decodes ts-mls’s own encoding of a whole tree', async () => {
    const cs = await suite()
    const tree = await createSecretTree(8, encryptionSecret, cs.kdf)
    const [derived] = await materializeLeaf(tree, 2 * 5, cs.kdf)
    const bytes = encode(secretTreeEncoder)(derived)
    const decoded = decodeSecretTree(bytes, 0)
    expect(decoded?.[1]).toBe(bytes.length)
    expect(decoded?.[0]).toHaveLength(derived.length)
    expect(heldSecrets(decoded![0])).toEqual(heldSecrets(derived))
    // Far smaller than the eager tree's encoding.
    const eager = await upstreamCreateSecretTree(8, encryptionSecret, cs.kdf)
    const eagerBytes = encode(upstreamSecretTreeEncoder)(eager)
    expect(bytes.length * 4).toBeLessThan(eagerBytes.length)
    const fromEager = decodeSecretTree(eagerBytes, 0)
    expect(fromEager?.[1]).toBe(eagerBytes.length)
    expect(heldSecrets(fromEager![0])).toEqual(heldSecrets(upstreamDecodeSecretTree(eagerBytes, 0)![0]))
    // A truncated lazy encoding is refused, not read past its end.
    expect(() => {
      if (decodeSecretTree(bytes.subarray(0, bytes.length - 3), 0) === undefined) throw new Error('refused')
    }).toThrow()
  })
})
