import type { CryptoProvider, Group, MlsClient, Transport } from '@mls/core'
import { createMlsClient, equalBytes, toHex } from '@mls/core'
import { decodeMlsMessage, emptyPskIndex, getCiphersuiteFromName, processPrivateMessage } from '@mls/core/mls'
import { memoryClientStore } from '@mls/storage-memory'

export interface DemoInit {
  /** A transport per client (each its own connection), or one shared transport. */
  transport: Transport | (() => Transport)
  crypto: CryptoProvider
  /** Where the narration goes. Default: console.log. */
  print?: (line: string) => void
  /** What the transport is, for the narration. */
  transportName?: string
}

export interface DemoResult {
  ok: boolean
  checks: { name: string; ok: boolean }[]
}

const text = (b: Uint8Array): string => new TextDecoder().decode(b)
const short = (b: Uint8Array): string => toHex(b).slice(0, 16)

async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/**
 * The seed's four flows with three clients, A (alice), B (bob) and C (carol):
 * setup, A adds B then C (Welcome + Commit), B updates its leaf, A removes B.
 * Every check is recorded; `ok` is true only if all of them held.
 */
export async function runDemo(init: DemoInit): Promise<DemoResult> {
  const print = init.print ?? ((line: string) => console.log(line))
  const checks: { name: string; ok: boolean }[] = []
  const check = (name: string, ok: boolean): void => {
    checks.push({ name, ok })
    print(`   ${ok ? 'ok  ' : 'FAIL'} ${name}`)
  }
  const names = new Map<string, string>([
    ['alice/phone', 'A'],
    ['bob/phone', 'B'],
    ['carol/phone', 'C']
  ])
  const who = (clientId: string | undefined): string => (clientId === undefined ? '?' : names.get(clientId) ?? clientId)
  const watch = (label: string, group: Group, inbox: string[]): void => {
    group.on('epoch:changed', (e) =>
      print(`   ${label} applied ${e.own ? 'its own' : `${who(e.committer)}'s`} commit as ordered by the channel -> epoch ${e.epoch}`)
    )
    group.on('message:received', (m) => {
      if (!m.own) inbox.push(text(m.plaintext))
    })
  }
  const agree = (step: string, groups: [string, Group][], epoch: bigint): void => {
    const first = groups[0]![1].epochAuthenticator()
    for (const [label, g] of groups) print(`   ${label}: epoch ${g.epoch}, epoch authenticator ${short(g.epochAuthenticator())}`)
    check(`${step}: ${groups.map(([l]) => l).join(', ')} at epoch ${epoch} with equal epoch authenticators`,
      groups.every(([, g]) => g.epoch === epoch && equalBytes(g.epochAuthenticator(), first)))
  }

  print(`MLS demo: three clients, a Directory and a Group Channel over ${init.transportName ?? 'the given transport'}; crypto: ${init.crypto.name}`)
  const client = (userId: string): Promise<MlsClient> =>
    createMlsClient({
      userId,
      deviceId: 'phone',
      crypto: init.crypto,
      store: memoryClientStore({ name: userId }),
      transport: typeof init.transport === 'function' ? init.transport() : init.transport
    })

  print('\n1. Setup: every client registers and uploads KeyPackages to the Directory')
  const alice = await client('alice')
  const bob = await client('bob')
  const carol = await client('carol')
  for (const [label, c] of [['A', alice], ['B', bob], ['C', carol]] as const) {
    const count = await c.publishKeyPackages({ count: 5 })
    print(`   ${label} -> Directory: upload ${count.oneTime} one-time KeyPackages + 1 last-resort (signature key ${short(c.signaturePublicKey)})`)
  }

  print('\n2. Adding members')
  const a = await alice.createGroup()
  const inboxA: string[] = []
  watch('A', a, inboxA)
  print(`   A creates group ${short(a.groupId)} (epoch 0)`)
  const bobKps = await alice.fetchKeyPackages(['bob'])
  print(`   A <- Directory: fetch B's KeyPackage (consumed: ${(await bob.directory.countKeyPackages()).oneTime} left)`)
  print('   A -> Channel: Commit(Add B); A -> B: Welcome (delivered once the commit is accepted)')
  await a.addMembers(bobKps)
  await until(() => bob.group(a.groupId) !== undefined, 'B to join')
  const b = bob.group(a.groupId)!
  const inboxB: string[] = []
  watch('B', b, inboxB)
  print(`   B joined from the Welcome at epoch ${b.epoch}`)
  agree('Add(B)', [['A', a], ['B', b]], 1n)

  print('   A <- Directory: fetch C\'s KeyPackage; A -> Channel: Commit(Add C); A -> C: Welcome')
  await alice.addUsers(a, ['carol'])
  await until(() => carol.group(a.groupId) !== undefined && b.epoch === 2n, 'C to join and B to apply')
  const c = carol.group(a.groupId)!
  const inboxC: string[] = []
  watch('C', c, inboxC)
  print(`   C joined from the Welcome at epoch ${c.epoch}`)
  agree('Add(C)', [['A', a], ['B', b], ['C', c]], 2n)
  await a.send('Hello B and C, this is A')
  await until(() => inboxB.length > 0 && inboxC.length > 0, 'B and C to read A')
  check('B and C read A\'s message', inboxB.includes('Hello B and C, this is A') && inboxC.includes('Hello B and C, this is A'))

  print('\n3. Updating a leaf secret: B -> Channel: Commit(Update B, with path)')
  await b.update()
  await until(() => a.epoch === 3n && c.epoch === 3n, 'A and C to apply B\'s update')
  agree('Update(B)', [['A', a], ['B', b], ['C', c]], 3n)
  await b.send('B here, with a fresh leaf secret')
  await until(() => inboxA.length > 0 && inboxC.length > 1, 'A and C to read B')
  check('A and C read B\'s message after the update', inboxA.includes('B here, with a fresh leaf secret') && inboxC.includes('B here, with a fresh leaf secret'))

  print('\n4. Removing a member: A -> Channel: Commit(Remove B)')
  const bobLastState = b.mlsState
  let bobRemoved = false
  b.on('group:removed', (e) => {
    bobRemoved = true
    print(`   B learns it was removed by ${who(e.by)} at epoch ${e.epoch}; its group secrets are deleted`)
  })
  await a.removeMembers(['bob'])
  await until(() => c.epoch === 4n && bobRemoved, 'C to apply and B to learn of its removal')
  agree('Remove(B)', [['A', a], ['C', c]], 4n)
  check('B is in state removed', b.status === 'removed')
  const bobBefore = inboxB.length
  const secret = 'After B left: only A and C can read this'
  const { seq } = await a.send(secret)
  print(`   A -> Channel: "${secret}" (entry ${seq}, epoch ${a.epoch})`)
  await until(() => inboxC.includes(secret), 'C to read A')
  check('C reads the message sent after the removal', inboxC.includes(secret))
  // B tries everything it can: the channel, and the keys it held before its removal.
  const fromChannel = await bob.channel.fetchEntries(a.groupId, seq - 1).then(
    (entries) => `${entries.length} entries`,
    (error: { code?: string }) => `refused (${error.code ?? 'error'})`
  )
  print(`   B -> Channel: fetch entry ${seq}: ${fromChannel}`)
  const [entry] = await carol.channel.fetchEntries(a.groupId, seq - 1)
  const decoded = entry === undefined ? undefined : decodeMlsMessage(entry.message, 0)?.[0]
  let withOldKeys = 'no ciphertext'
  if (decoded?.wireformat === 'mls_private_message' && bobLastState !== undefined) {
    const cs = await init.crypto.getCiphersuiteImpl(getCiphersuiteFromName(bob.ciphersuite))
    withOldKeys = await processPrivateMessage(bobLastState, decoded.privateMessage, emptyPskIndex, cs).then(
      (r) => (r.kind === 'applicationMessage' ? `DECRYPTED "${text(r.message)}"` : 'no message'),
      (error: Error) => `cannot decrypt (${error.message})`
    )
  }
  print(`   B, with the epoch ${bobLastState?.groupContext.epoch ?? '?'} keys it held before removal, on the epoch ${decoded?.wireformat === 'mls_private_message' ? decoded.privateMessage.epoch : '?'} ciphertext: ${withOldKeys}`)
  check(
    'B cannot read anything sent after its removal',
    inboxB.length === bobBefore && (fromChannel === '0 entries' || fromChannel.startsWith('refused')) && withOldKeys.startsWith('cannot decrypt')
  )

  for (const x of [alice, bob, carol]) await x.close()
  const ok = checks.every((x) => x.ok)
  print(`\n${ok ? 'All checks passed' : 'SOME CHECKS FAILED'} (${checks.filter((x) => x.ok).length}/${checks.length})`)
  return { ok, checks }
}
