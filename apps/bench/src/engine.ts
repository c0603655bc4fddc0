/**
 * The MLS engine against OpenMLS and against a floor, on one machine in one process: create a commit
 * (an UpdatePath), process it, add one member, join from the Welcome, at 10, 100 and 1,000 members
 * (10,000 with `--large` or MLS_BENCH_LARGE=1).
 *
 * - **ours**: core's engine (ts-mls with core's patches, `@mls/core/mls`) on `@mls/crypto-node`.
 * - **OpenMLS**: `@wireapp/core-crypto` 10.3.0's WebAssembly build (packages/interop), same ciphersuite.
 * - **floor**: the primitives RFC 9420 requires for the operation on this tree, each at its measured
 *   cost on `@mls/crypto-node`: HPKE seals to the copath's resolution, path key pairs, signatures and
 *   their verification (a joiner verifies every leaf's signature). Nothing can be faster without faster
 *   primitives; ratio = engine / floor.
 *
 * Both groups have the same shape: the creator adds everyone in one commit, and the measured receiver
 * (the last member) joins from the Welcome; the committer's copath is blank, so a commit encrypts to
 * about n leaves on both sides (counted for the floor). A last column measures ours on crypto.ts's
 * steady-state tree (one member in four has committed), where a commit encrypts to about log2(n) + 1
 * nodes; OpenMLS cannot be brought to that shape here without n/4 OpenMLS members.
 *
 * Environment: MLS_BENCH_SIZES (default "10,100,1000"), MLS_BENCH_REPS (runs per cell, default 5),
 * MLS_BENCH_OPENMLS=0 to skip OpenMLS. `runEngine({ sizes, reps })` is what the smoke test calls.
 */
import {
  createCommit,
  defaultCapabilities,
  emptyPskIndex,
  encodeKeyPackage,
  encodeMlsMessage,
  generateKeyPackage,
  getCiphersuiteFromName,
  joinGroup,
  createGroup,
  processPrivateMessage,
  type CiphersuiteImpl,
  type ClientState,
  type KeyPackage,
  type MLSMessage,
  type PrivateKeyPackage
} from '@mls/core/mls'
import { nodeCrypto } from '@mls/crypto-node'
import { buildGroup } from './crypto.js'

const suite = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519' as const
const encoder = new TextEncoder()
const collectGarbage = (globalThis as { gc?: () => void }).gc

export const engineOperations = ['create commit', 'process commit', 'add one member', 'join from Welcome'] as const
export type EngineOperation = (typeof engineOperations)[number]

/** One size's medians in ms; `openMls` is absent when OpenMLS was skipped. */
export interface EngineResult {
  size: number
  ours: Record<EngineOperation, number>
  /** Ours on a tree in steady state (one member in four has committed, so a commit encrypts to about log2(n) + 1 nodes). */
  oursSteady: Record<EngineOperation, number>
  openMls?: Record<EngineOperation, number>
  floor: Record<EngineOperation, number>
}

interface Member {
  publicPackage: KeyPackage
  privatePackage: PrivateKeyPackage
}

/** A Wire-format client id (OpenMLS through core-crypto accepts no other): `<uuid>:<hex>@<domain>`. */
function wireId(i: number): string {
  return `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}:${(i + 1).toString(16)}@bench.example`
}

async function member(i: number, cs: CiphersuiteImpl): Promise<Member> {
  const now = BigInt(Math.floor(Date.now() / 1000))
  return generateKeyPackage({ credentialType: 'basic', identity: encoder.encode(wireId(i)) }, defaultCapabilities(), { notBefore: now - 3600n, notAfter: now + 86_400n }, [], cs)
}

