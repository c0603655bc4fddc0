/**
 * Crypto providers against ts-mls's default provider, on the operations a
 * member performs: create a KeyPackage, join from a Welcome, create an empty
 * commit (which carries an UpdatePath), process it, send and receive an
 * application message; at group sizes 10, 100 and 1000.
 *
 * The groups are built once per suite and size with `@mls/crypto-node` (the
 * state is plain bytes, the same whatever provider made it), so every
 * provider is measured on the same tree: one commit adds every member, then
 * one member in four commits an UpdatePath, so the parent nodes are filled as
 * in a group in steady state, and a commit encrypts to about log2(n) + 1
 * nodes, not to every member.
 *
 * Each cell is the median of at least three runs, taken in three rounds that
 * alternate between the providers.
 *
 * Run with `--expose-gc` (the `bench` script does) to collect garbage
 * between timed runs of slow operations, so one run does not pay for another's
 * garbage.
 *
 * Environment: MLS_BENCH_SIZES (default "10,100,1000"), MLS_BENCH_MIN_MS
 * (time per cell, default 600), MLS_BENCH_SUITES (suite ids, default "1,3"),
 * MLS_BENCH_PROVIDERS (labels besides the baseline, e.g. "node,noble").
 */
import { tsMlsDefaultCrypto, type CryptoProvider } from '@mls/core'
import {
  ciphersuites,
  createApplicationMessage,
  createCommit,
  createGroup,
  defaultCapabilities,
  defaultLifetime,
  emptyPskIndex,
  generateKeyPackage,
  getCiphersuiteFromName,
  joinGroup,
  processPrivateMessage,
  type CiphersuiteImpl,
  type CiphersuiteName,
  type ClientState,
  type KeyPackage,
  type MLSMessage,
  type PrivateKeyPackage,
  type PrivateMessage,
  type Welcome
} from '@mls/core/mls'
import { libsodiumCrypto } from '@mls/crypto-libsodium'
import { nobleCrypto } from '@mls/crypto-noble'
import { nodeCrypto } from '@mls/crypto-node'

interface ProviderUnderTest {
  label: string
  make(): CryptoProvider
}

const baseline: ProviderUnderTest = { label: 'ts-mls default', make: tsMlsDefaultCrypto }
const noble: ProviderUnderTest = { label: 'noble', make: nobleCrypto }
const libsodium: ProviderUnderTest = { label: 'libsodium', make: libsodiumCrypto }
const node: ProviderUnderTest = { label: 'node', make: nodeCrypto }

