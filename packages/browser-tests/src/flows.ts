import { createMlsClient, defineCryptoProvider, equalBytes, toHex, type CryptoProvider, type Group, type MlsClient } from '@mls/core'
import { decodeMlsMessage, emptyPskIndex, getCiphersuiteFromName, processPrivateMessage, type CiphersuiteImpl, type CiphersuiteName } from '@mls/core/mls'
import { memoryClientStore } from '@mls/storage-memory'
import { webSockets } from '@mls/transport-ws'
import { assert, describeError, type Checks, type ClientReport, type FlowReport } from './result.js'

/** Poll until `condition` holds; fails with `what` after `timeoutMs`. */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

async function joined(client: MlsClient, groupId: Uint8Array): Promise<Group> {
  await waitFor(() => client.group(groupId) !== undefined, `${client.clientId} to join ${toHex(groupId)}`)
  return client.group(groupId)!
}

/** Wait until every group is at `epoch`, then check they share one epoch authenticator. */
async function converged(groups: readonly Group[], epoch: bigint): Promise<Uint8Array> {
  await waitFor(() => groups.every((g) => g.epoch === epoch && g.status === 'active'), `all groups at epoch ${epoch}`)
  const first = groups[0]!.epochAuthenticator()
  for (const g of groups) assert(equalBytes(g.epochAuthenticator(), first), `epoch authenticators differ at epoch ${epoch}`)
  return first
}

function inbox(group: Group): string[] {
  const texts: string[] = []
  group.on('message:received', (m) => texts.push(new TextDecoder().decode(m.plaintext)))
  return texts
}

/**
 * `provider`, with every call into its ciphersuite implementation counted in
 * `calls` (`signature.sign`, `hpke.seal`, ...): evidence that the client really
 * ran this provider's code.
 */
export function countingProvider(provider: CryptoProvider, calls: Record<string, number>): CryptoProvider {
  const counted = <T extends object>(target: T, prefix: string): T =>
    new Proxy(target, {
      get(t, property, receiver) {
        const value: unknown = Reflect.get(t, property, receiver)
        if (typeof value !== 'function') return value
        const key = `${prefix}.${String(property)}`
        return (...args: unknown[]) => {
          calls[key] = (calls[key] ?? 0) + 1
          return (value as (...a: unknown[]) => unknown).apply(t, args)
        }
      }
    })
  return defineCryptoProvider({
    name: provider.name,
    ciphersuites: provider.supportedCiphersuites(),
    async getCiphersuiteImpl(cs) {
      const impl = await provider.getCiphersuiteImpl(cs)
      return {
        ...impl,
        hash: counted(impl.hash, 'hash'),
        hpke: counted(impl.hpke, 'hpke'),
        signature: counted(impl.signature, 'signature'),
        kdf: counted(impl.kdf, 'kdf'),
        rng: counted(impl.rng, 'rng')
      }
    }
  })
}

export interface FlowInit {
  /** `ws://` URL of the @mls/transport-ws server. */
  url: string
  ciphersuite: CiphersuiteName
  /** Suffix of the user ids, so that runs on several suites do not share identities. */
  suffix: string
  /** Provider factory per member: A, B and C. */
  providers: { readonly a: () => CryptoProvider; readonly b: () => CryptoProvider; readonly c: () => CryptoProvider }
}

/**
 * The four flows of the seed over @mls/transport-ws with the page's own
 * WebSocket: setup (KeyPackages), A creates the group and adds B then C
 * (Welcomes), B updates, A removes B. Every member agrees on the epoch
 * authenticator at every epoch, and B reads nothing sent after its removal.
 */
