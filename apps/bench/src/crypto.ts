/**
 * Crypto providers against ts-mls's default provider, on the operations a
 * member performs: create a KeyPackage, join from a Welcome, create an empty
 * commit (which carries an UpdatePath), process it, send and receive an
 * application message; at group sizes 10, 100 and 1000.
 *
 * The groups are built once per suite and size with `@mls/crypto-node` (the
 * state is plain bytes, the same whatever provider made it), so every
 * provider is measured on the same tree: one commit adds every member, then
 * every second member commits an UpdatePath, so every parent node is filled
 * as in a group in steady state, and a commit encrypts to about log2(n)
 * nodes, not to every member.
 *
 * Environment: MLS_BENCH_SIZES (default "10,100,1000"), MLS_BENCH_MIN_MS
 * (time per measurement, default 400).
 */
import { tsMlsDefaultCrypto, type CryptoProvider } from '@mls/core'
import {
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

const plan: { suite: CiphersuiteName; providers: ProviderUnderTest[] }[] = [
  { suite: 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', providers: [baseline, noble, libsodium, node] },
  { suite: 'MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519', providers: [baseline, libsodium, node] }
]

const operations = ['create KeyPackage', 'join from Welcome', 'create commit', 'process commit', 'send message', 'receive message'] as const
type Operation = (typeof operations)[number]

const sizes = (process.env.MLS_BENCH_SIZES ?? '10,100,1000').split(',').map((s) => Number.parseInt(s, 10))
const minimumMs = Number.parseInt(process.env.MLS_BENCH_MIN_MS ?? '400', 10)
const minimumIterations = 3
const maximumIterations = 30
const encoder = new TextEncoder()
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
 * Alice adds everyone in one commit; then every odd leaf commits an empty
 * commit, in bit-reversed order so that each encrypts to few blank subtrees.
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
  for (const k of bitReversedOrder(size >> 1)) bob = (await createCommit({ state: as(bob, 2 * k + 1), cipherSuite: cs })).newState
  const alice = as(bob, 0)
  const joiner = await newMember(`member-${size}`, cs)
  const invite = await createCommit(
    { state: alice, cipherSuite: cs },
    { extraProposals: [{ proposalType: 'add', add: { keyPackage: joiner.publicPackage } }], ratchetTreeExtension: true }
  )
  if (invite.welcome === undefined) throw new Error('Add commit without a Welcome')
  return { size, alice, bob, joiner: { ...joiner, welcome: invite.welcome } }
}

async function measure(run: (iteration: number) => Promise<void>, prepare?: (iteration: number) => Promise<void>): Promise<number[]> {
  const samples: number[] = []
  let total = 0
  while (samples.length < maximumIterations && (samples.length < minimumIterations || total < minimumMs)) {
    await prepare?.(samples.length)
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

async function measureProvider(provider: ProviderUnderTest, suite: CiphersuiteName, fixture: Fixture): Promise<Record<Operation, number>> {
  const ciphersuite = getCiphersuiteFromName(suite)
  const cs = await provider.make().getCiphersuiteImpl(ciphersuite)
  const result = {} as Record<Operation, number>

  result['create KeyPackage'] = median(await measure(async (i) => void (await newMember(`kp-${i}`, cs))))

  let joinCs = cs
  result['join from Welcome'] = median(
    await measure(
      async () => {
        const { welcome, publicPackage, privatePackage } = fixture.joiner
        await joinGroup(welcome, publicPackage, privatePackage, emptyPskIndex, joinCs)
      },
      async () => {
        joinCs = await provider.make().getCiphersuiteImpl(ciphersuite)
      }
    )
  )

  const commits: PrivateMessage[] = []
  result['create commit'] = median(
    await measure(async () => {
      commits.push(privateMessageOf((await createCommit({ state: fixture.alice, cipherSuite: cs })).commit))
    })
  )
  result['process commit'] = median(
    await measure(async (i) => {
      const processed = await processPrivateMessage(fixture.bob, commits[i % commits.length]!, emptyPskIndex, cs)
      if (processed.newState.groupContext.epoch !== fixture.bob.groupContext.epoch + 1n) throw new Error('Commit not applied')
    })
  )

  const messages: PrivateMessage[] = []
  result['send message'] = median(
    await measure(async () => {
      messages.push((await createApplicationMessage(fixture.alice, payload, cs)).privateMessage)
    })
  )
  result['receive message'] = median(
    await measure(async (i) => {
      const received = await processPrivateMessage(fixture.bob, messages[i % messages.length]!, emptyPskIndex, cs)
      if (received.kind !== 'applicationMessage') throw new Error('Not an application message')
    })
  )
  return result
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
  console.log(`Node ${process.version}, OpenSSL ${process.versions.openssl}; median of >= ${minimumIterations} runs and >= ${minimumMs} ms per cell; ratio = ts-mls default / provider`)
  const setupProvider = nodeCrypto()
  for (const { suite, providers } of plan) {
    const setupCs = await setupProvider.getCiphersuiteImpl(getCiphersuiteFromName(suite))
    for (const size of sizes) {
      const started = performance.now()
      const fixture = await buildGroup(size, setupCs)
      console.log(`\n${suite}, ${size} members: group built with node in ${((performance.now() - started) / 1000).toFixed(1)} s`)
      const results = new Map<string, Record<Operation, number>>()
      for (const provider of providers) results.set(provider.label, await measureProvider(provider, suite, fixture))
      printTable(`${suite}, ${size} members`, providers, results)
    }
  }
}