const fullPlan: { suite: CiphersuiteName; providers: ProviderUnderTest[] }[] = [
  { suite: 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', providers: [baseline, noble, libsodium, node] },
  { suite: 'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519', providers: [baseline, libsodium, node] }
]
const onlySuites = process.env.MLS_BENCH_SUITES?.split(',').map((s) => Number.parseInt(s, 10))
const onlyProviders = process.env.MLS_BENCH_PROVIDERS?.split(',')
const plan = fullPlan
  .filter(({ suite }) => onlySuites === undefined || onlySuites.includes(ciphersuites[suite]))
  .map(({ suite, providers }) => ({
    suite,
    providers: providers.filter((p) => p === baseline || onlyProviders === undefined || onlyProviders.includes(p.label))
  }))

const operations = ['create KeyPackage', 'join from Welcome', 'create commit', 'process commit', 'send message', 'receive message'] as const
type Operation = (typeof operations)[number]

const sizes = (process.env.MLS_BENCH_SIZES ?? '10,100,1000').split(',').map((s) => Number.parseInt(s, 10))
const minimumMs = Number.parseInt(process.env.MLS_BENCH_MIN_MS ?? '600', 10)
const rounds = 3
const maximumIterations = 200
const encoder = new TextEncoder()
const collectGarbage = (globalThis as { gc?: () => void }).gc
const payload = encoder.encode('benchmark message: '.padEnd(120, '.'))

interface Member {
  publicPackage: KeyPackage
  privatePackage: PrivateKeyPackage
}

function newMember(name: string, cs: CiphersuiteImpl): Promise<Member> {
  return generateKeyPackage({ credentialType: 'basic', identity: encoder.encode(name) }, defaultCapabilities(), defaultLifetime, [], cs)
}

function privateMessageOf(message: MLSMessage): PrivateMessage {
  if (message.wireformat !== 'mls_private_message') throw new Error(`Expected a PrivateMessage, got ${message.wireformat}`)
  return message.privateMessage
}

interface Fixture {
  size: number
  alice: ClientState
  bob: ClientState
  joiner: Member & { welcome: Welcome }
}

function bitReversedOrder(count: number): number[] {
  let bits = 0
  while (1 << bits < count) bits++
  const order: number[] = []
  for (let i = 0; i < 1 << bits; i++) {
    let reversed = 0
    for (let b = 0; b < bits; b++) if (i & (1 << b)) reversed |= 1 << (bits - 1 - b)
    if (reversed < count) order.push(reversed)
  }
  return order
}

/**
 * Alice adds everyone in one commit; then one member in four (leaves 1, 5,
 * 9, ...) commits an empty commit, in bit-reversed order so that each
 * encrypts to few blank subtrees. That fills every parent node but half of
 * those just above the leaves, as in a group where most members have
 * committed once: a commit then encrypts to about log2(n) + 1 nodes.
 * A member needs no path secrets to commit, only the group's shared state and
 * its own leaf index and signature key, so each committer starts from the
 * previous committer's new state with its own index and keys. Bob is the last
 * committer, with his real state (path secrets included); Alice, who only
 * commits and sends, is his state with her index and keys.
 */
export async function buildGroup(size: number, cs: CiphersuiteImpl): Promise<Fixture> {
  const members: Member[] = []
  for (let i = 0; i < size; i++) members.push(await newMember(`member-${i}`, cs))
  const as = (state: ClientState, leafIndex: number): ClientState => ({
    ...state,
    privatePath: { leafIndex, privateKeys: { [2 * leafIndex]: members[leafIndex]!.privatePackage.hpkePrivateKey } },
    signaturePrivateKey: members[leafIndex]!.privatePackage.signaturePrivateKey
  })
  const founder = members[0]!
  const created = await createGroup(encoder.encode(`bench-${cs.name}-${size}`), founder.publicPackage, founder.privatePackage, [], cs)
  const added = await createCommit(
    { state: created, cipherSuite: cs },
    { extraProposals: members.slice(1).map((m) => ({ proposalType: 'add' as const, add: { keyPackage: m.publicPackage } })) }
  )
  let bob = added.newState
  for (const k of bitReversedOrder(Math.ceil((size - 1) / 4))) {
    bob = (await createCommit({ state: as(bob, 4 * k + 1), cipherSuite: cs })).newState
  }
  const alice = as(bob, 0)
  const joiner = await newMember(`member-${size}`, cs)
  const invite = await createCommit(
    { state: alice, cipherSuite: cs },
    { extraProposals: [{ proposalType: 'add', add: { keyPackage: joiner.publicPackage } }], ratchetTreeExtension: true }
  )
  if (invite.welcome === undefined) throw new Error('Add commit without a Welcome')
  return { size, alice, bob, joiner: { ...joiner, welcome: invite.welcome } }
}

async function measure(
  budgetMs: number,
  run: (iteration: number) => Promise<void>,
  prepare?: (iteration: number) => Promise<void>
): Promise<number[]> {
  const samples: number[] = []
  let total = 0
  while (samples.length < maximumIterations && (samples.length === 0 || total < budgetMs)) {
    await prepare?.(samples.length)
    if (samples.length === 0 || samples[samples.length - 1]! > 20) collectGarbage?.()
    const started = performance.now()
    await run(samples.length)
    const elapsed = performance.now() - started
    samples.push(elapsed)
    total += elapsed
  }
  return samples
}

function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

interface Lane {
  provider: ProviderUnderTest
  cs: CiphersuiteImpl
  commits: PrivateMessage[]
  messages: PrivateMessage[]
  samples: Record<Operation, number[]>
}

type Step = (lane: Lane, iteration: number) => Promise<void>

/** One operation: `run` is timed, `prepare` is not. */
function steps(suite: CiphersuiteName, fixture: Fixture): Record<Operation, { run: Step; prepare?: Step }> {
  const ciphersuite = getCiphersuiteFromName(suite)
  const joinImpls = new Map<Lane, CiphersuiteImpl>()
  return {
    'create KeyPackage': { run: async (lane, i) => void (await newMember(`kp-${i}`, lane.cs)) },
    'join from Welcome': {
      prepare: async (lane) => void joinImpls.set(lane, await lane.provider.make().getCiphersuiteImpl(ciphersuite)),
      run: async (lane) => {
        const { welcome, publicPackage, privatePackage } = fixture.joiner
        await joinGroup(welcome, publicPackage, privatePackage, emptyPskIndex, joinImpls.get(lane)!)
      }
    },
    'create commit': {
      run: async (lane) => void lane.commits.push(privateMessageOf((await createCommit({ state: fixture.alice, cipherSuite: lane.cs })).commit))
    },
    'process commit': {
      run: async (lane, i) => {
        const processed = await processPrivateMessage(fixture.bob, lane.commits[i % lane.commits.length]!, emptyPskIndex, lane.cs)
        if (processed.newState.groupContext.epoch !== fixture.bob.groupContext.epoch + 1n) throw new Error('Commit not applied')
      }
    },
    'send message': {
      run: async (lane) => void lane.messages.push((await createApplicationMessage(fixture.alice, payload, lane.cs)).privateMessage)
    },
    'receive message': {
      run: async (lane, i) => {
        const received = await processPrivateMessage(fixture.bob, lane.messages[i % lane.messages.length]!, emptyPskIndex, lane.cs)
        if (received.kind !== 'applicationMessage') throw new Error('Not an application message')
      }
    }
  }
}

/**
 * Every operation is measured in rounds that alternate between the
 * providers, so a change in the machine's load falls on all of them alike.
 */
async function measureProviders(providers: ProviderUnderTest[], suite: CiphersuiteName, fixture: Fixture): Promise<Map<string, Record<Operation, number>>> {
  const lanes: Lane[] = []
  for (const provider of providers) {
    const samples = Object.fromEntries(operations.map((op) => [op, [] as number[]])) as Record<Operation, number[]>
    lanes.push({ provider, cs: await provider.make().getCiphersuiteImpl(getCiphersuiteFromName(suite)), commits: [], messages: [], samples })
  }
  const byOperation = steps(suite, fixture)
  for (const op of operations) {
    const { run, prepare } = byOperation[op]
    for (let round = 0; round < rounds; round++) {
      for (const lane of lanes) {
        const offset = lane.samples[op].length
        const timed = await measure(
          minimumMs / rounds,
          (i) => run(lane, offset + i),
          prepare === undefined ? undefined : (i) => prepare(lane, offset + i)
        )
        lane.samples[op].push(...timed)
      }
    }
  }
  return new Map(lanes.map((lane) => [lane.provider.label, Object.fromEntries(operations.map((op) => [op, median(lane.samples[op])])) as Record<Operation, number>]))
}

function formatMs(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2)
}