export async function runFourFlows(checks: Checks, init: FlowInit): Promise<FlowReport> {
  const label = `flows ${init.ciphersuite.includes('CHACHA') ? 'suite 3' : 'suite 1'}`
  const epochAuthenticators: Record<string, string> = {}
  const clients: MlsClient[] = []
  const reports: ClientReport[] = []
  const step = async (name: string, fn: () => Promise<void>): Promise<void> => {
    if (!(await checks.run(`${label}: ${name}`, fn))) throw new Error(`step failed: ${name}`)
  }

  const make = async (user: string, factory: () => CryptoProvider): Promise<MlsClient> => {
    const calls: Record<string, number> = {}
    const provider = factory()
    const client = await createMlsClient({
      userId: `${user}${init.suffix}`,
      deviceId: 'browser',
      crypto: countingProvider(provider, calls),
      store: memoryClientStore({ name: `${user}${init.suffix}` }),
      ciphersuite: init.ciphersuite,
      // No `WebSocket` option: the transport takes the page's global WebSocket.
      transport: webSockets({ url: init.url, requestTimeoutMs: 20_000, reconnect: { initialDelayMs: 50, maxDelayMs: 500 } })
    })
    clients.push(client)
    reports.push({ clientId: client.clientId, provider: provider.name, ciphersuite: client.ciphersuite, calls })
    return client
  }

  try {
    let alice!: MlsClient, bob!: MlsClient, carol!: MlsClient
    await step('three clients connect over the browser WebSocket', async () => {
      alice = await make('alice', init.providers.a)
      bob = await make('bob', init.providers.b)
      carol = await make('carol', init.providers.c)
    })

    await step('1. setup: each client uploads KeyPackages to the Directory', async () => {
      for (const c of [alice, bob, carol]) {
        const count = await c.publishKeyPackages({ count: 3 })
        assert(count.oneTime === 3 && count.lastResort, `${c.clientId}: ${JSON.stringify(count)}`)
      }
    })

    let a!: Group, b!: Group, c!: Group
    let aliceInbox: string[] = [], bobInbox: string[] = [], carolInbox: string[] = []
    await step('2a. A creates the group and adds B (Welcome); B joins; epoch 1 agreed; B reads A', async () => {
      a = await alice.createGroup()
      const added = await alice.addUsers(a, [bob.userId])
      assert(added.kind === 'committed' && added.epoch === 1n, `add B: ${JSON.stringify(added, replacer)}`)
      b = await joined(bob, a.groupId)
      epochAuthenticators['1'] = toHex(await converged([a, b], 1n))
      aliceInbox = inbox(a)
      bobInbox = inbox(b)
      await a.send('hello bob')
      await waitFor(() => bobInbox.includes('hello bob'), 'B to read A')
    })

    await step('2b. A adds C (Welcome); epoch 2 agreed by A, B, C; C is read by A and B', async () => {
      const added = await alice.addUsers(a, [carol.userId])
      assert(added.kind === 'committed' && added.epoch === 2n, `add C: ${JSON.stringify(added, replacer)}`)
      c = await joined(carol, a.groupId)
      carolInbox = inbox(c)
      epochAuthenticators['2'] = toHex(await converged([a, b, c], 2n))
      const members = c.members().map((m) => m.clientId)
      assert(members.length === 3 && [alice, bob, carol].every((x) => members.includes(x.clientId)), `members ${members.join(', ')}`)
      await c.send('hi all, carol here')
      await waitFor(() => aliceInbox.includes('hi all, carol here') && bobInbox.includes('hi all, carol here'), 'A and B to read C')
    })

    await step('3. B updates its leaf; epoch 3 agreed, new authenticator; B is read by A and C', async () => {
      const updated = await b.update()
      assert(updated.kind === 'committed' && updated.epoch === 3n, `update: ${JSON.stringify(updated, replacer)}`)
      epochAuthenticators['3'] = toHex(await converged([a, b, c], 3n))
      assert(epochAuthenticators['3'] !== epochAuthenticators['2'], 'the update did not change the epoch authenticator')
      await b.send('bob after update')
      await waitFor(() => aliceInbox.includes('bob after update') && carolInbox.includes('bob after update'), 'A and C to read B after the update')
    })

    await step('4. A removes B; epoch 4 agreed by A and C; B is told it was removed', async () => {
      const bobState = b.mlsState
      assert(bobState !== undefined, 'B has no state')
      const removedEvent = b.once('group:removed')
      const removed = await a.removeMembers([bob.userId])
      assert(removed.kind === 'committed' && removed.epoch === 4n, `remove B: ${JSON.stringify(removed, replacer)}`)
      epochAuthenticators['4'] = toHex(await converged([a, c], 4n))
      const event = await removedEvent
      assert(event.epoch === 4n && event.by === alice.clientId, `group:removed ${JSON.stringify(event, replacer)}`)
      assert(b.status === 'removed', `B's group is ${b.status}`)
      const members = a.members().map((m) => m.clientId)
      assert(!members.includes(bob.clientId) && members.length === 2, `members ${members.join(', ')}`)

      // After the removal: C reads A, B reads nothing, the server gives B nothing,
      // and B's state from before its removal cannot decrypt the message.
      const bobCount = bobInbox.length
      const sent = await a.send('secret after bob left')
      await waitFor(() => carolInbox.includes('secret after bob left'), 'C to read A after the removal')
      await bob.sync().catch(() => undefined)
      await new Promise((r) => setTimeout(r, 200))
      assert(bobInbox.length === bobCount && !bobInbox.includes('secret after bob left'), 'B read a message sent after its removal')
      let bobEntries: number | string
      try {
        bobEntries = (await bob.channel.fetchEntries(a.groupId, sent.seq - 1)).length
      } catch (error) {
        bobEntries = describeError(error)
      }
      assert(bobEntries === 0 || typeof bobEntries === 'string', `the server gave B ${bobEntries} entries after its removal`)
      const entries = await carol.channel.fetchEntries(a.groupId, sent.seq - 1)
      assert(entries.length === 1, `C fetched ${entries.length} entries`)
      const decoded = decodeMlsMessage(entries[0]!.message, 0)?.[0]
      assert(decoded?.wireformat === 'mls_private_message', `wire format ${String(decoded?.wireformat)}`)
      const bobCs: CiphersuiteImpl = await init.providers.b().getCiphersuiteImpl(getCiphersuiteFromName(init.ciphersuite))
      let decrypted = false
      try {
        await processPrivateMessage(bobState, decoded.privateMessage, emptyPskIndex, bobCs)
        decrypted = true
      } catch {
        // B's old epoch secrets cannot open a message of epoch 4
      }
      assert(!decrypted, "B's pre-removal state decrypted a message sent after its removal")
    })

    await step('each member used its own provider in the page', async () => {
      for (const r of reports) {
        const signs = r.calls['signature.sign'] ?? 0
        const aead = (r.calls['hpke.encryptAead'] ?? 0) + (r.calls['hpke.decryptAead'] ?? 0)
        assert(signs > 0 && aead > 0, `${r.clientId} (${r.provider}): ${signs} signatures, ${aead} AEAD calls`)
      }
    })
  } catch (error) {
    if (!(error instanceof Error && error.message.startsWith('step failed'))) checks.check(`${label}: unexpected error`, false, describeError(error))
  } finally {
    await Promise.allSettled(clients.map((c) => c.close()))
  }
  return { ciphersuite: init.ciphersuite, clients: reports, epochAuthenticators }
}

function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Uint8Array) return toHex(value)
  return value
}
