import type { CryptoProvider, Group, MlsClient, MlsClientInit } from '@mls/core'
import { createMlsClient, equalBytes, toHex } from '@mls/core'
import type { ClientStore } from '@mls/core/interfaces'
import { createServices, type ServiceLimits, type Services } from '@mls/server'
import { memoryClientStore, memoryServerStore } from '@mls/storage-memory'
import { memoryTransport, type Scheduler } from '@mls/transport-memory'

export * from './providers.js'
export { tcpProxy, type TcpProxy } from './tcp-proxy.js'
export { fourFlows, type FourFlowsInit, type FourFlowsResult } from './four-flows.js'
export { faultyStore, type StoreFaults } from './faulty-store.js'

export interface TestNetworkInit {
  crypto: CryptoProvider
  ciphersuite?: MlsClientInit['ciphersuite']
  scheduler?: Scheduler
  /** Overrides of the services' limits (for example a small `maxFetchLimit`). */
  limits?: Partial<ServiceLimits>
}

export type TestNetwork = Awaited<ReturnType<typeof createTestNetwork>>

/** Directory + Group Channel in process, and a factory for clients that talk to them. */
export async function createTestNetwork(init: TestNetworkInit) {
  const serverStore = memoryServerStore()
  const services: Services = createServices({ store: serverStore, crypto: init.crypto, ...(init.limits === undefined ? {} : { limits: init.limits }) })
  const transport = memoryTransport({ services, ...(init.scheduler === undefined ? {} : { scheduler: init.scheduler }) })
  const stores = new Map<string, ClientStore>()

  async function client(userId: string, options: Partial<MlsClientInit> & { store?: ClientStore } = {}): Promise<MlsClient> {
    const deviceId = options.deviceId ?? 'phone'
    const store = options.store ?? memoryClientStore({ name: `${userId}/${deviceId}` })
    stores.set(`${userId}/${deviceId}`, store)
    return createMlsClient({
      userId,
      deviceId,
      crypto: options.crypto ?? init.crypto,
      store,
      transport,
      ...(init.ciphersuite === undefined ? {} : { ciphersuite: init.ciphersuite }),
      ...options
    })
  }

  return { services, serverStore, transport, stores, client }
}

/** Poll until `condition` holds; fails with `what` after `timeoutMs`. */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/** Wait until `client` holds the group (joined from a Welcome). */
export async function joined(client: MlsClient, groupId: Uint8Array): Promise<Group> {
  await waitFor(() => client.group(groupId) !== undefined, `${client.clientId} to join ${toHex(groupId)}`)
  return client.group(groupId)!
}

/** Wait until every group is at `epoch`, then check they share one epoch authenticator. */
export async function converged(groups: readonly Group[], epoch: bigint): Promise<Uint8Array> {
  await waitFor(() => groups.every((g) => g.epoch === epoch && g.status === 'active'), `all groups at epoch ${epoch}`)
  const first = groups[0]!.epochAuthenticator()
  for (const g of groups) {
    if (!equalBytes(g.epochAuthenticator(), first)) throw new Error(`Epoch authenticators differ at epoch ${epoch}`)
  }
  return first
}

/**
 * `creator` creates a group and adds every device of each member's user in one
 * commit; resolves, once every member has joined from its Welcome and all
 * agree at epoch 1, with the creator's group followed by each member's.
 * Members must have published KeyPackages.
 */
export async function groupWith<const M extends readonly MlsClient[]>(
  creator: MlsClient,
  members: M
): Promise<[Group, ...{ [K in keyof M]: Group }]> {
  const group = await creator.createGroup()
  await creator.addUsers(group, members.map((m) => m.userId))
  const groups = [group, ...(await Promise.all(members.map((m) => joined(m, group.groupId))))]
  await converged(groups, 1n)
  return groups as [Group, ...{ [K in keyof M]: Group }]
}

/** Collect the plaintexts a group receives, as text. */
export function inbox(group: Group): { texts: string[]; from: string[] } {
  const box = { texts: [] as string[], from: [] as string[] }
  group.on('message:received', (m) => {
    box.texts.push(new TextDecoder().decode(m.plaintext))
    box.from.push(m.sender)
  })
  return box
}

/**
 * The same store across client restarts: a client's `close()` closes its
 * store, so tests that "restart" a client over a memory store keep it open.
 */
export function keepOpen<S extends ClientStore>(store: S): S {
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'close') return async () => {}
      const value = Reflect.get(target, prop) as unknown
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value
    }
  })
}