function printTable(title: string, providers: ProviderUnderTest[], results: Map<string, Record<Operation, number>>): void {
  const base = results.get(baseline.label)
  const header = ['operation (ms/op)', ...providers.map((p) => p.label)]
  const rows = operations.map((op) => [
    op,
    ...providers.map((p) => {
      const ms = results.get(p.label)![op]
      if (p === baseline || base === undefined) return formatMs(ms)
      return `${formatMs(ms)} (${(base[op] / ms).toFixed(1)}x)`
    })
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`
  console.log(`\n${title}`)
  console.log(line(header))
  console.log(`| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`)
  for (const row of rows) console.log(line(row))
}

export async function run(): Promise<void> {
  console.log(`Node ${process.version}, OpenSSL ${process.versions.openssl}; median of >= ${rounds} runs in ${rounds} rounds alternating providers, >= ${minimumMs} ms per cell; ratio = ts-mls default / provider`)
  const setupProvider = nodeCrypto()
  for (const { suite, providers } of plan) {
    const setupCs = await setupProvider.getCiphersuiteImpl(getCiphersuiteFromName(suite))
    for (const size of sizes) {
      const started = performance.now()
      const fixture = await buildGroup(size, setupCs)
      console.log(`\n${suite}, ${size} members: group built with node in ${((performance.now() - started) / 1000).toFixed(1)} s`)
      const results = await measureProviders(providers, suite, fixture)
      printTable(`${suite}, ${size} members`, providers, results)
    }
  }
}