function median(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

async function timed(reps: number, run: (i: number) => Promise<void>): Promise<number> {
  const samples: number[] = []
  for (let i = 0; i < reps; i++) {
    collectGarbage?.()
    const started = performance.now()
    await run(i)
    samples.push(performance.now() - started)
  }
  return median(samples)
}

function mustBePrivate(message: MLSMessage) {
  if (message.wireformat !== 'mls_private_message') throw new Error(`expected a PrivateMessage, got ${message.wireformat}`)
  return message.privateMessage
}

/** How many HPKE seals a commit by `leafIndex` makes: the sum of the resolutions of its copath (RFC 9420 section 7.5). */
function sealsForCommit(tree: ClientState['ratchetTree'], leafIndex: number): { seals: number; pathLength: number } {
  const resolution = (node: number, level: number): number => {
    if (tree[node] !== undefined) {
      const entry = tree[node]!
      return 1 + (entry.nodeType === 'parent' ? entry.parent.unmergedLeaves.length : 0)
    }
    if (level === 0) return 0
    const half = 1 << (level - 1)
    return resolution(node - half, level - 1) + resolution(node + half, level - 1)
  }
  const levels = Math.log2(tree.length + 1) - 1
  let node = 2 * leafIndex
  let seals = 0
  for (let level = 0; level < levels; level++) {
    const isLeft = ((node >> (level + 1)) & 1) === 0
    const sibling = isLeft ? node + (1 << (level + 1)) : node - (1 << (level + 1))
    seals += resolution(sibling, level)
    node = isLeft ? node + (1 << level) : node - (1 << level)
  }
  return { seals, pathLength: levels }
}

interface PrimitiveCosts {
  seal: number
  open: number
  keyPair: number
  sign: number
  verify: number
}

async function primitiveCosts(cs: CiphersuiteImpl): Promise<PrimitiveCosts> {
  const keys = await cs.hpke.generateKeyPair()
  const signing = await cs.signature.keygen()
  const secret = new Uint8Array(32).fill(7)
  const info = new Uint8Array(100)
  const sealed = await cs.hpke.seal(keys.publicKey, secret, info)
  const message = new Uint8Array(300)
  const signature = await cs.signature.sign(signing.signKey, message)
  const per = async (run: () => Promise<unknown>) => {
    const count = 200
    const started = performance.now()
    for (let i = 0; i < count; i++) await run()
    return (performance.now() - started) / count
  }
  return {
    seal: await per(() => cs.hpke.seal(keys.publicKey, secret, info)),
    open: await per(() => cs.hpke.open(keys.privateKey, sealed.enc, sealed.ct, info)),
    keyPair: await per(() => cs.hpke.deriveKeyPair(secret)),
    sign: await per(() => cs.signature.sign(signing.signKey, message)),
    verify: await per(() => cs.signature.verify(signing.publicKey, message, signature))
  }
}

async function measureOurs(size: number, reps: number, cs: CiphersuiteImpl, costs: PrimitiveCosts) {
  const members: Member[] = []
  for (let i = 0; i <= size + reps; i++) members.push(await member(i, cs))
  const creator = members[0]!
  const created = await createGroup(encoder.encode(`engine-${size}`), creator.publicPackage, creator.privatePackage, [], cs)
  const all = await createCommit({ state: created, cipherSuite: cs }, { extraProposals: members.slice(1, size).map((m) => ({ proposalType: 'add' as const, add: { keyPackage: m.publicPackage } })), ratchetTreeExtension: true })
  const last = members[size - 1]!
  const committer = all.newState
  // The measured receiver joins, so it processes commits with its own path secrets.
  const receiver = size > 1 ? await joinGroup(all.welcome!, last.publicPackage, last.privatePackage, emptyPskIndex, cs) : committer
  const commits: MLSMessage[] = []
  const ours = {} as Record<EngineOperation, number>
  ours['create commit'] = await timed(reps, async () => {
    const result = await createCommit({ state: committer, cipherSuite: cs })
    commits.push(result.commit)
  })
  const shape = sealsForCommit(committer.ratchetTree, 0)
  ours['process commit'] = await timed(reps, async (i) => {
    const processed = await processPrivateMessage(receiver, mustBePrivate(commits[i % commits.length]!), emptyPskIndex, cs)
    if (processed.newState.groupContext.epoch !== receiver.groupContext.epoch + 1n) throw new Error('commit not applied')
  })
  const welcomes: Uint8Array[] = []
  // Every measured commit starts from the same epoch (the committer's state is not advanced).
  ours['add one member'] = await timed(reps, async (i) => {
    const added = await createCommit({ state: committer, cipherSuite: cs }, { extraProposals: [{ proposalType: 'add', add: { keyPackage: members[size + i]!.publicPackage } }], ratchetTreeExtension: true })
    welcomes.push(encodeMlsMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: added.welcome! }))
  })
  const addsForJoin = await Promise.all(
    Array.from({ length: reps }, (_, i) =>
      createCommit({ state: committer, cipherSuite: cs }, { extraProposals: [{ proposalType: 'add', add: { keyPackage: members[size + i]!.publicPackage } }], ratchetTreeExtension: true })
    )
  )
  ours['join from Welcome'] = await timed(reps, async (i) => {
    const joined = await joinGroup(addsForJoin[i]!.welcome!, members[size + i]!.publicPackage, members[size + i]!.privatePackage, emptyPskIndex, cs)
    if (joined.ratchetTree.length !== addsForJoin[i]!.newState.ratchetTree.length) throw new Error('join gave another tree')
  })
  const floor: Record<EngineOperation, number> = {
    'create commit': shape.seals * costs.seal + shape.pathLength * costs.keyPair + 2 * costs.sign,
    'process commit': costs.open + shape.pathLength * costs.keyPair + 2 * costs.verify,
    // An Add alone needs no UpdatePath (RFC 9420 section 12.4): the KeyPackage check, the Welcome's seal, the commit's and the GroupInfo's signatures.
    'add one member': costs.verify + costs.seal + 2 * costs.sign,
    'join from Welcome': costs.open + (size + 1) * costs.verify + costs.verify
  }
  return { ours, floor, keyPackages: members.slice(1, size).map((m) => encodeKeyPackage(m.publicPackage)) }
}

/** Ours on crypto.ts's steady-state tree: the shape in which a member's commit costs O(log n) encryptions. */
async function measureSteady(size: number, reps: number, cs: CiphersuiteImpl): Promise<Record<EngineOperation, number>> {
  const fixture = await buildGroup(size, cs)
  const result = {} as Record<EngineOperation, number>
  const commits: MLSMessage[] = []
  result['create commit'] = await timed(reps, async () => void commits.push((await createCommit({ state: fixture.alice, cipherSuite: cs })).commit))
  result['process commit'] = await timed(reps, async (i) => void (await processPrivateMessage(fixture.bob, mustBePrivate(commits[i]!), emptyPskIndex, cs)))
  const extra = await Promise.all(Array.from({ length: reps }, (_, i) => member(1_000_000 + i, cs)))
  result['add one member'] = await timed(reps, async (i) => {
    await createCommit({ state: fixture.alice, cipherSuite: cs }, { extraProposals: [{ proposalType: 'add', add: { keyPackage: extra[i]!.publicPackage } }], ratchetTreeExtension: true })
  })
  const { welcome, publicPackage, privatePackage } = fixture.joiner
  result['join from Welcome'] = await timed(reps, async () => void (await joinGroup(welcome, publicPackage, privatePackage, emptyPskIndex, cs)))
  return result
}

async function measureOpenMls(size: number, reps: number, keyPackages: Uint8Array[]): Promise<Record<EngineOperation, number>> {
  const { OpenMlsPeer } = await import('@mls/interop')
  const groupId = encoder.encode(`openmls-${size}-${Date.now()}`)
  const creator = await OpenMlsPeer.create('00000000-0000-4000-9000-000000000001', 1n, 'bench.example')
  const receiver = await OpenMlsPeer.create('00000000-0000-4000-9000-000000000002', 2n, 'bench.example')
  await creator.createGroup(groupId)
  const added = await creator.add(groupId, [...keyPackages.slice(0, Math.max(0, size - 2)), await receiver.keyPackage()])
  await receiver.join(added.welcome!)
  const result = {} as Record<EngineOperation, number>
  const commits: Uint8Array[] = []
  result['create commit'] = await timed(reps, async () => void commits.push((await creator.update(groupId)).commit))
  result['process commit'] = await timed(reps, async (i) => {
    if ((await receiver.receive(groupId, commits[i]!)).kind !== 'commit') throw new Error('OpenMLS did not take the commit')
  })
  const joiners = await Promise.all(Array.from({ length: reps }, (_, i) => OpenMlsPeer.create(`00000000-0000-4000-a000-${i.toString(16).padStart(12, '0')}`, 3n, 'bench.example')))
  const welcomes: Uint8Array[] = []
  const joinerPackages = await Promise.all(joiners.map((j) => j.keyPackage()))
  result['add one member'] = await timed(reps, async (i) => void welcomes.push((await creator.add(groupId, [joinerPackages[i]!])).welcome!))
  result['join from Welcome'] = await timed(reps, async (i) => void (await joiners[i]!.join(welcomes[i]!)))
  return result
}

/** Measure every size; prints a table per size and returns the medians. */
export async function runEngine(options: { sizes: number[]; reps: number; openMls: boolean; print?: boolean }): Promise<EngineResult[]> {
  const cs = await nodeCrypto().getCiphersuiteImpl(getCiphersuiteFromName(suite))
  const costs = await primitiveCosts(cs)
  const results: EngineResult[] = []
  for (const size of options.sizes) {
    const ours = await measureOurs(size, options.reps, cs, costs)
    const openMls = options.openMls ? await measureOpenMls(size, options.reps, ours.keyPackages) : undefined
    const oursSteady = await measureSteady(size, options.reps, cs)
    const result: EngineResult = { size, ours: ours.ours, oursSteady, floor: ours.floor, ...(openMls === undefined ? {} : { openMls }) }
    results.push(result)
    if (options.print !== false) printEngine(result)
  }
  return results
}

const format = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2))

function printEngine(result: EngineResult): void {
  console.log(`\n${suite}, ${result.size} members (median ms; ratios: OpenMLS / ours, ours / floor)`)
  console.log('| operation | ours | OpenMLS | OpenMLS / ours | floor | ours / floor | ours, steady tree |')
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const op of engineOperations) {
    const ours = result.ours[op]
    const open = result.openMls?.[op]
    const floor = result.floor[op]
    console.log(`| ${op} | ${format(ours)} | ${open === undefined ? '-' : format(open)} | ${open === undefined ? '-' : (open / ours).toFixed(2)} | ${format(floor)} | ${(ours / floor).toFixed(1)} | ${format(result.oursSteady[op])} |`)
  }
}

export async function run(): Promise<void> {
  const large = process.argv.includes('--large') || process.env.MLS_BENCH_LARGE === '1'
  const sizes = (process.env.MLS_BENCH_SIZES ?? (large ? '10,100,1000,10000' : '10,100,1000')).split(',').map((s) => Number.parseInt(s, 10))
  const reps = Number.parseInt(process.env.MLS_BENCH_REPS ?? '5', 10)
  console.log(`Node ${process.version}; ${reps} runs per cell; engine only (no persistence, no network)`)
  await runEngine({ sizes, reps, openMls: process.env.MLS_BENCH_OPENMLS !== '0' })
}
